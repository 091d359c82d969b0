// The HELLO exchange that opens every connection (rpc and tcp-data channels), with
// optional mutual authentication by a cluster secret.
//
// Without a secret on either side, HELLO is one round trip that names the channel and
// the client. With a secret on both sides, each end proves it knows the secret by an
// HMAC-SHA256 over both ends' fresh random nonces (a challenge-response: the secret
// never crosses the wire, and a recorded exchange cannot be replayed). A side with a
// secret refuses a side without one, in both directions. docs/security.md has the
// threat model; docs/wire-protocol.md the frames.
#pragma once

#include <string>

#include "te/status.h"

namespace te::wire {

// Channels a HELLO may ask for.
inline constexpr const char* kChannelRpc = "rpc";
inline constexpr const char* kChannelTcpData = "tcp-data";

// This end of a connection: the segment name it announces and the cluster secret
// (empty: none).
struct Credentials {
  std::string name;
  std::string secret;
};

// Client side on a connected socket. kPermissionDenied when the server does not prove
// the secret, demands one this side lacks, or refuses this side's proof.
Status ClientHello(int fd, const std::string& channel, const Credentials& self);
// Server side: accepts the HELLO only for `channel` and, with a secret, only from a
// client that proves it. peer_name receives the client's announced name.
Status ServerHello(int fd, const std::string& channel, const std::string& secret,
                   std::string* peer_name);

// Server side, refusing: reads the client's HELLO and answers it with `why` (not OK),
// so that the client reports the reason instead of a reset connection.
Status RefuseHello(int fd, const Status& why);

// Logs a connection refused at HELLO: failed authentication as a warning naming the
// peer's address, anything else (port scanners, wrong channel) at info level.
void LogRefusedHandshake(const char* channel, int fd, const Status& status);

// HMAC-SHA256 of message under key, lower-case hex. Exposed for tests.
std::string HmacSha256Hex(const std::string& key, const std::string& message);

}  // namespace te::wire
