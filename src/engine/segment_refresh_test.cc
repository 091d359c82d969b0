// Opening and refreshing a segment of many buffers (p2p): a refresh of an unchanged
// descriptor moves only its tag, a changed one is seen at once, batch registration is
// all or none, and older callers (empty GET_SEGMENT request) still get the descriptor.
#include <gtest/gtest.h>

#include <memory>
#include <utility>
#include <vector>

#include "metadata/metadata_client.h"
#include "rpc/rpc_client.h"
#include "te/transfer_engine.h"

namespace te {
namespace {

constexpr size_t kBuffers = 10000;
constexpr size_t kSize = 64;

std::unique_ptr<TransferEngine> MakeEngine() {
  Config c;
  c.rpc_host = "127.0.0.1";
  c.transports = {"tcp"};
  c.log_level = "error";
  auto engine = std::make_unique<TransferEngine>(c);
  EXPECT_TRUE(engine->available()) << engine->status().ToString();
  return engine;
}

size_t BuffersSeen(TransferEngine& peer, SegmentHandle handle) {
  SegmentInfo info;
  EXPECT_TRUE(peer.getSegmentInfo(handle, &info).ok());
  return info.buffers.size();
}

uint64_t Publishes(TransferEngine& engine) {
  EngineStatistics stats;
  EXPECT_TRUE(engine.getStatistics(&stats).ok());
  uint64_t publishes = 0;
  for (const MetadataOperationCount& op : stats.metadata_operations) {
    if (op.operation == "publish") publishes += op.count;
  }
  return publishes;
}

TEST(SegmentRefreshTest, TenThousandBuffers) {
  auto owner = MakeEngine();
  auto peer = MakeEngine();
  const uint64_t publishes_at_start = Publishes(*owner);
  std::vector<char> memory(kBuffers * kSize + kSize);
  std::vector<std::pair<void*, size_t>> buffers;
  for (size_t i = 0; i < kBuffers; ++i) buffers.emplace_back(&memory[i * kSize], kSize);
  MemoryOptions options;
  options.permission = Permission::kRemoteReadWrite;
  ASSERT_TRUE(owner->registerLocalMemoryBatch(buffers, options).ok());
  // All or none: a batch with one overlap registers nothing.
  std::vector<std::pair<void*, size_t>> overlapping = {{&memory[kBuffers * kSize], kSize},
                                                       {&memory[0], 1}};
  EXPECT_EQ(owner->registerLocalMemoryBatch(overlapping, options).code(),
            Status::Code::kAlreadyExists);
  // p2p peers ask the owner: registering must never build and "publish" the whole
  // descriptor (O(n) per registration), whatever wraps the backend (metrics do).
  EXPECT_EQ(Publishes(*owner), publishes_at_start);

  SegmentHandle handle = 0;
  ASSERT_TRUE(peer->openSegment(&handle, owner->getSegmentName()).ok());
  EXPECT_EQ(BuffersSeen(*peer, handle), kBuffers);
  ASSERT_TRUE(peer->refreshSegment(handle).ok());  // unchanged
  EXPECT_EQ(BuffersSeen(*peer, handle), kBuffers);
  ASSERT_TRUE(owner->registerLocalMemory(&memory[kBuffers * kSize], kSize, options).ok());
  ASSERT_TRUE(peer->refreshSegment(handle).ok());
  EXPECT_EQ(BuffersSeen(*peer, handle), kBuffers + 1);
  ASSERT_TRUE(owner->unregisterLocalMemory(&memory[kBuffers * kSize]).ok());
  ASSERT_TRUE(peer->refreshSegment(handle).ok());
  EXPECT_EQ(BuffersSeen(*peer, handle), kBuffers);

  // On the wire: the full descriptor for an empty request (older callers) or a stale
  // tag, nothing for the current tag.
  RpcTarget target{"127.0.0.1", owner->getRpcPort(), 5000};
  std::string full, unchanged = "not empty", stale;
  ASSERT_TRUE(RpcCall(target, {}, wire::Opcode::kGetSegment, "", &full).ok());
  EXPECT_GT(full.size(), kBuffers * 20);
  ASSERT_TRUE(RpcCall(target, {}, wire::Opcode::kGetSegment, DescriptorTag(full), &unchanged).ok());
  EXPECT_TRUE(unchanged.empty());
  ASSERT_TRUE(RpcCall(target, {}, wire::Opcode::kGetSegment, "0-0000000000000000", &stale).ok());
  EXPECT_EQ(stale, full);
}

}  // namespace
}  // namespace te
