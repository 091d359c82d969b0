// The wire protocol shared by the control plane (RPC) and the TCP data transport.
// Every connection starts with a HELLO exchange (rpc/handshake.h); then frames flow, each a fixed
// 48-byte little-endian header followed by payload_len bytes. docs/wire-protocol.md
// is the reference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "te/status.h"

namespace te::wire {

inline constexpr uint32_t kMagic = 0x31455454;  // "TTE1" little-endian
inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kHeaderSize = 48;
// Control payloads (JSON, error text) are bounded; data payloads by the request.
inline constexpr uint64_t kMaxControlPayload = 4 << 20;
// Except a GET_SEGMENT response: a descriptor grows ~140 bytes per buffer, and a
// caller only receives one from the engine it asked (about 1.9 million buffers).
inline constexpr uint64_t kMaxSegmentPayload = 256ull << 20;
// The error text a data connection's failed response carries, at most.
inline constexpr uint64_t kMaxDataErrorText = 4096;

enum class Opcode : uint8_t {
  kHello = 1,
  kGetSegment = 2,  // response payload: segment descriptor JSON
  kNotify = 3,      // request payload: {"from":..., "message":...}
  kAuth = 4,        // handshake proof after HELLO (rpc/handshake.h)
  kRead = 16,       // addr, length; response payload: the bytes
  kWrite = 17,      // addr, length; request payload: the bytes
};

inline constexpr uint8_t kFlagResponse = 1;

struct FrameHeader {
  Opcode opcode = Opcode::kHello;
  uint8_t flags = 0;
  uint16_t status = 0;  // Status::Code of a response; a failed one carries the message
  uint64_t request_id = 0;
  uint64_t addr = 0;
  uint64_t length = 0;
  uint64_t payload_len = 0;

  bool is_response() const { return flags & kFlagResponse; }
};

void EncodeHeader(const FrameHeader& h, uint8_t out[kHeaderSize]);
// Rejects a wrong magic or version, unknown opcodes and flags, oversized control
// payloads, and a data payload that disagrees with length.
Status DecodeHeader(const uint8_t in[kHeaderSize], FrameHeader* h);

// Sends one frame with a control payload.
Status SendFrame(int fd, const FrameHeader& h, const std::string& payload);
// Receives one header and its control payload (bounded by kMaxControlPayload).
Status RecvFrame(int fd, FrameHeader* h, std::string* payload);
// Response helpers: a failed status travels as code + message payload.
Status SendResponse(int fd, const FrameHeader& request, const Status& status,
                    const std::string& payload);
Status ResponseStatus(const FrameHeader& h, const std::string& payload);

}  // namespace te::wire
