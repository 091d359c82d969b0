// Segment descriptors arrive from peers (GET_SEGMENT) and metadata servers; a
// malformed one must be rejected, never crash or yield an inconsistent descriptor.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "metadata/segment_descriptor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  te::SegmentDescriptor d;
  std::string text(reinterpret_cast<const char*>(data), size);
  if (!te::SegmentDescriptor::FromJson(text, &d).ok()) return 0;
  // What was accepted must survive a round trip unchanged.
  te::SegmentDescriptor again;
  if (!te::SegmentDescriptor::FromJson(d.ToJson(), &again).ok()) std::abort();
  if (again.ToJson() != d.ToJson()) std::abort();
  for (const auto& b : d.buffers) d.FindBuffer(b.base, b.length);
  return 0;
}
