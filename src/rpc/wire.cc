#include "rpc/wire.h"

#include "common/socket.h"

namespace te::wire {
namespace {

void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t Get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool KnownOpcode(uint8_t op) {
  switch (static_cast<Opcode>(op)) {
    case Opcode::kHello:
    case Opcode::kGetSegment:
    case Opcode::kNotify:
    case Opcode::kAuth:
    case Opcode::kRead:
    case Opcode::kWrite:
      return true;
  }
  return false;
}

uint64_t ControlLimit(const FrameHeader& h) {
  return h.opcode == Opcode::kGetSegment && h.is_response() ? kMaxSegmentPayload
                                                            : kMaxControlPayload;
}

}  // namespace

// Layout: magic u32 | version u8 | opcode u8 | flags u8 | reserved u8 | status u16 |
// reserved u16 | reserved u32 | request_id u64 | addr u64 | length u64 | payload_len u64
void EncodeHeader(const FrameHeader& h, uint8_t out[kHeaderSize]) {
  Put32(out, kMagic);
  out[4] = kVersion;
  out[5] = static_cast<uint8_t>(h.opcode);
  out[6] = h.flags;
  out[7] = 0;
  Put16(out + 8, h.status);
  Put16(out + 10, 0);
  Put32(out + 12, 0);
  Put64(out + 16, h.request_id);
  Put64(out + 24, h.addr);
  Put64(out + 32, h.length);
  Put64(out + 40, h.payload_len);
}

Status DecodeHeader(const uint8_t in[kHeaderSize], FrameHeader* h) {
  if (Get32(in) != kMagic) return Status::ProtocolError("bad frame magic");
  if (in[4] != kVersion) {
    return Status::ProtocolError("unsupported protocol version " + std::to_string(in[4]));
  }
  if (!KnownOpcode(in[5])) return Status::ProtocolError("unknown opcode " + std::to_string(in[5]));
  if ((in[6] & ~kFlagResponse) != 0) return Status::ProtocolError("unknown frame flags");
  h->opcode = static_cast<Opcode>(in[5]);
  h->flags = in[6];
  h->status = Get16(in + 8);
  h->request_id = Get64(in + 16);
  h->addr = Get64(in + 24);
  h->length = Get64(in + 32);
  h->payload_len = Get64(in + 40);
  bool carries_data = (h->opcode == Opcode::kWrite && !h->is_response()) ||
                      (h->opcode == Opcode::kRead && h->is_response() && h->status == 0);
  if (carries_data) {
    if (h->payload_len != h->length) {
      return Status::ProtocolError("data payload of " + std::to_string(h->payload_len) +
                                   " bytes for a request of " + std::to_string(h->length));
    }
  } else if (h->payload_len > ControlLimit(*h)) {
    return Status::ProtocolError("control payload of " + std::to_string(h->payload_len) +
                                 " bytes exceeds the limit");
  }
  return Status::OK();
}

Status SendFrame(int fd, const FrameHeader& h, const std::string& payload) {
  uint8_t buf[kHeaderSize];
  FrameHeader copy = h;
  copy.payload_len = payload.size();
  EncodeHeader(copy, buf);
  iovec iov[2] = {{buf, kHeaderSize}, {const_cast<char*>(payload.data()), payload.size()}};
  return SendAll(fd, iov, payload.empty() ? 1 : 2);
}

Status RecvFrame(int fd, FrameHeader* h, std::string* payload) {
  uint8_t buf[kHeaderSize];
  TE_RETURN_IF_ERROR(RecvAll(fd, buf, kHeaderSize));
  TE_RETURN_IF_ERROR(DecodeHeader(buf, h));
  if (h->payload_len > ControlLimit(*h)) {
    return Status::ProtocolError("unexpected data frame on a control connection");
  }
  payload->resize(h->payload_len);
  return RecvAll(fd, payload->data(), payload->size());
}

Status SendResponse(int fd, const FrameHeader& request, const Status& status,
                    const std::string& payload) {
  FrameHeader h;
  h.opcode = request.opcode;
  h.flags = kFlagResponse;
  h.request_id = request.request_id;
  h.status = static_cast<uint16_t>(status.code());
  return SendFrame(fd, h, status.ok() ? payload : status.message());
}

Status ResponseStatus(const FrameHeader& h, const std::string& payload) {
  if (h.status == 0) return Status::OK();
  if (h.status > static_cast<uint16_t>(Status::Code::kInternal)) {
    return Status::ProtocolError("peer answered unknown status " + std::to_string(h.status));
  }
  return Status(static_cast<Status::Code>(h.status), "peer: " + payload);
}

}  // namespace te::wire
