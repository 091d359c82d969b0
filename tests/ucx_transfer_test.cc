// Cross-process tests of the ucx transport through the public API: this process's
// engine (transports local and ucx) against te_test_peer processes serving ucx only,
// over UCX's tcp and over its shared memory (UCX_TLS on both sides). Each engine
// claims its own machine id, so nothing else could carry the bytes. Skipped, saying
// why, in a build without UCX.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "peer_process.h"
#include "te/transfer_engine.h"
#include "test_util.h"
#include "transfer_fixture.h"
#include "transport/ucx/ucx_context.h"

namespace te_test {
namespace {

using namespace std::chrono_literals;

constexpr uint32_t kTransferTimeoutMs = 2000;

class UcxEngineTest : public PeerTransferTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    if (!te::UcxBuilt()) GTEST_SKIP() << "this build has no UCX (TE_WITH_UCX=OFF or no libucx-dev)";
    te::Config config = LoopbackConfig();
    config.transports = {"local", "ucx"};
    config.ucx_tls = GetParam();
    config.transfer_timeout_ms = kTransferTimeoutMs;
    StartEngine(config);
  }

  // A peer serving ucx only, with `buffers` buffers of `size` bytes.
  void StartUcxPeer(uint64_t buffers, uint64_t size, const std::string& permission, uint64_t fill,
                    PeerProcess** peer, te::SegmentHandle* seg) {
    std::vector<std::string> args = Args(buffers, size, permission, fill);
    args.push_back("--transports=ucx");
    args.push_back("--ucx_tls=" + GetParam());
    args.push_back("--transfer_timeout_ms=" + std::to_string(kTransferTimeoutMs));
    ASSERT_NO_FATAL_FAILURE(StartPeer(args, peer));
    ASSERT_NO_FATAL_FAILURE(OpenPeer(**peer, seg));
  }

  uint64_t UcxBytes() {
    te::EngineStatistics stats;
    EXPECT_TRUE(engine_->getStatistics(&stats).ok());
    return stats.bytes_by_transport["ucx"];
  }
};

// WRITE then READ back at sizes from one byte to several slices, at unaligned
// offsets: the peer holds exactly what was written, nothing beside it moved, and the
// bytes went over ucx.
TEST_P(UcxEngineTest, UcxReadWriteIntegrityAtSeveralSizes) {
  const uint64_t size = 20 * kMiB, fill = 21;
  PeerProcess* peer;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(StartUcxPeer(1, size, "rw", fill, &peer, &seg));
  const uint64_t base = peer->buffers()[0].base;
  void* local;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &local));
  uint64_t at = 3;
  for (uint64_t length : {uint64_t{1}, uint64_t{4097}, 64 * kKiB, kMiB + 13, 16 * kMiB + 5}) {
    SCOPED_TRACE(std::to_string(length) + " bytes at offset " + std::to_string(at));
    FillPattern(local, length, 1000 + length);
    Outcome w = RunOne(*engine_, Request::WRITE, local, seg, base + at, length);
    ASSERT_TRUE(w.completed()) << w.Describe();
    EXPECT_EQ(PeerChecksum(*peer, base + at, length), PatternChecksum(1000 + length, 0, length));
    EXPECT_EQ(PeerChecksum(*peer, base + at - 3, 3),
              PatternChecksum(BufferSeed(fill, 0), at - 3, 3));
    std::memset(local, 0, length);
    Outcome r = RunOne(*engine_, Request::READ, local, seg, base + at, length);
    ASSERT_TRUE(r.completed()) << r.Describe();
    EXPECT_EQ(FirstPatternMismatch(local, length, 1000 + length), -1);
    at += length + 61;  // the next write and the bytes before it lie past this one
  }
  EXPECT_GT(UcxBytes(), 2 * (16 * kMiB));
}

// A read-only buffer refuses WRITE (before anything is posted: UCX over tcp or
// shared memory would not) and serves READ; ranges outside the buffer are refused
// whichever way they miss, and the peer's bytes stay as they were.
TEST_P(UcxEngineTest, UcxPermissionAndBoundsRefusedLocally) {
  const uint64_t size = 64 * kKiB, fill = 22;
  PeerProcess* peer;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(StartUcxPeer(2, size, "rw,ro", fill, &peer, &seg));
  const uint64_t rw = peer->buffers()[0].base, ro = peer->buffers()[1].base;
  void* local;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size + 4096, &local));
  FillPattern(local, size + 4096, 77);

  Outcome w = RunOne(*engine_, Request::WRITE, local, seg, ro, 4096, 10s);
  EXPECT_TRUE(w.rejected()) << w.Describe();
  EXPECT_NE(w.task_error.find("read-only"), std::string::npos) << w.Describe();
  EXPECT_EQ(PeerChecksum(*peer, ro, size), PatternChecksum(BufferSeed(fill, 1), 0, size));
  Outcome r = RunOne(*engine_, Request::READ, local, seg, ro + 5, 4096);
  ASSERT_TRUE(r.completed()) << r.Describe();
  EXPECT_EQ(FirstPatternMismatch(local, 4096, BufferSeed(fill, 1), 5), -1);

  // Bounds against a peer with one buffer: with two, a miss of one may hit the other.
  PeerProcess* single;
  te::SegmentHandle single_seg;
  ASSERT_NO_FATAL_FAILURE(StartUcxPeer(1, size, "rw", fill, &single, &single_seg));
  const uint64_t base = single->buffers()[0].base;
  FillPattern(local, size + 4096, 78);
  ExpectRangesMissingBufferRejected(single_seg, local, base, size);
  EXPECT_EQ(PeerChecksum(*single, base, size), PatternChecksum(BufferSeed(fill, 0), 0, size));
  EXPECT_EQ(PeerChecksum(*peer, rw, size), PatternChecksum(BufferSeed(fill, 0), 0, size));
}

// The peer is SIGKILLed while a 64 MiB WRITE runs: every task ends (none pending)
// within the transfer timeout and some margin, and a later transfer to the dead
// peer fails, just as bounded, instead of hanging.
TEST_P(UcxEngineTest, UcxPeerKilledMidTransferFailsWithinTimeout) {
  const uint64_t size = 64 * kMiB;
  PeerProcess* peer;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(StartUcxPeer(1, size, "rw", 23, &peer, &seg));
  const uint64_t remote = peer->buffers()[0].base;
  void* local;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &local));
  std::vector<Request> requests = ConsecutiveRequests(Request::WRITE, local, seg, remote, 64, kMiB);
  te::BatchID batch;
  ASSERT_TRUE(engine_->allocateBatch(requests.size(), &batch).ok());
  ASSERT_TRUE(engine_->submitTransfer(batch, requests).ok());
  peer->Signal(SIGKILL);  // races with the transfer on purpose
  ASSERT_TRUE(peer->WaitExit(5s));
  const auto bound = std::chrono::milliseconds(kTransferTimeoutMs) + 20s;
  te::TransferStatus overall = WaitBatch(*engine_, batch, bound);
  EXPECT_NE(overall.state, TransferState::kPending) << overall.error;
  EXPECT_TRUE(engine_->freeBatch(batch).ok());

  Outcome late = RunOne(*engine_, Request::READ, local, seg, remote, kMiB, bound);
  EXPECT_TRUE(late.rejected()) << late.Describe();
}

INSTANTIATE_TEST_SUITE_P(Tcp, UcxEngineTest, ::testing::Values("tcp"));
INSTANTIATE_TEST_SUITE_P(Shm, UcxEngineTest, ::testing::Values("posix,sysv,cma"));

}  // namespace
}  // namespace te_test
