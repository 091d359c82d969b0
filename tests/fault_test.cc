// Faults across real processes: a target killed in the middle of traffic, while the
// initiator also works with another target, and the same target restarted under the
// same name.
#include <signal.h>

#include "peer_sockets.h"
#include "transfer_fixture.h"

namespace te_test {
namespace {

using FaultTest = PeerTransferTest;

// The rpc port in a peer's segment name "host:port".
std::string PortOf(const PeerProcess& peer) {
  const std::string& name = peer.segment_name();
  return name.substr(name.rfind(':') + 1);
}

std::vector<te::Request> Spread(Request::OpCode op, void* local, te::SegmentHandle seg,
                                uint64_t remote, uint64_t total, uint64_t each) {
  std::vector<te::Request> requests;
  for (uint64_t off = 0; off < total; off += each) {
    requests.push_back(MakeRequest(op, Ptr(local, off), seg, remote + off, each));
  }
  return requests;
}

TEST_F(FaultTest, KilledTargetFailsItsTasksOthersGoOnAndItsRestartIsUsable) {
  const uint64_t size = 32 * kMiB;
  PeerProcess* victim;
  PeerProcess* bystander;
  // The victim binds a port of its own (no port "free a moment ago" that a parallel
  // test could take first); its restart binds the same one again.
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, size, "rw", 51), &victim));
  const std::string port = PortOf(*victim);
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, size, "rw", 52), &bystander));
  const std::string victim_name = victim->segment_name();
  te::SegmentHandle victim_seg, bystander_seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*victim, &victim_seg));
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*bystander, &bystander_seg));
  void *to_victim, *from_bystander;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &to_victim));
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &from_bystander));

  // Both batches in flight, the victim's surely so (it is stopped, so nothing it is
  // sent can complete); then it dies without a word.
  StopPeer(victim);
  te::BatchID doomed, healthy;
  auto doomed_requests =
      Spread(Request::WRITE, to_victim, victim_seg, victim->buffers()[0].base, size, kMiB);
  auto healthy_requests = Spread(Request::READ, from_bystander, bystander_seg,
                                 bystander->buffers()[0].base, size, kMiB);
  ASSERT_TRUE(engine_->allocateBatch(doomed_requests.size(), &doomed).ok());
  ASSERT_TRUE(engine_->allocateBatch(healthy_requests.size(), &healthy).ok());
  ASSERT_TRUE(engine_->submitTransfer(doomed, doomed_requests).ok());
  ASSERT_TRUE(engine_->submitTransfer(healthy, healthy_requests).ok());
  ASSERT_NO_FATAL_FAILURE(WaitUntilRequestsReachStoppedPeer(*victim));
  const auto killed = Clock::now();
  victim->Signal(SIGKILL);
  ASSERT_TRUE(victim->WaitExit(5s));

  // Within the configured transfer timeout nothing of the victim's batch is pending;
  // whatever did not reach it is FAILED. The slack is the timeout again, not a guess
  // at how fast this machine is.
  const int64_t timeout_ms = LoopbackConfig().transfer_timeout_ms;
  te::TransferStatus overall =
      WaitBatch(*engine_, doomed, std::chrono::milliseconds(4 * timeout_ms));
  EXPECT_EQ(overall.state, TransferState::kFailed) << overall.error;
  EXPECT_LE(MsSince(killed), 2 * timeout_ms);
  EXPECT_TRUE(engine_->freeBatch(doomed).ok());

  overall = WaitBatch(*engine_, healthy, 20s);
  EXPECT_EQ(overall.state, TransferState::kCompleted) << overall.error;
  EXPECT_EQ(FirstPatternMismatch(from_bystander, size, BufferSeed(52, 0)), -1);
  EXPECT_TRUE(engine_->freeBatch(healthy).ok());

  // New requests to the dead target fail fast and cleanly.
  Outcome dead =
      RunOne(*engine_, Request::READ, to_victim, victim_seg, victim->buffers()[0].base, 4096, 10s);
  EXPECT_TRUE(dead.rejected()) << dead.Describe();

  // Restarted under the same name (its buffers elsewhere now), it is usable again
  // after reopening.
  auto restart_args = Args(1, size, "rw", 53);
  restart_args.push_back("--rpc_port=" + port);
  PeerProcess* reborn;
  ASSERT_NO_FATAL_FAILURE(StartPeer(restart_args, &reborn));
  ASSERT_EQ(reborn->segment_name(), victim_name);
  ASSERT_TRUE(engine_->closeSegment(victim_seg).ok());
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*reborn, &victim_seg));
  Outcome read = RunBatch(*engine_, Spread(Request::READ, to_victim, victim_seg,
                                           reborn->buffers()[0].base, size, 4 * kMiB));
  ASSERT_TRUE(read.completed()) << read.Describe();
  EXPECT_EQ(FirstPatternMismatch(to_victim, size, BufferSeed(53, 0)), -1);
}

// A buffer the target unregistered after the initiator opened its segment (so the
// initiator's descriptor still lists it): requests fail with a clear error, never
// touch the memory, and the target keeps serving its other buffer. (Unregistering
// while a request is in flight is buffer_registry_test's: the remover waits.)
TEST_F(FaultTest, UnregisteredBufferInAStaleDescriptorFailsCleanly) {
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(2, kMiB, "rw", 54), &peer));
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  void* local;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(kMiB, &local));
  const uint64_t gone = peer->buffers()[0].base, kept = peer->buffers()[1].base;
  ASSERT_EQ(peer->Command("UNREGISTER " + std::to_string(gone)), "OK");
  FillPattern(local, kMiB, 99);
  for (auto op : {Request::WRITE, Request::READ}) {
    Outcome o = RunOne(*engine_, op, local, seg, gone, kMiB, 10s);
    EXPECT_TRUE(o.rejected()) << o.Describe();
    EXPECT_NE(o.Describe().find("OutOfRange"), std::string::npos) << o.Describe();
  }
  EXPECT_EQ(PeerChecksum(*peer, gone, kMiB), PatternChecksum(BufferSeed(54, 0), 0, kMiB));
  Outcome o = RunOne(*engine_, Request::READ, local, seg, kept, kMiB);
  ASSERT_TRUE(o.completed()) << o.Describe();
  EXPECT_EQ(FirstPatternMismatch(local, kMiB, BufferSeed(54, 1)), -1);
}

}  // namespace
}  // namespace te_test
