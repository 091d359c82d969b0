// LatencyHistogram: latency percentiles without storing samples. Buckets are
// log-linear (as in HdrHistogram): values below 256 have a bucket each, and every
// power of two above that is split into 128 equal buckets, so a reported value is
// within 0.4% of a sample in its bucket. Recording is an index computation and one
// increment; a histogram covers the whole uint64 range in a fixed 58 KiB.
//
// Not thread-safe: give each thread its own and Merge them at the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace te::bench {

class LatencyHistogram {
 public:
  LatencyHistogram();

  void Record(uint64_t value);
  // Adds other's samples to this one.
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  // Exact smallest and largest recorded values; 0 when empty.
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  // Exact mean of the recorded values; 0 when empty.
  double mean() const;
  // The value below or at which `percentile` percent of the samples lie (nearest
  // rank), as the middle of its bucket clamped to [min, max]: 0 gives min, 100 max.
  // 0 when empty; percentile is clamped to [0, 100].
  uint64_t Percentile(double percentile) const;

  // Bucket layout, exposed for tests.
  static size_t BucketOf(uint64_t value);
  static uint64_t BucketLow(size_t bucket);
  static uint64_t BucketHigh(size_t bucket);  // inclusive

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  unsigned __int128 sum_ = 0;  // wide, so that the mean stays exact for any samples
};

}  // namespace te::bench
