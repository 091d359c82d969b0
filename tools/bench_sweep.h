// Sweeps: --size, --batch and --threads take one value, as the spec has them, or a
// list of values and ranges; the benchmark runs one case per combination. Parsing is
// kept apart from the benchmark so that it can be unit tested.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "te/status.h"

namespace te::bench {

// Upper bounds that keep a typo from starting a run that never ends.
inline constexpr size_t kMaxSweepValues = 1000;
inline constexpr size_t kMaxSweepCases = 10000;

// Parses `text`, the value of --<flag>: comma-separated items, each
//   N           a number; with byte_suffixes also NK, NM, NG (x1024, x1024^2, x1024^3)
//   A:B         A, 2A, 4A, ... up to B
//   A:B:+S      A, A+S, A+2S, ... up to B
//   A:B:*F      A, A*F, A*F^2, ... up to B
// Values keep the order given and must be at least 1. A plain number gives exactly
// that one value. InvalidArgument with a one-line message naming the flag otherwise.
Status ParseSweep(const std::string& flag, const std::string& text, bool byte_suffixes,
                  std::vector<uint64_t>* values);

// One combination of the sweeps.
struct BenchCase {
  uint64_t threads = 0;
  uint64_t batch = 0;
  uint64_t size = 0;
};

// Every combination: threads outermost, then batch, then size (so that a table of
// cases reads as one block-size sweep per thread count and batch size).
std::vector<BenchCase> ExpandCases(const std::vector<uint64_t>& threads,
                                   const std::vector<uint64_t>& batches,
                                   const std::vector<uint64_t>& sizes);

// "64KiB", "1MiB", "1000B": the exact size, in the largest binary unit that divides it.
std::string FormatSize(uint64_t bytes);

}  // namespace te::bench
