// SegmentDescriptor: what a peer needs to reach a segment. Travels as JSON over p2p
// RPC and is stored as the value in central metadata servers (docs/metadata.md).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/range.h"
#include "te/status.h"
#include "te/types.h"

namespace te {

// A buffer as published: what peers see, plus its slot in the owner's pin table.
struct SegmentBuffer : BufferInfo {
  static constexpr uint32_t kNoPinSlot = UINT32_MAX;
  SegmentBuffer() = default;
  SegmentBuffer(const BufferInfo& info) : BufferInfo(info) {}  // NOLINT: implicit on purpose
  uint32_t pin_slot = kNoPinSlot;
  uint64_t pin_generation = 0;
  // Transport name -> what that transport published for this buffer (a CUDA IPC
  // handle, a packed remote key): opaque here, read only by that transport.
  std::map<std::string, std::string> transport_data;

  // transport_data[transport], or empty.
  const std::string& TransportData(const std::string& transport) const;
};

// Descriptors written before transports owned their per-buffer data gave some of it
// a key of its own in the buffer's JSON (a CUDA IPC handle was "device_handle").
// Decoding moves such a value to transport_data[transport], so old descriptors still
// read. The transport table (transport/transport_registry.cc) says which key is whose,
// so this codec names no transport.
struct LegacyBufferKey {
  const char* key;
  const char* transport;
};
std::vector<LegacyBufferKey> LegacyBufferKeys();

// One buffer as the JSON object it is in a descriptor's "buffers" (central metadata
// stores each buffer as an entry of its own: docs/metadata.md). Parsing is as strict
// as FromJson's.
std::string SegmentBufferToJson(const SegmentBuffer& buffer);
Status SegmentBufferFromJson(const std::string& text, SegmentBuffer* out);
// Sorts by base (when not sorted already); overlapping buffers are a ProtocolError.
Status SortAndCheckBuffers(std::vector<SegmentBuffer>* buffers);

struct SegmentDescriptor {
  std::string name;
  std::string machine_id;
  uint32_t pid = 0;
  std::string rpc_host;
  uint16_t rpc_port = 0;
  // Transport name -> what that transport publishes per engine (an endpoint, a
  // worker address; empty when none is needed): opaque here.
  std::map<std::string, std::string> transports;
  std::vector<SegmentBuffer> buffers;  // remote-visible only, sorted by base
  // POSIX shared-memory name of the owner's pin table; empty when not shared.
  std::string pin_table;

  std::string ToJson() const;
  // Strict: wrong types, overlapping or overflowing buffers and unknown permissions
  // are errors, so a hostile peer cannot plant a descriptor that confuses us.
  static Status FromJson(const std::string& text, SegmentDescriptor* out);
  // The buffer containing [addr, addr+len), or nullptr.
  const SegmentBuffer* FindBuffer(uint64_t addr, uint64_t len) const;
};

}  // namespace te
