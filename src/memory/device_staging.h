// Device memory through byte streams. A socket cannot send from or receive into
// device memory, so those bytes go through two pinned host chunks: the device copy of
// one chunk overlaps the stream I/O of the other (double buffering). Used by both
// sides of the TCP transport; chunks and copy streams are pooled per device and
// allocated on first use, so DRAM-only processes never pin any memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "te/status.h"

namespace te {

// Bytes per staging chunk: large enough that a copy's fixed cost disappears, small
// enough that the first chunk's copy (not overlapped) is short.
inline constexpr size_t kStagingChunkSize = 2 << 20;

// Hands len bytes of device memory at src (on `device`) to sink, chunk by chunk, in
// order. The first failure, of a copy or of sink, ends it.
Status StageFromDevice(int device, const char* src, uint64_t len,
                       const std::function<Status(const char* data, size_t n)>& sink);
// Fills len bytes of device memory at dst (on `device`) from source, chunk by chunk,
// in order; when it returns OK every byte has landed.
Status StageToDevice(int device, char* dst, uint64_t len,
                     const std::function<Status(char* data, size_t n)>& source);

}  // namespace te
