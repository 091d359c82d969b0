#include "latency_histogram.h"

#include <algorithm>
#include <cmath>

namespace te::bench {
namespace {

// 2^kSubBits buckets per power of two; values below 2^(kSubBits + 1) are exact.
constexpr int kSubBits = 7;
constexpr uint64_t kSubBuckets = 1ULL << kSubBits;
constexpr uint64_t kExactLimit = 2 * kSubBuckets;
// The largest shift is 63 - kSubBits (a value with bit 63 set).
constexpr size_t kBuckets = (64 - kSubBits) * kSubBuckets + kSubBuckets;

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(kBuckets, 0) {}

size_t LatencyHistogram::BucketOf(uint64_t value) {
  if (value < kExactLimit) return static_cast<size_t>(value);
  const int shift = 63 - __builtin_clzll(value) - kSubBits;
  return static_cast<size_t>(shift) * kSubBuckets + (value >> shift);
}

uint64_t LatencyHistogram::BucketLow(size_t bucket) {
  if (bucket < kExactLimit) return bucket;
  const uint64_t shift = bucket / kSubBuckets - 1;
  return (bucket - shift * kSubBuckets) << shift;
}

uint64_t LatencyHistogram::BucketHigh(size_t bucket) {
  if (bucket < kExactLimit) return bucket;
  const uint64_t shift = bucket / kSubBuckets - 1;
  return BucketLow(bucket) + ((1ULL << shift) - 1);
}

void LatencyHistogram::Record(uint64_t value) {
  ++counts_[BucketOf(value)];
  ++count_;
  sum_ += value;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

double LatencyHistogram::mean() const {
  return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0.0;
}

uint64_t LatencyHistogram::Percentile(double percentile) const {
  if (count_ == 0) return 0;
  if (!(percentile > 0)) return min_;
  if (percentile >= 100) return max_;
  // Nearest rank; the small margin keeps e.g. 99.9% of 1000 at rank 999 despite
  // 99.9 having no exact binary form.
  const long double exact = static_cast<long double>(percentile) * count_ / 100;
  const uint64_t rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(exact - exact * 1e-12L)));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const uint64_t middle = BucketLow(i) + (BucketHigh(i) - BucketLow(i)) / 2;
      return std::clamp(middle, min_, max_);
    }
  }
  return max_;
}

}  // namespace te::bench
