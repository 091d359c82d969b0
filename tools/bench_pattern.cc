#include "bench_pattern.h"

#include <cstring>

namespace te::bench {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t PatternWord(uint64_t seed, uint64_t index) { return SplitMix64(seed + index); }

// Byte i of a word in memory order (little-endian, so the layout does not depend on
// the host when a word is stored byte by byte).
uint8_t WordByte(uint64_t word, size_t i) { return static_cast<uint8_t>(word >> (8 * i)); }

}  // namespace

uint64_t PatternSeed(uint64_t thread, uint64_t iteration) {
  return SplitMix64(SplitMix64(thread) ^ iteration);
}

uint8_t PatternByte(uint64_t seed, size_t offset) {
  return WordByte(PatternWord(seed, offset / 8), offset % 8);
}

void FillPattern(void* data, size_t len, uint64_t seed) {
  auto* out = static_cast<uint8_t*>(data);
  size_t words = len / 8;
  for (size_t w = 0; w < words; ++w) {
    uint64_t word = PatternWord(seed, w);
    uint8_t bytes[8];
    for (size_t i = 0; i < 8; ++i) bytes[i] = WordByte(word, i);
    std::memcpy(out + w * 8, bytes, 8);
  }
  for (size_t offset = words * 8; offset < len; ++offset) out[offset] = PatternByte(seed, offset);
}

size_t FindPatternMismatch(const void* data, size_t len, uint64_t seed) {
  const auto* in = static_cast<const uint8_t*>(data);
  size_t words = len / 8;
  for (size_t w = 0; w < words; ++w) {
    uint64_t word = PatternWord(seed, w);
    uint8_t bytes[8];
    for (size_t i = 0; i < 8; ++i) bytes[i] = WordByte(word, i);
    if (std::memcmp(in + w * 8, bytes, 8) == 0) continue;
    for (size_t i = 0; i < 8; ++i) {
      if (in[w * 8 + i] != bytes[i]) return w * 8 + i;
    }
  }
  for (size_t offset = words * 8; offset < len; ++offset) {
    if (in[offset] != PatternByte(seed, offset)) return offset;
  }
  return len;
}

}  // namespace te::bench
