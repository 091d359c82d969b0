// A deterministic byte pattern the metadata tests write and check across processes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace te_test {

inline uint8_t PatternAt(uint64_t seed, uint64_t offset) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + offset / 8;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  return static_cast<uint8_t>(x >> ((offset % 8) * 8));
}

inline void FillPattern(void* dst, size_t len, uint64_t seed) {
  auto* p = static_cast<uint8_t*>(dst);
  for (size_t i = 0; i < len; ++i) p[i] = PatternAt(seed, i);
}

// Offset of the first byte that differs from the pattern, or -1.
inline int64_t PatternMismatch(const void* data, size_t len, uint64_t seed) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < len; ++i) {
    if (p[i] != PatternAt(seed, i)) return static_cast<int64_t>(i);
  }
  return -1;
}

}  // namespace te_test
