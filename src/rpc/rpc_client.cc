#include "rpc/rpc_client.h"

#include "common/socket.h"

namespace te {

Status RpcCall(const RpcTarget& target, const wire::Credentials& self, wire::Opcode opcode,
               const std::string& request, std::string* response) {
  UniqueFd fd;
  TE_RETURN_IF_ERROR(Connect(target.host, target.port, target.timeout_ms, &fd));
  TE_RETURN_IF_ERROR(SetIoTimeout(fd.get(), target.timeout_ms));
  const std::string where = target.host + ":" + std::to_string(target.port);
  Status s = wire::ClientHello(fd.get(), wire::kChannelRpc, self);
  if (!s.ok()) return Status(s.code(), "handshake with " + where + ": " + s.message());
  wire::FrameHeader h;
  h.opcode = opcode;
  h.request_id = 1;
  TE_RETURN_IF_ERROR(wire::SendFrame(fd.get(), h, request));
  wire::FrameHeader reply;
  s = wire::RecvFrame(fd.get(), &reply, response);
  if (!s.ok()) return Status(s.code(), "rpc to " + where + ": " + s.message());
  if (!reply.is_response() || reply.opcode != opcode || reply.request_id != h.request_id) {
    return Status::ProtocolError("rpc to " + where + ": mismatched reply");
  }
  return wire::ResponseStatus(reply, *response);
}

}  // namespace te
