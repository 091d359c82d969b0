// Same-host transports across real processes: the test engine and te_test_peer claim
// the same machine id, so the engine picks shared memory (peer buffers in POSIX shm)
// or cross-memory attach (ordinary memory) instead of TCP. Covers byte-exactness at
// sizes from 1 B to 64 MiB with unaligned offsets, the fallback order, read-only
// buffers, unregistration, cleanup after SIGTERM and SIGKILL, and a vanishing peer.
#include <dirent.h>
#include <signal.h>
#include <sys/uio.h>

#include <set>

#include "transfer_fixture.h"

namespace te_test {
namespace {

std::string SharedMachineId() { return "te-same-host-" + std::to_string(::getpid()); }

te::Config SameHostConfig(std::vector<std::string> transports) {
  te::Config config = LoopbackConfig();
  config.machine_id = SharedMachineId();
  config.transports = std::move(transports);
  return config;
}

// Names under /dev/shm created by process `pid` (our objects are /te.<pid>.*).
std::set<std::string> ShmObjectsOf(pid_t pid) {
  std::set<std::string> out;
  const std::string prefix = "te." + std::to_string(pid) + ".";
  if (DIR* dir = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(dir)) {
      if (std::string(e->d_name).rfind(prefix, 0) == 0) out.insert(e->d_name);
    }
    ::closedir(dir);
  }
  return out;
}

// Whether this kernel lets us process_vm_readv a child of ours (ptrace rules).
bool CmaPermitted() {
  static const bool permitted = [] {
    PeerProcess probe;
    std::string error;
    if (!probe.Start({"--buffers=1", "--size=4096"}, &error)) return false;
    char byte;
    iovec l{&byte, 1}, r{reinterpret_cast<void*>(probe.buffers()[0].base), 1};
    return ::process_vm_readv(probe.pid(), &l, 1, &r, 1, 0) == 1;
  }();
  return permitted;
}

class SameHostTest : public PeerTransferTest {
 protected:
  void SetUp() override {}  // each test starts the engine with its transports

  std::vector<std::string> PeerArgs(uint64_t size, const std::string& permission, uint64_t fill,
                                    bool shm, const std::string& transports) {
    auto args = Args(1, size, permission, fill);
    args.push_back("--machine_id=" + SharedMachineId());
    args.push_back(std::string("--shm=") + (shm ? "1" : "0"));
    args.push_back("--transports=" + transports);
    return args;
  }

  // Starts our engine with `transport` alone and a peer with one buffer of `size`
  // bytes (in shared memory for shm), opens it, and allocates `size` local bytes.
  void Connect(const std::string& transport, uint64_t size, const std::string& permission,
               uint64_t fill, PeerProcess** peer, te::SegmentHandle* seg, void** local) {
    ASSERT_NO_FATAL_FAILURE(StartEngine(SameHostConfig({transport})));
    ASSERT_NO_FATAL_FAILURE(
        StartPeer(PeerArgs(size, permission, fill, transport == "shm", transport), peer));
    ASSERT_NO_FATAL_FAILURE(OpenPeer(**peer, seg));
    ASSERT_NO_FATAL_FAILURE(AllocLocal(size, local));
  }
};

struct SizeCase {
  std::string transport;
  uint64_t size;
};

class SameHostSizeTest : public SameHostTest, public ::testing::WithParamInterface<SizeCase> {};

TEST_P(SameHostSizeTest, ReadAndWriteAreByteExactAtUnalignedOffsets) {
  const auto [transport, size] = GetParam();
  if (transport == "cma" && !CmaPermitted()) GTEST_SKIP() << "kernel forbids process_vm_readv";
  ASSERT_NO_FATAL_FAILURE(StartEngine(SameHostConfig({transport})));
  const uint64_t fill = 5, peer_seed = BufferSeed(fill, 0), write_seed = 77;
  const uint64_t offset = 3;  // unaligned on both sides
  const uint64_t peer_size = size + 2 * offset;
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(
      StartPeer(PeerArgs(peer_size, "rw", fill, transport == "shm", transport), &peer));
  const uint64_t remote = peer->buffers()[0].base + offset;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  void* local_base;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size + 2 * offset, &local_base));
  uint8_t* local = Ptr(local_base, offset + 2);

  std::memset(local_base, 0, size + 2 * offset);
  Outcome read = RunOne(*engine_, Request::READ, local, seg, remote, size, 60s);
  ASSERT_TRUE(read.completed()) << read.Describe();
  EXPECT_EQ(FirstPatternMismatch(local, size, peer_seed, offset), -1);

  FillPattern(local, size, write_seed);
  Outcome write = RunOne(*engine_, Request::WRITE, local, seg, remote, size, 60s);
  ASSERT_TRUE(write.completed()) << write.Describe();
  EXPECT_EQ(PeerChecksum(*peer, remote, size), Checksum(local, size));
  // The bytes around the written range are untouched.
  EXPECT_EQ(PeerChecksum(*peer, remote - offset, offset), PatternChecksum(peer_seed, 0, offset));
  EXPECT_EQ(PeerChecksum(*peer, remote + size, offset),
            PatternChecksum(peer_seed, offset + size, offset));
  EXPECT_EQ(engine_->primaryTransport(), transport);
}

INSTANTIATE_TEST_SUITE_P(Sizes, SameHostSizeTest,
                         ::testing::Values(SizeCase{"shm", 1}, SizeCase{"shm", 4 * kKiB},
                                           SizeCase{"shm", 64 * kKiB}, SizeCase{"shm", 1 * kMiB},
                                           SizeCase{"shm", 64 * kMiB}, SizeCase{"cma", 1},
                                           SizeCase{"cma", 4 * kKiB}, SizeCase{"cma", 64 * kKiB},
                                           SizeCase{"cma", 1 * kMiB}, SizeCase{"cma", 64 * kMiB}),
                         [](const ::testing::TestParamInfo<SizeCase>& info) {
                           uint64_t v = info.param.size;
                           std::string size = v >= kMiB   ? std::to_string(v / kMiB) + "MiB"
                                              : v >= kKiB ? std::to_string(v / kKiB) + "KiB"
                                                          : std::to_string(v) + "B";
                           return info.param.transport + "_" + size;
                         });

// Small slices are copied in groups (CMA: one system call per run of slices going the
// same way, adjacent ranges merged): a batch longer than a group, READs and WRITEs
// interleaved in runs, ranges adjacent and apart, must land byte-exact.
class SameHostGroupTest : public SameHostTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(SameHostGroupTest, ManySmallSlicesInterleavedAndAdjacent) {
  const std::string transport = GetParam();
  if (transport == "cma" && !CmaPermitted()) GTEST_SKIP() << "kernel forbids process_vm_readv";
  constexpr uint64_t kSize = 1 * kMiB, kSlices = 150;
  const uint64_t fill = 9, peer_seed = BufferSeed(fill, 0), write_seed = 31;
  PeerProcess* peer;
  te::SegmentHandle seg;
  void* local;
  ASSERT_NO_FATAL_FAILURE(Connect(transport, kSize, "rw", fill, &peer, &seg, &local));
  std::memset(local, 0, kSize);
  FillPattern(local, kSize, write_seed);
  const uint64_t base = peer->buffers()[0].base;
  std::vector<Request> requests;
  uint64_t offset = 1;
  for (uint64_t i = 0; i < kSlices; ++i) {
    const uint64_t length = 100 + (i * 37) % 900;
    // Runs of three the same way; every fifth slice leaves a gap before the next.
    const auto op = (i / 3) % 2 == 0 ? Request::READ : Request::WRITE;
    requests.push_back(MakeRequest(op, Ptr(local, offset), seg, base + offset, length));
    offset += length + (i % 5 == 4 ? 13 : 0);
  }
  ASSERT_LT(offset, kSize);
  // What each WRITE sends, before the READs overwrite neighbouring local bytes.
  std::vector<uint64_t> sent(kSlices);
  for (uint64_t i = 0; i < kSlices; ++i) sent[i] = Checksum(requests[i].source, requests[i].length);
  Outcome out = RunBatch(*engine_, requests, 30s);
  ASSERT_TRUE(out.completed()) << out.Describe();
  for (uint64_t i = 0; i < kSlices; ++i) {
    const Request& r = requests[i];
    const uint64_t at = r.target_offset - base;
    if (r.opcode == Request::READ) {
      EXPECT_EQ(FirstPatternMismatch(r.source, r.length, peer_seed, at), -1) << "slice " << i;
    } else {
      EXPECT_EQ(PeerChecksum(*peer, r.target_offset, r.length), sent[i]) << "slice " << i;
    }
  }
  EXPECT_EQ(engine_->primaryTransport(), transport);
}

INSTANTIATE_TEST_SUITE_P(Transports, SameHostGroupTest, ::testing::Values("shm", "cma"));

// The engine picks per segment and buffer: shm for shared memory, then CMA for plain
// memory, then TCP; a transport disabled on either side drops out of the choice.
TEST_F(SameHostTest, FallbackOrder) {
  struct Case {
    std::vector<std::string> ours;
    bool peer_shm;
    std::string peer_transports;
    std::string expected;
  };
  std::vector<Case> cases = {
      {{"local", "shm", "cma", "tcp"}, true, "local,shm,cma,tcp", "shm"},
      {{"local", "shm", "tcp"}, false, "local,shm,cma,tcp", "tcp"},
      {{"local", "cma", "tcp"}, true, "local,shm,cma,tcp", "cma"},
      {{"local", "shm", "cma", "tcp"}, true, "local,tcp", "tcp"},
  };
  if (CmaPermitted())
    cases.push_back({{"local", "shm", "cma", "tcp"}, false, "local,shm,cma,tcp", "cma"});
  for (const Case& c : cases) {
    SCOPED_TRACE("peer shm=" + std::to_string(c.peer_shm) +
                 " peer transports=" + c.peer_transports + " expected " + c.expected);
    if (c.expected == "cma" && !CmaPermitted()) continue;
    ASSERT_NO_FATAL_FAILURE(StartEngine(SameHostConfig(c.ours)));
    PeerProcess* peer;
    ASSERT_NO_FATAL_FAILURE(
        StartPeer(PeerArgs(64 * kKiB, "rw", 1, c.peer_shm, c.peer_transports), &peer));
    te::SegmentHandle seg;
    ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
    void* local;
    ASSERT_NO_FATAL_FAILURE(AllocLocal(64 * kKiB, &local));
    Outcome read = RunOne(*engine_, Request::READ, local, seg, peer->buffers()[0].base, 64 * kKiB);
    ASSERT_TRUE(read.completed()) << read.Describe();
    EXPECT_EQ(FirstPatternMismatch(local, 64 * kKiB, BufferSeed(1, 0)), -1);
    EXPECT_EQ(engine_->primaryTransport(), c.expected);
  }
}

TEST_F(SameHostTest, ReadOnlyBufferRejectsWritesWithoutFault) {
  for (const std::string transport : {"shm", "cma"}) {
    SCOPED_TRACE(transport);
    if (transport == "cma" && !CmaPermitted()) continue;
    PeerProcess* peer;
    te::SegmentHandle seg;
    void* local;
    ASSERT_NO_FATAL_FAILURE(Connect(transport, 64 * kKiB, "ro", 2, &peer, &seg, &local));
    const uint64_t remote = peer->buffers()[0].base;
    Outcome write = RunOne(*engine_, Request::WRITE, local, seg, remote, 4 * kKiB);
    EXPECT_TRUE(write.rejected()) << write.Describe();
    EXPECT_NE(write.Describe().find("read-only"), std::string::npos) << write.Describe();
    EXPECT_EQ(PeerChecksum(*peer, remote, 4 * kKiB),
              PatternChecksum(BufferSeed(2, 0), 0, 4 * kKiB));
    Outcome read = RunOne(*engine_, Request::READ, local, seg, remote, 64 * kKiB);
    EXPECT_TRUE(read.completed()) << read.Describe();
  }
}

// A buffer the peer unregistered is no longer reachable through a stale descriptor:
// the peer's pin table says the slot is dead.
TEST_F(SameHostTest, UnregisteredBufferFailsCleanly) {
  for (const std::string transport : {"shm", "cma"}) {
    SCOPED_TRACE(transport);
    if (transport == "cma" && !CmaPermitted()) continue;
    PeerProcess* peer;
    te::SegmentHandle seg;
    void* local;
    ASSERT_NO_FATAL_FAILURE(Connect(transport, 64 * kKiB, "rw", 3, &peer, &seg, &local));
    const uint64_t remote = peer->buffers()[0].base;
    ASSERT_EQ(peer->Command("UNREGISTER " + std::to_string(remote)), "OK");
    Outcome read = RunOne(*engine_, Request::READ, local, seg, remote, 4 * kKiB);
    EXPECT_TRUE(read.rejected()) << read.Describe();
    EXPECT_NE(read.Describe().find("unregistered"), std::string::npos) << read.Describe();
  }
}

// The peer registers the same memory again after we read its descriptor: the pin
// generation we hold is stale, so the same-host copy refuses it. With TCP enabled
// too, the slice is retried there, where the peer checks its live registry: the
// transfer completes, and the retry is counted. With shared memory alone it fails.
TEST_F(SameHostTest, StaleDescriptorRetriesOnTheNextTransport) {
  for (bool with_tcp : {true, false}) {
    SCOPED_TRACE(with_tcp ? "shm,cma,tcp" : "shm only");
    std::vector<std::string> ours = {"shm"};
    if (with_tcp) ours = {"shm", "cma", "tcp"};
    ASSERT_NO_FATAL_FAILURE(StartEngine(SameHostConfig(ours)));
    PeerProcess* peer;
    ASSERT_NO_FATAL_FAILURE(StartPeer(PeerArgs(kMiB, "rw", 8, true, "shm,cma,tcp"), &peer));
    te::SegmentHandle seg;
    ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
    void* local;
    ASSERT_NO_FATAL_FAILURE(AllocLocal(kMiB, &local));
    const uint64_t remote = peer->buffers()[0].base;
    ASSERT_EQ(peer->Command("REREGISTER " + std::to_string(remote) + " rw"), "OK");

    Outcome read = RunOne(*engine_, Request::READ, local, seg, remote, kMiB);
    te::EngineStatistics stats;
    ASSERT_TRUE(engine_->getStatistics(&stats).ok());
    if (with_tcp) {
      ASSERT_TRUE(read.completed()) << read.Describe();
      EXPECT_EQ(FirstPatternMismatch(local, kMiB, BufferSeed(8, 0)), -1);
      EXPECT_GE(stats.retried_slices, 1u);
      EXPECT_EQ(stats.bytes_by_transport["tcp"], kMiB);
    } else {
      EXPECT_TRUE(read.rejected()) << read.Describe();
      EXPECT_EQ(stats.retried_slices, 0u);
    }
  }
}

TEST_F(SameHostTest, SharedMemoryRemovedAfterSigterm) {
  ASSERT_NO_FATAL_FAILURE(StartEngine(SameHostConfig({"shm"})));
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(PeerArgs(64 * kKiB, "rw", 4, true, "shm"), &peer));
  const pid_t pid = peer->pid();
  EXPECT_GE(ShmObjectsOf(pid).size(), 2u);  // the buffer and the pin table
  peer->Signal(SIGTERM);
  ASSERT_TRUE(peer->WaitExit(10s));
  EXPECT_TRUE(ShmObjectsOf(pid).empty());
}

TEST_F(SameHostTest, StaleSharedMemoryOfKilledProcessRemovedAtNextStart) {
  ASSERT_NO_FATAL_FAILURE(StartEngine(SameHostConfig({"shm"})));
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(PeerArgs(64 * kKiB, "rw", 5, true, "shm"), &peer));
  const pid_t pid = peer->pid();
  ASSERT_FALSE(ShmObjectsOf(pid).empty());
  peer->Signal(SIGKILL);
  ASSERT_TRUE(peer->WaitExit(10s));
  EXPECT_FALSE(ShmObjectsOf(pid).empty()) << "SIGKILL leaves the objects behind";
  // A new engine with a same-host transport sweeps objects of dead processes.
  ASSERT_NO_FATAL_FAILURE(StartEngine(SameHostConfig({"shm"})));
  EXPECT_TRUE(ShmObjectsOf(pid).empty());
  EXPECT_FALSE(ShmObjectsOf(::getpid()).empty()) << "objects of live engines stay";
}

// Counts the tasks of `statuses` in `state`.
size_t CountIn(const std::vector<te::TransferStatus>& statuses, TransferState state) {
  return static_cast<size_t>(std::count_if(statuses.begin(), statuses.end(),
                                           [&](const auto& t) { return t.state == state; }));
}

// The peer is killed while its batch is part done (some slices completed, some still
// pending, both seen just before the kill): every slice then ends completed with the
// right bytes or failed with an error, none stays pending, nothing faults, and new
// requests fail because the peer is gone.
TEST_F(SameHostTest, PeerVanishingMidTransferFailsWithoutFault) {
  for (const std::string transport : {"shm", "cma"}) {
    SCOPED_TRACE(transport);
    if (transport == "cma" && !CmaPermitted()) continue;
    const uint64_t size = 64 * kMiB, slice = 256 * kKiB, fill = 6;
    PeerProcess* peer = nullptr;
    te::SegmentHandle seg;
    void* local = nullptr;
    std::vector<Request> requests;
    te::BatchID batch = 0;
    std::vector<te::TransferStatus> at_kill;
    // A fast machine may finish the whole batch between two polls: then try again with
    // a fresh peer, a few times, before giving up on catching it mid-copy.
    for (int attempt = 0; attempt < 5; ++attempt) {
      ASSERT_NO_FATAL_FAILURE(Connect(transport, size, "rw", fill, &peer, &seg, &local));
      const uint64_t remote = peer->buffers()[0].base;
      requests.clear();
      for (uint64_t off = 0; off < size; off += slice) {
        requests.push_back(MakeRequest(Request::READ, Ptr(local, off), seg, remote + off, slice));
      }
      ASSERT_TRUE(engine_->allocateBatch(requests.size() * 2, &batch).ok());
      ASSERT_TRUE(engine_->submitTransfer(batch, requests).ok());
      const auto deadline = Clock::now() + 20s;
      do {
        ASSERT_TRUE(engine_->getTransferStatus(batch, &at_kill).ok());
      } while (CountIn(at_kill, TransferState::kCompleted) == 0 && Clock::now() < deadline);
      if (CountIn(at_kill, TransferState::kPending) > 0) break;
      ASSERT_TRUE(WaitBatch(*engine_, batch, 20s).state != TransferState::kPending);
      ASSERT_TRUE(engine_->freeBatch(batch).ok());
      batch = 0;
      peer->Signal(SIGKILL);  // frees its 64 MiB before the next attempt's peer
      ASSERT_TRUE(peer->WaitExit(10s));
    }
    if (batch == 0) GTEST_SKIP() << "every batch completed before the peer could be killed";
    ASSERT_GT(CountIn(at_kill, TransferState::kCompleted), 0u);
    peer->Signal(SIGKILL);
    ASSERT_TRUE(peer->WaitExit(10s));
    te::TransferStatus overall = WaitBatch(*engine_, batch, 20s);
    ASSERT_NE(overall.state, TransferState::kPending) << overall.error;
    std::vector<te::TransferStatus> tasks;
    ASSERT_TRUE(engine_->getTransferStatus(batch, &tasks).ok());
    for (size_t i = 0; i < requests.size(); ++i) {
      SCOPED_TRACE("slice " + std::to_string(i));
      if (tasks[i].state == TransferState::kCompleted) {
        EXPECT_EQ(
            FirstPatternMismatch(Ptr(local, i * slice), slice, BufferSeed(fill, 0), i * slice), -1);
      } else {
        EXPECT_EQ(tasks[i].state, TransferState::kFailed);
        EXPECT_FALSE(tasks[i].error.empty());
      }
    }
    // After the death is visible, new requests fail instead of copying into the void.
    ASSERT_TRUE(engine_->submitTransfer(batch, {requests[0]}).ok());
    te::TransferStatus after;
    const auto deadline = Clock::now() + 10s;
    do {
      ASSERT_TRUE(engine_->getTransferStatus(batch, requests.size(), &after).ok());
      std::this_thread::sleep_for(1ms);  // polling, bounded by the deadline
    } while (after.state == TransferState::kPending && Clock::now() < deadline);
    EXPECT_EQ(after.state, TransferState::kFailed);
    EXPECT_NE(after.error.find("gone"), std::string::npos) << after.error;
    EXPECT_TRUE(engine_->freeBatch(batch).ok());
  }
}

}  // namespace
}  // namespace te_test
