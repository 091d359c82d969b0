// Everything a stranger can send to an engine's ports before and after the
// handshake: the input is fed through a socket to the server side of HELLO (with or
// without a cluster secret, by the first byte), then read as frames until the
// decoder rejects something or the bytes run out.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/socket.h"
#include "rpc/handshake.h"
#include "rpc/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool with_secret = data[0] & 1;
  ++data;
  --size;

  if (size >= te::wire::kHeaderSize) {
    te::wire::FrameHeader h;
    if (te::wire::DecodeHeader(data, &h).ok()) {
      // A header the decoder accepts encodes back to the same 48 bytes' meaning.
      uint8_t again[te::wire::kHeaderSize];
      te::wire::EncodeHeader(h, again);
      te::wire::FrameHeader h2;
      if (!te::wire::DecodeHeader(again, &h2).ok() || h2.request_id != h.request_id ||
          h2.length != h.length || h2.payload_len != h.payload_len) {
        std::abort();
      }
    }
  }

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  te::UniqueFd client(fds[0]), server(fds[1]);
  // Inputs are capped (-max_len) well below the socket buffer, so this never blocks.
  if (!te::SendAll(client.get(), data, size).ok()) return 0;
  ::shutdown(client.get(), SHUT_WR);
  te::SetIoTimeout(server.get(), 100);
  std::string peer;
  const std::string secret = with_secret ? "fuzz-cluster-secret-0123456789" : "";
  if (!te::wire::ServerHello(server.get(), te::wire::kChannelRpc, secret, &peer).ok()) return 0;
  te::wire::FrameHeader h;
  std::string payload;
  while (te::wire::RecvFrame(server.get(), &h, &payload).ok()) {
  }
  return 0;
}
