// One-shot control-plane calls: connect, HELLO, one request, close. Control calls are
// rare (opening segments, notifications), so no connection is kept.
#pragma once

#include <string>

#include "rpc/handshake.h"
#include "rpc/wire.h"

namespace te {

struct RpcTarget {
  std::string host;
  uint16_t port = 0;
  uint32_t timeout_ms = 3000;  // bounds connect and each wait for the reply
};

// self: this engine's name and cluster secret, proven in the HELLO.
Status RpcCall(const RpcTarget& target, const wire::Credentials& self, wire::Opcode opcode,
               const std::string& request, std::string* response);

}  // namespace te
