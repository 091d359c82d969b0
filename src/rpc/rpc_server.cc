#include "rpc/rpc_server.h"

#include "common/logging.h"

namespace te {
namespace {
constexpr uint32_t kMaxRpcConnections = 1024;
constexpr uint32_t kRpcIoTimeoutMs = 10000;
}  // namespace

Status RpcServer::Start(const std::string& host, uint16_t port, const std::string& secret) {
  secret_ = secret;
  return server_.Start(host, port, kMaxRpcConnections, [this](int fd) { Serve(fd); });
}

void RpcServer::Serve(int fd) {
  SetIoTimeout(fd, kRpcIoTimeoutMs);
  std::string peer;
  Status s = wire::ServerHello(fd, wire::kChannelRpc, secret_, &peer);
  if (!s.ok()) {
    if (metrics_ && s.code() == Status::Code::kPermissionDenied) {
      metrics_->CountRefusal(Refusal::kAuthentication);
    }
    wire::LogRefusedHandshake("rpc", fd, s);
    return;
  }
  for (;;) {
    if (!WaitReadable(fd, -1)) return;
    wire::FrameHeader h;
    std::string request;
    s = wire::RecvFrame(fd, &h, &request);
    if (!s.ok()) {
      if (s.code() != Status::Code::kUnavailable) {
        TE_LOG(Info) << "rpc: dropping connection from '" << peer << "': " << s.ToString();
      }
      return;
    }
    std::string response;
    auto it = methods_.find(h.opcode);
    Status result = h.is_response() || it == methods_.end()
                        ? Status::NotSupported("opcode " + std::to_string(int(h.opcode)) +
                                               " is not served on the rpc channel")
                        : it->second(peer, request, &response);
    if (!wire::SendResponse(fd, h, result, response).ok()) return;
  }
}

}  // namespace te
