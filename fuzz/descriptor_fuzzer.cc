// Segment descriptors arrive from peers (GET_SEGMENT) and metadata servers (there as a
// header and one entry per buffer, or whole from a key-only http server); a malformed
// one must be rejected, never crash or yield an inconsistent descriptor.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "metadata/segment_descriptor.h"
#include "metadata/segment_entries.h"

namespace {

// The central stores' pieces: what parses must survive a round trip unchanged.
void CheckEntries(const std::string& text) {
  te::SegmentBuffer b;
  if (te::SegmentBufferFromJson(text, &b).ok()) {
    te::SegmentBuffer again;
    if (!te::SegmentBufferFromJson(te::SegmentBufferToJson(b), &again).ok()) std::abort();
    if (te::SegmentBufferToJson(again) != te::SegmentBufferToJson(b)) std::abort();
  }
  te::SegmentDescriptor header;
  te::HeaderState state;
  if (te::HeaderFromJson(text, &header, &state).ok()) {
    const std::string json = te::HeaderToJson(header, state);
    te::SegmentDescriptor header2;
    te::HeaderState state2;
    if (!te::HeaderFromJson(json, &header2, &state2).ok()) std::abort();
    if (te::HeaderToJson(header2, state2) != json) std::abort();
    std::vector<uint64_t> bases;
    state.ChangedSince(state.instance + ":0", &bases);
  }
  // A key-only http server's whole segment: splits and joins back unchanged.
  te::WholeSegment whole;
  if (te::WholeSegment::FromJson(text, &whole).ok()) {
    te::WholeSegment again;
    if (!te::WholeSegment::FromJson(whole.ToJson(), &again).ok()) std::abort();
    if (again.header != whole.header || again.buffers != whole.buffers) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  te::SegmentDescriptor d;
  std::string text(reinterpret_cast<const char*>(data), size);
  CheckEntries(text);
  if (!te::SegmentDescriptor::FromJson(text, &d).ok()) return 0;
  // What was accepted must survive a round trip unchanged.
  te::SegmentDescriptor again;
  if (!te::SegmentDescriptor::FromJson(d.ToJson(), &again).ok()) std::abort();
  if (again.ToJson() != d.ToJson()) std::abort();
  for (const auto& b : d.buffers) d.FindBuffer(b.base, b.length);
  return 0;
}
