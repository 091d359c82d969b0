// The data the integrity check writes and expects back: 8-byte words from a
// SplitMix64 sequence, so every byte depends on the seed and on its offset, and a
// block landing at the wrong place is caught as surely as a corrupted one.
#pragma once

#include <cstddef>
#include <cstdint>

namespace te::bench {

// A seed distinct for every (thread, iteration) pair.
uint64_t PatternSeed(uint64_t thread, uint64_t iteration);

// The byte FillPattern(seed) puts at `offset`.
uint8_t PatternByte(uint64_t seed, size_t offset);

// Fills [data, data + len) with the pattern of `seed`, offsets counted from data.
void FillPattern(void* data, size_t len, uint64_t seed);

// Offset of the first byte that differs from FillPattern(seed); len when none does.
size_t FindPatternMismatch(const void* data, size_t len, uint64_t seed);

}  // namespace te::bench
