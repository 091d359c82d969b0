#include "latency_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace te::bench {
namespace {

// The nearest-rank percentile of sorted samples: the reference the histogram
// approximates.
uint64_t ExactPercentile(const std::vector<uint64_t>& sorted, double percentile) {
  size_t rank = static_cast<size_t>(std::ceil(percentile / 100 * sorted.size() - 1e-9));
  return sorted[std::max<size_t>(rank, 1) - 1];
}

void ExpectWithinBucketError(uint64_t got, uint64_t want, const char* what) {
  EXPECT_LE(std::fabs(static_cast<double>(got) - static_cast<double>(want)),
            static_cast<double>(want) / 256 + 1)
      << what << ": got " << got << ", want " << want;
}

TEST(LatencyHistogramTest, EmptyIsAllZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.Percentile(50), 0u);
  EXPECT_EQ(h.Percentile(100), 0u);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 100u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
  EXPECT_EQ(h.Percentile(50), 50u);
  EXPECT_EQ(h.Percentile(99), 99u);
  EXPECT_EQ(h.Percentile(99.9), 100u);
  EXPECT_EQ(h.Percentile(1), 1u);
}

TEST(LatencyHistogramTest, ZeroAndHundredAreMinAndMax) {
  LatencyHistogram h;
  for (uint64_t v : {7000u, 12345u, 99999u}) h.Record(v);
  EXPECT_EQ(h.Percentile(0), 7000u);
  EXPECT_EQ(h.Percentile(-5), 7000u);
  EXPECT_EQ(h.Percentile(100), 99999u);
  EXPECT_EQ(h.Percentile(250), 99999u);
}

TEST(LatencyHistogramTest, OneValueGivesThatValueEverywhere) {
  LatencyHistogram h;
  for (int i = 0; i < 1000; ++i) h.Record(123457);
  for (double p : {0.0, 1.0, 50.0, 99.0, 99.9, 100.0}) EXPECT_EQ(h.Percentile(p), 123457u) << p;
  EXPECT_DOUBLE_EQ(h.mean(), 123457.0);
}

TEST(LatencyHistogramTest, UniformDistributionWithinBucketError) {
  LatencyHistogram h;
  std::vector<uint64_t> samples;
  for (uint64_t v = 1000; v <= 1000000; v += 7) samples.push_back(v);
  std::shuffle(samples.begin(), samples.end(), std::mt19937_64(42));
  for (uint64_t v : samples) h.Record(v);
  std::sort(samples.begin(), samples.end());
  for (double p : {1.0, 25.0, 50.0, 90.0, 99.0, 99.9}) {
    ExpectWithinBucketError(h.Percentile(p), ExactPercentile(samples, p), "uniform");
  }
}

TEST(LatencyHistogramTest, LongTailDistributionWithinBucketError) {
  // Mostly ~20 us with a rare tail up to 10 ms, like a round trip with hiccups.
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> body(std::log(20000.0), 0.2);
  std::uniform_int_distribution<uint64_t> tail(100000, 10000000);
  LatencyHistogram h;
  std::vector<uint64_t> samples;
  for (int i = 0; i < 200000; ++i) {
    uint64_t v = i % 500 == 0 ? tail(rng) : static_cast<uint64_t>(body(rng));
    samples.push_back(v);
    h.Record(v);
  }
  std::sort(samples.begin(), samples.end());
  for (double p : {50.0, 99.0, 99.9, 99.99}) {
    ExpectWithinBucketError(h.Percentile(p), ExactPercentile(samples, p), "lognormal");
  }
  EXPECT_EQ(h.min(), samples.front());
  EXPECT_EQ(h.max(), samples.back());
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverything) {
  LatencyHistogram a, b, all;
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<uint64_t> dist(1, 50000000);
  for (int i = 0; i < 10000; ++i) {
    uint64_t v = dist(rng);
    (i % 3 ? a : b).Record(v);
    all.Record(v);
  }
  LatencyHistogram empty;
  a.Merge(b);
  a.Merge(empty);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
  for (double p : {0.0, 10.0, 50.0, 99.0, 99.9, 100.0})
    EXPECT_EQ(a.Percentile(p), all.Percentile(p));

  empty.Merge(all);  // into an empty one: min must come from the other side
  EXPECT_EQ(empty.min(), all.min());
  EXPECT_EQ(empty.Percentile(50), all.Percentile(50));
}

TEST(LatencyHistogramTest, ExtremeValues) {
  LatencyHistogram h;
  h.Record(0);
  h.Record(UINT64_MAX);
  h.Record(UINT64_MAX);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), UINT64_MAX);
  EXPECT_EQ(h.Percentile(10), 0u);
  // The middle of the top bucket, [255 << 56, 2^64).
  EXPECT_EQ(h.Percentile(50), (255ULL << 56) + ((1ULL << 56) - 1) / 2);
  // The mean is exact even though the sum does not fit in 64 bits.
  EXPECT_DOUBLE_EQ(h.mean(), 2.0 * static_cast<double>(UINT64_MAX) / 3);
}

TEST(LatencyHistogramTest, BucketsTileTheRangeWithBoundedWidth) {
  EXPECT_EQ(LatencyHistogram::BucketOf(0), 0u);
  EXPECT_EQ(LatencyHistogram::BucketOf(255), 255u);
  EXPECT_EQ(LatencyHistogram::BucketOf(256), 256u);
  EXPECT_EQ(LatencyHistogram::BucketOf(257), 256u);
  EXPECT_EQ(LatencyHistogram::BucketOf(258), 257u);
  const size_t last = LatencyHistogram::BucketOf(UINT64_MAX);
  EXPECT_EQ(LatencyHistogram::BucketHigh(last), UINT64_MAX);
  for (size_t b = 0; b < last; ++b) {
    ASSERT_EQ(LatencyHistogram::BucketHigh(b) + 1, LatencyHistogram::BucketLow(b + 1)) << b;
    ASSERT_EQ(LatencyHistogram::BucketOf(LatencyHistogram::BucketLow(b)), b);
    ASSERT_EQ(LatencyHistogram::BucketOf(LatencyHistogram::BucketHigh(b)), b);
    const uint64_t width = LatencyHistogram::BucketHigh(b) - LatencyHistogram::BucketLow(b) + 1;
    ASSERT_LE(width * 128, std::max<uint64_t>(LatencyHistogram::BucketLow(b), 128)) << b;
  }
}

}  // namespace
}  // namespace te::bench
