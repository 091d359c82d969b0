// GPU memory end to end: cuda:N allocation and registration, in-process copies
// between DRAM and VRAM, a same-host peer through CUDA IPC, and TCP with pinned
// staging on both sides. Every test needs a CUDA device and skips without one (a build
// without -DUSE_CUDA=ON, or a machine without a GPU or driver); none passes vacuously
// where a device exists.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "memory/device_memory.h"
#include "memory/device_staging.h"
#include "transfer_fixture.h"

namespace te_test {
namespace {

#define ASSERT_OK(expr)                                       \
  do {                                                        \
    const te::Status st_ = (expr);                            \
    ASSERT_TRUE(st_.ok()) << #expr << ": " << st_.ToString(); \
  } while (0)

// Larger than two staging chunks and not a multiple of anything: the double-buffered
// paths run their first, middle and short last chunk.
constexpr uint64_t kOddSize = 2 * te::kStagingChunkSize + 12345;

class GpuTransferTest : public PeerTransferTest {
 protected:
  void SetUp() override {
    if (te::DeviceCount() == 0) {
      GTEST_SKIP() << (te::DeviceMemoryBuilt()
                           ? "no CUDA device (cudaGetDeviceCount reports none)"
                           : "a build without -DUSE_CUDA=ON has no device memory");
    }
    PeerTransferTest::SetUp();
  }

  // An engine that looks like its peers' host: same-host transports reach them.
  void StartSameHostEngine(const std::vector<std::string>& transports = {}) {
    te::Config config = LoopbackConfig();
    config.machine_id = SharedMachineId();
    if (!transports.empty()) config.transports = transports;
    StartEngine(config);
  }

  // TCP only, with slices larger than two staging chunks.
  void StartTcpEngine() {
    te::Config config = LoopbackConfig();
    config.transports = {"tcp"};
    config.slice_size = 4 * te::kStagingChunkSize;
    StartEngine(config);
  }

  // Starts a peer with one buffer of `size` bytes holding pattern `fill`, given `extra`
  // flags, and opens its segment.
  void StartOpenPeer(uint64_t size, const std::string& permission, uint64_t fill,
                     const std::vector<std::string>& extra, PeerProcess** peer,
                     te::SegmentHandle* seg) {
    std::vector<std::string> args = Args(1, size, permission, fill);
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_NO_FATAL_FAILURE(StartPeer(args, peer));
    ASSERT_NO_FATAL_FAILURE(OpenPeer(**peer, seg));
  }

  static std::string SharedMachineId() { return "te-gpu-host-" + std::to_string(::getpid()); }

  // Allocates and registers `size` bytes at `location` holding pattern `seed`.
  void AllocAt(const std::string& location, uint64_t size, uint64_t seed, void** out,
               Permission permission = Permission::kRemoteReadWrite) {
    te::MemoryOptions options;
    options.location = location;
    options.permission = permission;
    ASSERT_OK(engine_->allocateLocalMemory(out, size, options));
    ASSERT_OK(Fill(*out, size, seed));
    ASSERT_OK(engine_->registerLocalMemory(*out, size, options));
  }

  static te::Status Fill(void* dst, uint64_t size, uint64_t seed) {
    std::vector<uint8_t> host(size);
    FillPattern(host.data(), size, seed);
    return te::CopyMemory(dst, host.data(), size);
  }

  static uint64_t ChecksumOf(const void* src, uint64_t size) {
    std::vector<uint8_t> host(size);
    te::Status s = te::CopyMemory(host.data(), src, size);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return Checksum(host.data(), size);
  }

  uint64_t BytesBy(const std::string& transport) {
    te::EngineStatistics stats;
    EXPECT_TRUE(engine_->getStatistics(&stats).ok());
    auto it = stats.bytes_by_transport.find(transport);
    return it == stats.bytes_by_transport.end() ? 0 : it->second;
  }

  // Writes `size` bytes from local (pattern seed) to the peer's buffer at `offset`,
  // checks the peer's copy, then reads them back into zeroed local memory.
  void RoundTrip(PeerProcess& peer, te::SegmentHandle seg, void* local, uint64_t offset,
                 uint64_t size, uint64_t seed) {
    ASSERT_OK(Fill(local, size, seed));
    const uint64_t remote = peer.buffers()[0].base + offset;
    Outcome w = RunOne(*engine_, Request::WRITE, local, seg, remote, size);
    ASSERT_TRUE(w.completed()) << w.Describe();
    EXPECT_EQ(PeerChecksum(peer, remote, size), PatternChecksum(seed, 0, size));
    std::vector<uint8_t> zeros(size, 0);
    ASSERT_OK(te::CopyMemory(local, zeros.data(), size));
    Outcome r = RunOne(*engine_, Request::READ, local, seg, remote, size);
    ASSERT_TRUE(r.completed()) << r.Describe();
    EXPECT_EQ(ChecksumOf(local, size), PatternChecksum(seed, 0, size));
  }
};

TEST_F(GpuTransferTest, AllocatesDeviceMemoryAtCudaLocations) {
  void* p = nullptr;
  ASSERT_NO_FATAL_FAILURE(AllocAt("cuda:0", 1 * kMiB, 7, &p));
  EXPECT_EQ(te::DeviceOf(p), 0) << "allocateLocalMemory(cuda:0) must return device memory";
  te::SegmentHandle self;
  ASSERT_OK(engine_->openSegment(&self, engine_->getSegmentName()));
  te::SegmentInfo info;
  ASSERT_OK(engine_->getSegmentInfo(self, &info));
  ASSERT_EQ(info.buffers.size(), 1u);
  EXPECT_EQ(info.buffers[0].location, "cuda:0");

  void* q = nullptr;
  te::MemoryOptions beyond;
  beyond.location = "cuda:" + std::to_string(te::DeviceCount());
  EXPECT_EQ(engine_->allocateLocalMemory(&q, 4096, beyond).code(),
            te::Status::Code::kInvalidArgument);
  te::MemoryOptions shm;
  shm.location = "cuda:0";
  shm.shm = true;
  EXPECT_EQ(engine_->allocateLocalMemory(&q, 4096, shm).code(), te::Status::Code::kInvalidArgument);
  ASSERT_OK(engine_->freeLocalMemory(p));
}

TEST_F(GpuTransferTest, RegistersUserDeviceMemoryByItsKind) {
  void* user = nullptr;
  ASSERT_OK(te::DeviceAllocate(0, 1 * kMiB, &user));  // cudaMalloc, not the engine's
  ASSERT_OK(engine_->registerLocalMemory(user, 1 * kMiB));
  te::SegmentHandle self;
  ASSERT_OK(engine_->openSegment(&self, engine_->getSegmentName()));
  te::SegmentInfo info;
  ASSERT_OK(engine_->getSegmentInfo(self, &info));
  ASSERT_EQ(info.buffers.size(), 1u);
  EXPECT_EQ(info.buffers[0].location, "cuda:0") << "the pointer's kind decides";
  ASSERT_OK(engine_->unregisterLocalMemory(user));

  te::MemoryOptions as_dram;
  as_dram.location = "cpu:0";
  EXPECT_EQ(engine_->registerLocalMemory(user, 1 * kMiB, as_dram).code(),
            te::Status::Code::kInvalidArgument);
  std::vector<uint8_t> host(4096);
  te::MemoryOptions as_vram;
  as_vram.location = "cuda:0";
  EXPECT_EQ(engine_->registerLocalMemory(host.data(), host.size(), as_vram).code(),
            te::Status::Code::kInvalidArgument);
  te::DeviceFree(user);
}

TEST_F(GpuTransferTest, InProcessCopiesBetweenDramAndVram) {
  void *dram = nullptr, *vram = nullptr, *vram2 = nullptr;
  ASSERT_NO_FATAL_FAILURE(AllocAt("cpu:0", kOddSize, 1, &dram));
  ASSERT_NO_FATAL_FAILURE(AllocAt("cuda:0", kOddSize, 2, &vram));
  ASSERT_NO_FATAL_FAILURE(AllocAt("cuda:0", kOddSize, 3, &vram2));
  te::SegmentHandle self;
  ASSERT_OK(engine_->openSegment(&self, engine_->getSegmentName()));
  // DRAM -> VRAM at an odd offset, VRAM -> DRAM, VRAM -> VRAM.
  const uint64_t len = kOddSize - 3;
  Outcome w = RunOne(*engine_, Request::WRITE, Ptr(dram, 1), self, Addr(vram) + 2, len);
  ASSERT_TRUE(w.completed()) << w.Describe();
  EXPECT_EQ(ChecksumOf(Ptr(vram, 2), len), PatternChecksum(1, 1, len));
  Outcome r = RunOne(*engine_, Request::READ, dram, self, Addr(vram2), kOddSize);
  ASSERT_TRUE(r.completed()) << r.Describe();
  EXPECT_EQ(Checksum(dram, kOddSize), PatternChecksum(3, 0, kOddSize));
  Outcome d = RunOne(*engine_, Request::WRITE, vram2, self, Addr(vram), kOddSize);
  ASSERT_TRUE(d.completed()) << d.Describe();
  EXPECT_EQ(ChecksumOf(vram, kOddSize), PatternChecksum(3, 0, kOddSize));
  EXPECT_GT(BytesBy("local"), 0u);
}

TEST_F(GpuTransferTest, SameHostPeerThroughCudaIpc) {
  ASSERT_NO_FATAL_FAILURE(StartSameHostEngine());
  PeerProcess* peer = nullptr;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(StartOpenPeer(
      kOddSize, "rw", 5, {"--location=cuda:0", "--machine_id=" + SharedMachineId()}, &peer, &seg));
  void *vram = nullptr, *dram = nullptr;
  ASSERT_NO_FATAL_FAILURE(AllocAt("cuda:0", kOddSize, 0, &vram));
  ASSERT_NO_FATAL_FAILURE(AllocAt("cpu:0", kOddSize, 0, &dram));
  ASSERT_NO_FATAL_FAILURE(RoundTrip(*peer, seg, vram, 0, kOddSize, 11));      // device to device
  ASSERT_NO_FATAL_FAILURE(RoundTrip(*peer, seg, dram, 1, kOddSize - 1, 12));  // host <-> device
  EXPECT_GT(BytesBy("cuda_ipc"), 0u);
  EXPECT_EQ(BytesBy("tcp"), 0u) << "a same-host VRAM peer is reached without the network";
  EXPECT_EQ(BytesBy("shm") + BytesBy("cma"), 0u);
}

TEST_F(GpuTransferTest, VramNeverGoesThroughShmOrCma) {
  // The peer's buffer is DRAM in shared memory, which shm would map; our side is VRAM,
  // which no memcpy may touch: the request must go over TCP.
  ASSERT_NO_FATAL_FAILURE(StartSameHostEngine());
  PeerProcess* peer = nullptr;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(StartOpenPeer(
      kOddSize, "rw", 6, {"--shm=1", "--machine_id=" + SharedMachineId()}, &peer, &seg));
  void* vram = nullptr;
  ASSERT_NO_FATAL_FAILURE(AllocAt("cuda:0", kOddSize, 0, &vram));
  ASSERT_NO_FATAL_FAILURE(RoundTrip(*peer, seg, vram, 0, kOddSize, 13));
  EXPECT_EQ(BytesBy("shm") + BytesBy("cma") + BytesBy("cuda_ipc"), 0u);
  EXPECT_GT(BytesBy("tcp"), 0u);
}

TEST_F(GpuTransferTest, TcpVramToVram) {
  ASSERT_NO_FATAL_FAILURE(StartTcpEngine());
  PeerProcess* peer = nullptr;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(
      StartOpenPeer(kOddSize, "rw", 7, {"--location=cuda:0", "--transports=tcp"}, &peer, &seg));
  void* vram = nullptr;
  ASSERT_NO_FATAL_FAILURE(AllocAt("cuda:0", kOddSize, 0, &vram));
  ASSERT_NO_FATAL_FAILURE(RoundTrip(*peer, seg, vram, 0, kOddSize, 21));
  EXPECT_EQ(BytesBy("tcp"), 2 * kOddSize);
}

TEST_F(GpuTransferTest, TcpDramAndVramBothWays) {
  ASSERT_NO_FATAL_FAILURE(StartTcpEngine());
  PeerProcess *vram_peer = nullptr, *dram_peer = nullptr;
  te::SegmentHandle to_vram, to_dram;
  ASSERT_NO_FATAL_FAILURE(
      StartOpenPeer(kOddSize, "rw", 8, {"--transports=tcp"}, &dram_peer, &to_dram));
  ASSERT_NO_FATAL_FAILURE(StartOpenPeer(
      kOddSize, "rw", 8, {"--location=cuda:0", "--transports=tcp"}, &vram_peer, &to_vram));
  void *dram = nullptr, *vram = nullptr;
  ASSERT_NO_FATAL_FAILURE(AllocAt("cpu:0", kOddSize, 0, &dram));
  ASSERT_NO_FATAL_FAILURE(AllocAt("cuda:0", kOddSize, 0, &vram));
  ASSERT_NO_FATAL_FAILURE(RoundTrip(*vram_peer, to_vram, dram, 0, kOddSize, 31));  // target stages
  ASSERT_NO_FATAL_FAILURE(RoundTrip(*dram_peer, to_dram, vram, 0, kOddSize, 32));  // we stage
}

TEST_F(GpuTransferTest, TcpIntegrityAtUnalignedSizes) {
  ASSERT_NO_FATAL_FAILURE(StartTcpEngine());
  PeerProcess* peer = nullptr;
  te::SegmentHandle seg;
  const uint64_t capacity = 3 * te::kStagingChunkSize;
  ASSERT_NO_FATAL_FAILURE(StartOpenPeer(capacity + 64, "rw", 9,
                                        {"--location=cuda:0", "--transports=tcp"}, &peer, &seg));
  void* vram = nullptr;
  ASSERT_NO_FATAL_FAILURE(AllocAt("cuda:0", capacity + 64, 0, &vram));
  uint64_t seed = 40;
  for (uint64_t size : {uint64_t{1}, uint64_t{4095}, te::kStagingChunkSize,
                        te::kStagingChunkSize + 1, capacity - 17}) {
    SCOPED_TRACE("size " + std::to_string(size));
    ASSERT_NO_FATAL_FAILURE(RoundTrip(*peer, seg, vram, 13, size, ++seed));
  }
}

TEST_F(GpuTransferTest, ReadOnlyVramRefusesWrites) {
  for (const char* transport : {"tcp", "cuda_ipc"}) {
    SCOPED_TRACE(transport);
    ASSERT_NO_FATAL_FAILURE(StartSameHostEngine({"local", transport}));
    PeerProcess* peer = nullptr;
    te::SegmentHandle seg;
    ASSERT_NO_FATAL_FAILURE(StartOpenPeer(1 * kMiB, "ro", 10,
                                          {"--location=cuda:0", "--machine_id=" + SharedMachineId(),
                                           std::string("--transports=") + transport},
                                          &peer, &seg));
    void* vram = nullptr;
    ASSERT_NO_FATAL_FAILURE(AllocAt("cuda:0", 1 * kMiB, 99, &vram));
    const uint64_t remote = peer->buffers()[0].base;
    Outcome w = RunOne(*engine_, Request::WRITE, vram, seg, remote, 1 * kMiB);
    EXPECT_FALSE(w.completed()) << w.Describe();
    EXPECT_NE(w.task_error.find("PermissionDenied"), std::string::npos) << w.Describe();
    EXPECT_EQ(PeerChecksum(*peer, remote, 1 * kMiB),
              PatternChecksum(BufferSeed(10, 0), 0, 1 * kMiB))
        << "a refused WRITE must leave the buffer untouched";
    Outcome r = RunOne(*engine_, Request::READ, vram, seg, remote, 1 * kMiB);
    EXPECT_TRUE(r.completed()) << r.Describe();
    EXPECT_GT(BytesBy(transport), 0u);
  }
}

}  // namespace
}  // namespace te_test
