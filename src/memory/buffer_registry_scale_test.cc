// BufferRegistry at inference-server scale: 100,000 buffers, batches, and the
// persistent table checked against a std::map under random registrations.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "memory/buffer_registry.h"

namespace te {
namespace {

constexpr uint32_t kBuffers = 100000;
constexpr uint64_t kStride = 0x2000;  // buffers of 0x1000 with a 0x1000 gap after each

SegmentBuffer Info(uint64_t base, uint64_t length) {
  SegmentBuffer b;
  b.base = base;
  b.length = length;
  b.permission = Permission::kRemoteReadWrite;
  return b;
}

uint64_t BaseOf(uint32_t i) { return 0x10000000 + i * kStride; }

TEST(BufferRegistryScaleTest, HundredThousandBuffers) {
  BufferRegistry r(kBuffers);
  // Half in one batch (one version step), half one by one.
  std::vector<SegmentBuffer> batch;
  for (uint32_t i = 0; i < kBuffers; i += 2) batch.push_back(Info(BaseOf(i), 0x1000));
  const uint64_t v0 = r.version();
  ASSERT_TRUE(r.AddBatch(batch).ok());
  EXPECT_EQ(r.version(), v0 + 1);
  for (uint32_t i = 1; i < kBuffers; i += 2) ASSERT_TRUE(r.Add(Info(BaseOf(i), 0x1000)).ok()) << i;
  auto table = r.Snapshot();
  ASSERT_EQ(table->size(), kBuffers);
  BufferRegistry::Reader reader(&r);
  for (uint32_t i = 0; i < kBuffers; i += 997) {
    BufferPin pin;
    EXPECT_TRUE(reader.Pin(BaseOf(i) + 0x800, 0x800, Access::kRemoteWrite, &pin).ok()) << i;
    EXPECT_EQ(pin.info()->base, BaseOf(i));
    // The gap after each buffer, and a range running into it, are not registered.
    EXPECT_EQ(BufferRegistry::CheckRange(*table, BaseOf(i) + 0x1000, 1, Access::kLocal).code(),
              Status::Code::kOutOfRange);
    EXPECT_EQ(BufferRegistry::CheckRange(*table, BaseOf(i) + 0xfff, 2, Access::kLocal).code(),
              Status::Code::kOutOfRange);
  }
  // Full: a clear error, nothing changes.
  Status s = r.Add(Info(BaseOf(kBuffers), 0x1000));
  EXPECT_EQ(s.code(), Status::Code::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("max_registered_buffers"), std::string::npos) << s.ToString();
  // Overlaps are refused at any position.
  EXPECT_EQ(r.Add(Info(BaseOf(5000) + 0xfff, 0x10)).code(), Status::Code::kAlreadyExists);

  for (uint32_t i = 0; i < kBuffers; i += 2) ASSERT_TRUE(r.Remove(BaseOf(i), 0).ok()) << i;
  std::vector<SegmentBuffer> visible = r.RemoteVisible();
  ASSERT_EQ(visible.size(), kBuffers / 2);
  for (size_t k = 0; k < visible.size(); ++k) EXPECT_EQ(visible[k].base, BaseOf(2 * k + 1));
  // The snapshot taken before still has every buffer: readers never see a half update.
  EXPECT_EQ(table->size(), kBuffers);
  EXPECT_NE(table->Find(BaseOf(0)), nullptr);
  EXPECT_EQ(r.Snapshot()->Find(BaseOf(0)), nullptr);
  // Freed slots are reused.
  ASSERT_TRUE(r.Add(Info(BaseOf(kBuffers), 0x1000)).ok());
}

TEST(BufferRegistryScaleTest, FailedBatchRegistersNothing) {
  BufferRegistry r(1000);
  std::vector<SegmentBuffer> batch;
  for (uint32_t i = 0; i < 999; ++i) batch.push_back(Info(BaseOf(i), 0x1000));
  batch.push_back(Info(BaseOf(10) + 0x10, 0x10));  // overlaps one earlier in the batch
  const uint64_t v = r.version();
  EXPECT_EQ(r.AddBatch(batch).code(), Status::Code::kAlreadyExists);
  EXPECT_EQ(r.version(), v);
  EXPECT_TRUE(r.Snapshot()->empty());
  // Every slot the failed batch claimed is free again.
  batch.back() = Info(BaseOf(999), 0x1000);
  EXPECT_TRUE(r.AddBatch(batch).ok());
  EXPECT_EQ(r.Snapshot()->size(), 1000u);
}

TEST(BufferRegistryScaleTest, MatchesOrderedMapUnderRandomChanges) {
  BufferRegistry r(4096);
  std::map<uint64_t, uint64_t> expected;  // base -> length
  std::mt19937_64 random(14);
  for (int step = 0; step < 20000; ++step) {
    const uint64_t base = 0x1000 * (1 + random() % 4000);
    const uint64_t length = 0x1000 * (1 + random() % 3);
    if (random() % 3 == 0 && !expected.empty()) {
      auto it = expected.lower_bound(base);
      if (it == expected.end()) it = expected.begin();
      ASSERT_TRUE(r.Remove(it->first, 0).ok());
      expected.erase(it);
      continue;
    }
    auto next = expected.lower_bound(base);
    bool overlaps =
        (next != expected.end() && next->first < base + length) ||
        (next != expected.begin() && std::prev(next)->first + std::prev(next)->second > base);
    Status s = r.Add(Info(base, length));
    ASSERT_EQ(s.ok(), !overlaps) << s.ToString();
    if (s.ok()) expected[base] = length;
  }
  std::vector<SegmentBuffer> visible = r.RemoteVisible();
  ASSERT_EQ(visible.size(), expected.size());
  size_t k = 0;
  for (const auto& [base, length] : expected) {
    EXPECT_EQ(visible[k].base, base);
    EXPECT_EQ(visible[k++].length, length);
  }
}

}  // namespace
}  // namespace te
