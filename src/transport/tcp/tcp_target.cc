#include "transport/tcp/tcp_target.h"

#include "common/logging.h"
#include "common/socket.h"
#include "memory/memory.h"
#include "rpc/handshake.h"
#include "rpc/wire.h"
#include "transport/tcp/payload_io.h"

namespace te {
namespace {

// Answers one request. A rejected request still has its payload drained so the
// connection stays in step and keeps serving. Returns an error only when the
// connection itself is unusable.
Status ServeOne(int fd, const wire::FrameHeader& h, BufferRegistry::Reader* reader,
                EngineMetrics* metrics) {
  if (h.is_response() || (h.opcode != wire::Opcode::kRead && h.opcode != wire::Opcode::kWrite)) {
    return Status::ProtocolError("unexpected frame on a data connection");
  }
  const bool is_read = h.opcode == wire::Opcode::kRead;
  BufferPin pin;
  Status verdict = h.length == 0
                       ? Status::InvalidArgument("zero-length request")
                       : reader->Pin(h.addr, h.length,
                                     is_read ? Access::kRemoteRead : Access::kRemoteWrite, &pin);
  wire::FrameHeader reply;
  reply.opcode = h.opcode;
  reply.flags = wire::kFlagResponse;
  reply.request_id = h.request_id;
  reply.length = h.length;
  uint8_t raw[wire::kHeaderSize];
  if (!verdict.ok()) {
    if (metrics) metrics->CountRefusal(verdict);
    if (!is_read) TE_RETURN_IF_ERROR(RecvDiscard(fd, h.payload_len));
    return wire::SendResponse(fd, h, verdict, "");
  }
  if (metrics) metrics->CountServed(h.length);
  char* target = reinterpret_cast<char*>(h.addr);
  const int device = LocationDevice(pin.info()->location);
  if (is_read) {
    reply.payload_len = h.length;
    wire::EncodeHeader(reply, raw);
    if (device == kHostMemory) {
      iovec iov[2] = {{raw, sizeof(raw)}, {target, h.length}};
      return SendAll(fd, iov, 2);
    }
    TE_RETURN_IF_ERROR(SendAll(fd, raw, sizeof(raw)));
    return SendPayload(fd, device, target, h.length);
  }
  TE_RETURN_IF_ERROR(RecvPayload(fd, device, target, h.length));
  pin.Release();
  wire::EncodeHeader(reply, raw);
  return SendAll(fd, raw, sizeof(raw));
}

}  // namespace

void ServeTcpDataConnection(int fd, BufferRegistry* registry, uint32_t io_timeout_ms,
                            const std::string& secret, EngineMetrics* metrics) {
  SetIoTimeout(fd, io_timeout_ms);
  std::string peer;
  Status s = wire::ServerHello(fd, wire::kChannelTcpData, secret, &peer);
  if (!s.ok()) {
    if (metrics && s.code() == Status::Code::kPermissionDenied) {
      metrics->CountRefusal(Refusal::kAuthentication);
    }
    wire::LogRefusedHandshake("tcp", fd, s);
    return;
  }
  SetBulkBuffers(fd);
  const GaugeHold open(metrics ? metrics->Connections("tcp", /*inbound=*/true) : nullptr);
  BufferRegistry::Reader reader(registry);
  uint8_t raw[wire::kHeaderSize];
  for (;;) {
    // An idle connection may stay silent forever. Blocking in recv rather than in poll
    // first saves a system call per request.
    bool idle = false;
    s = RecvAllOrIdle(fd, raw, sizeof(raw), &idle);
    if (idle) continue;
    wire::FrameHeader h;
    if (s.ok()) s = wire::DecodeHeader(raw, &h);
    if (s.ok()) s = ServeOne(fd, h, &reader, metrics);
    if (!s.ok()) {
      if (s.code() != Status::Code::kUnavailable) {
        TE_LOG(Info) << "tcp: closing data connection from '" << peer << "': " << s.ToString();
      }
      return;
    }
  }
}

}  // namespace te
