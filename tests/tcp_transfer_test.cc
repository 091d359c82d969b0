// Cross-process integration tests: this process runs one te::TransferEngine, and each
// test spawns one or more te_test_peer processes (tests/test_peer.cc), each with its
// own engine. Engines find each other over p2p metadata on 127.0.0.1 and move bytes
// with the TCP transport (each claims its own machine id, see LoopbackConfig). Only the public API
// is used. Every wait is bounded.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "peer_process.h"
#include "peer_sockets.h"
#include "te/transfer_engine.h"
#include "test_util.h"
#include "transfer_fixture.h"

namespace te_test {
namespace {

using namespace std::chrono_literals;

// Bounds on how long a call may take come from the timeouts it is configured with
// (a multiple of them, for slack on a slow or sanitized machine), never from a guess
// at the machine's speed.
const te::Config kDefaults;
// The transfer timeout of the tests with stalled targets.
constexpr uint32_t kStalledTimeoutMs = 1000;

class TcpTransferTest : public PeerTransferTest {};

// ---------------------------------------------------------------------------------
// Basics

TEST_F(TcpTransferTest, EngineAdvertisesLoopbackSegmentName) {
  EXPECT_EQ(engine_->getRpcAddress(), "127.0.0.1");
  EXPECT_NE(engine_->getRpcPort(), 0);
  EXPECT_EQ(engine_->getSegmentName(), "127.0.0.1:" + std::to_string(engine_->getRpcPort()));
}

TEST_F(TcpTransferTest, GetSegmentInfoListsPeerBuffers) {
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(3, 8 * kKiB, "rw,ro,local", 1), &peer));
  ASSERT_EQ(peer->buffers().size(), 3u);
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));

  te::SegmentInfo info;
  te::Status s = engine_->getSegmentInfo(seg, &info);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(info.name, peer->segment_name());
  EXPECT_EQ(info.machine_id, "te-test-peer-" + std::to_string(peer->pid()));
  EXPECT_NE(std::find(info.transports.begin(), info.transports.end(), "tcp"),
            info.transports.end());
  // The local-only buffer is invisible to peers.
  ASSERT_EQ(info.buffers.size(), 2u);
  EXPECT_LT(info.buffers[0].base, info.buffers[1].base) << "buffers must be sorted by base";
  struct Expected {
    PeerProcess::Buffer buffer;
    Permission permission;
  };
  std::vector<Expected> expected = {{peer->buffers()[0], Permission::kRemoteReadWrite},
                                    {peer->buffers()[1], Permission::kRemoteRead}};
  for (const auto& e : expected) {
    auto it = std::find_if(info.buffers.begin(), info.buffers.end(),
                           [&](const te::BufferInfo& b) { return b.base == e.buffer.base; });
    ASSERT_NE(it, info.buffers.end()) << "buffer " << e.buffer.base << " not listed";
    EXPECT_EQ(it->length, e.buffer.length);
    EXPECT_EQ(it->location.rfind("cpu:", 0), 0u) << it->location;
    EXPECT_EQ(it->permission, e.permission);
    EXPECT_TRUE(it->shm_name.empty());
  }
  for (const auto& b : info.buffers) EXPECT_NE(b.base, peer->buffers()[2].base);
}

TEST_F(TcpTransferTest, OwnSegmentInfoListsRemoteVisibleBuffers) {
  void *a, *b, *hidden;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(64 * kKiB, &a));
  ASSERT_NO_FATAL_FAILURE(AllocLocal(32 * kKiB, &b, Permission::kRemoteRead));
  ASSERT_NO_FATAL_FAILURE(AllocLocal(16 * kKiB, &hidden, Permission::kLocalOnly));
  te::SegmentHandle self;
  te::Status s = engine_->openSegment(&self, engine_->getSegmentName());
  ASSERT_TRUE(s.ok()) << s.ToString();
  te::SegmentInfo info;
  s = engine_->getSegmentInfo(self, &info);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(info.name, engine_->getSegmentName());
  ASSERT_EQ(info.buffers.size(), 2u);
  EXPECT_TRUE(std::is_sorted(info.buffers.begin(), info.buffers.end(),
                             [](const auto& x, const auto& y) { return x.base < y.base; }));
  for (const auto& buf : info.buffers) {
    EXPECT_NE(buf.base, Addr(hidden));
    if (buf.base == Addr(a)) {
      EXPECT_EQ(buf.length, 64 * kKiB);
      EXPECT_EQ(buf.permission, Permission::kRemoteReadWrite);
    } else {
      EXPECT_EQ(buf.base, Addr(b));
      EXPECT_EQ(buf.length, 32 * kKiB);
      EXPECT_EQ(buf.permission, Permission::kRemoteRead);
    }
    EXPECT_EQ(buf.location.rfind("cpu:", 0), 0u) << buf.location;
  }
}

// ---------------------------------------------------------------------------------
// Data path: sizes, offsets, batches, threads

class TcpTransferSizeTest : public TcpTransferTest,
                            public ::testing::WithParamInterface<uint64_t> {};

TEST_P(TcpTransferSizeTest, ReadAndWriteAreByteExact) {
  const uint64_t size = GetParam();
  const uint64_t peer_size = std::max<uint64_t>(size, 8 * kKiB);
  const uint64_t fill = 7, peer_seed = BufferSeed(fill, 0), write_seed = 99;
  const auto timeout = size >= 64 * kMiB ? 60s : 20s;
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, peer_size, "rw", fill), &peer));
  const uint64_t remote = peer->buffers()[0].base;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  void* local;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &local));

  // READ the peer's known pattern.
  std::memset(local, 0, size);
  Outcome read = RunOne(*engine_, Request::READ, local, seg, remote, size, timeout);
  ASSERT_TRUE(read.completed()) << read.Describe();
  EXPECT_EQ(read.overall.transferred_bytes, size);
  EXPECT_EQ(FirstPatternMismatch(local, size, peer_seed), -1);

  // WRITE a different pattern; the peer's checksum proves it landed, and nothing after
  // it was touched.
  FillPattern(local, size, write_seed);
  Outcome write = RunOne(*engine_, Request::WRITE, local, seg, remote, size, timeout);
  ASSERT_TRUE(write.completed()) << write.Describe();
  EXPECT_EQ(write.overall.transferred_bytes, size);
  EXPECT_EQ(PeerChecksum(*peer, remote, size), Checksum(local, size));
  if (peer_size > size) {
    EXPECT_EQ(PeerChecksum(*peer, remote + size, peer_size - size),
              PatternChecksum(peer_seed, size, peer_size - size));
  }

  // READ it back.
  std::memset(local, 0, size);
  read = RunOne(*engine_, Request::READ, local, seg, remote, size, timeout);
  ASSERT_TRUE(read.completed()) << read.Describe();
  EXPECT_EQ(FirstPatternMismatch(local, size, write_seed), -1);

  EXPECT_EQ(engine_->primaryTransport(), "tcp");
}

INSTANTIATE_TEST_SUITE_P(Sizes, TcpTransferSizeTest,
                         ::testing::Values(1, 4 * kKiB, 64 * kKiB, 1 * kMiB, 64 * kMiB),
                         [](const ::testing::TestParamInfo<uint64_t>& info) {
                           uint64_t v = info.param;
                           if (v >= kMiB) return std::to_string(v / kMiB) + "MiB";
                           if (v >= kKiB) return std::to_string(v / kKiB) + "KiB";
                           return std::to_string(v) + "B";
                         });

TEST_F(TcpTransferTest, UnalignedLocalAndRemoteOffsets) {
  const uint64_t size = 1 * kMiB, fill = 3;
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, size, "rw", fill), &peer));
  const uint64_t remote = peer->buffers()[0].base;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  void* local;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &local));

  // What the peer's buffer should hold; updated after every WRITE.
  std::vector<uint8_t> mirror(size);
  FillPattern(mirror.data(), size, BufferSeed(fill, 0));

  const uint64_t offsets[] = {1, 3, 4095};
  const uint64_t lengths[] = {1, 5, 4097, 65537};
  uint64_t write_seed = 1000;
  for (uint64_t lo : offsets) {
    for (uint64_t ro : offsets) {
      for (uint64_t len : lengths) {
        SCOPED_TRACE("local+" + std::to_string(lo) + " remote+" + std::to_string(ro) + " len " +
                     std::to_string(len));
        // READ: exactly [lo, lo+len) of local changes.
        std::memset(local, 0, lo + len + 1);
        Outcome r = RunOne(*engine_, Request::READ, Ptr(local, lo), seg, remote + ro, len);
        ASSERT_TRUE(r.completed()) << r.Describe();
        EXPECT_EQ(std::memcmp(Ptr(local, lo), mirror.data() + ro, len), 0);
        EXPECT_EQ(*Ptr(local, lo - 1), 0) << "READ wrote before its local range";
        EXPECT_EQ(*Ptr(local, lo + len), 0) << "READ wrote past its local range";

        // WRITE: exactly [ro, ro+len) of the peer changes.
        FillPattern(Ptr(local, lo), len, ++write_seed);
        Outcome w = RunOne(*engine_, Request::WRITE, Ptr(local, lo), seg, remote + ro, len);
        ASSERT_TRUE(w.completed()) << w.Describe();
        std::memcpy(mirror.data() + ro, Ptr(local, lo), len);
        EXPECT_EQ(PeerChecksum(*peer, remote + ro - 1, len + 2),
                  Checksum(mirror.data() + ro - 1, len + 2));
      }
    }
  }
  EXPECT_EQ(PeerChecksum(*peer, remote, size), Checksum(mirror.data(), size));
}

class TcpTransferBatchTest : public TcpTransferTest,
                             public ::testing::WithParamInterface<size_t> {};

// Even tasks WRITE, odd tasks READ, each on its own 8 KiB slot with an odd length.
TEST_P(TcpTransferBatchTest, MixedReadWriteBatch) {
  const size_t count = GetParam();
  const uint64_t slot = 8 * kKiB, fill = 5, peer_seed = BufferSeed(fill, 0);
  const uint64_t size = count * slot;
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, size, "rw", fill), &peer));
  const uint64_t remote = peer->buffers()[0].base;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  void *wbuf, *rbuf;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &wbuf));
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &rbuf));
  FillPattern(wbuf, size, 77);
  std::memset(rbuf, 0, size);

  auto length_of = [](size_t i) { return 1 + (i * 977) % 8191; };
  std::vector<Request> requests;
  std::vector<uint8_t> expected_peer(size);
  FillPattern(expected_peer.data(), size, peer_seed);
  uint64_t total = 0;
  for (size_t i = 0; i < count; ++i) {
    uint64_t off = i * slot, len = length_of(i);
    total += len;
    if (i % 2 == 0) {
      requests.push_back(MakeRequest(Request::WRITE, Ptr(wbuf, off), seg, remote + off, len));
      std::memcpy(expected_peer.data() + off, Ptr(wbuf, off), len);
    } else {
      requests.push_back(MakeRequest(Request::READ, Ptr(rbuf, off), seg, remote + off, len));
    }
  }

  te::BatchID batch;
  ASSERT_TRUE(engine_->allocateBatch(count, &batch).ok());
  te::Status s = engine_->submitTransfer(batch, requests);
  ASSERT_TRUE(s.ok()) << s.ToString();
  te::TransferStatus overall = WaitBatch(*engine_, batch, 30s);
  EXPECT_EQ(overall.state, TransferState::kCompleted) << overall.error;
  EXPECT_EQ(overall.transferred_bytes, total);

  std::vector<te::TransferStatus> tasks;
  s = engine_->getTransferStatus(batch, &tasks);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(tasks.size(), count);
  for (size_t i = 0; i < count; ++i) {
    EXPECT_EQ(tasks[i].state, TransferState::kCompleted) << "task " << i << ": " << tasks[i].error;
    EXPECT_EQ(tasks[i].transferred_bytes, length_of(i)) << "task " << i;
    te::TransferStatus one;
    ASSERT_TRUE(engine_->getTransferStatus(batch, i, &one).ok());
    EXPECT_EQ(one.state, tasks[i].state);
  }
  te::TransferStatus past_end;
  EXPECT_FALSE(engine_->getTransferStatus(batch, count, &past_end).ok());
  EXPECT_TRUE(engine_->freeBatch(batch).ok());

  for (size_t i = 1; i < count; i += 2) {
    uint64_t off = i * slot;
    EXPECT_EQ(FirstPatternMismatch(Ptr(rbuf, off), length_of(i), peer_seed, off), -1)
        << "READ task " << i;
  }
  EXPECT_EQ(PeerChecksum(*peer, remote, size), Checksum(expected_peer.data(), size));
}

INSTANTIATE_TEST_SUITE_P(Batches, TcpTransferBatchTest, ::testing::Values(1, 16, 256),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return "Of" + std::to_string(info.param);
                         });

TEST_F(TcpTransferTest, FourThreadsSubmitAndPollConcurrently) {
  constexpr int kThreads = 4, kIterations = 10;
  const uint64_t region = 1 * kMiB, len = 256 * kKiB + 3;
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, kThreads * region, "rw", 9), &peer));
  const uint64_t remote = peer->buffers()[0].base;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  void *wbuf, *rbuf;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(kThreads * region, &wbuf));
  ASSERT_NO_FATAL_FAILURE(AllocLocal(kThreads * region, &rbuf));

  std::mutex mu;
  std::vector<std::string> errors;
  auto fail = [&](const std::string& e) {
    std::lock_guard<std::mutex> lock(mu);
    errors.push_back(e);
  };
  auto worker = [&](int t) {
    te::BatchID batch;
    te::Status s = engine_->allocateBatch(2 * kIterations, &batch);
    if (!s.ok()) return fail("allocateBatch: " + s.ToString());
    uint8_t* w = Ptr(wbuf, t * region);
    uint8_t* r = Ptr(rbuf, t * region);
    for (int i = 0; i < kIterations; ++i) {
      uint64_t roff = t * region + i * 17;
      FillPattern(w, len, 5000 + t * 100 + i);
      std::memset(r, 0, len);
      for (auto op : {Request::WRITE, Request::READ}) {
        void* l = op == Request::WRITE ? w : r;
        s = engine_->submitTransfer(batch, {MakeRequest(op, l, seg, remote + roff, len)});
        if (!s.ok()) return fail("submitTransfer: " + s.ToString());
        // Task ids continue within the batch: this one is the last.
        size_t task = 2 * i + (op == Request::READ ? 1 : 0);
        auto deadline = Clock::now() + 20s;
        te::TransferStatus st;
        while (true) {
          s = engine_->getTransferStatus(batch, task, &st);
          if (!s.ok()) return fail("getTransferStatus: " + s.ToString());
          if (st.state != TransferState::kPending || Clock::now() > deadline) break;
          std::this_thread::yield();
        }
        if (st.state != TransferState::kCompleted) {
          return fail("thread " + std::to_string(t) + " iteration " + std::to_string(i) + ": " +
                      te::TransferStateName(st.state) + " " + st.error);
        }
      }
      if (std::memcmp(w, r, len) != 0) {
        return fail("thread " + std::to_string(t) + " iteration " + std::to_string(i) +
                    ": read-back differs from what was written");
      }
    }
    s = engine_->freeBatch(batch);
    if (!s.ok()) fail("freeBatch: " + s.ToString());
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  for (const auto& e : errors) ADD_FAILURE() << e;
  ASSERT_TRUE(errors.empty());
  for (int t = 0; t < kThreads; ++t) {
    uint64_t roff = t * region + (kIterations - 1) * 17;
    EXPECT_EQ(PeerChecksum(*peer, remote + roff, len),
              PatternChecksum(5000 + t * 100 + kIterations - 1, 0, len))
        << "thread " << t;
  }
}

// The peer initiates: our engine serves its READ and WRITE requests. Our memory is
// filled before it is registered and checked after it is unregistered (which waits
// for peers' requests), so the test never races with the engine's serving threads.
TEST_F(TcpTransferTest, PeerInitiatedTransfersAreServed) {
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, 1 * kMiB, "rw", 4), &peer));
  const uint64_t peer_buf = peer->buffers()[0].base;
  const uint64_t landing = 200000;  // our [landing+100, landing+5100) receives the WRITE
  void *local, *readonly;
  ASSERT_NO_FATAL_FAILURE(
      AllocLocal(1 * kMiB, &local, Permission::kRemoteReadWrite, [&](uint8_t* p) {
        FillPattern(p, 1 * kMiB, 31);
        std::memset(p + landing + 99, 0, 5002);
      }));
  ASSERT_NO_FATAL_FAILURE(AllocLocal(64 * kKiB, &readonly, Permission::kRemoteRead,
                                     [](uint8_t* p) { FillPattern(p, 64 * kKiB, 32); }));
  const std::string me = engine_->getSegmentName();

  // Peer READs our [5, 70005) into its buffer.
  std::string reply = peer->Command("XFER READ " + me + " " + std::to_string(peer_buf) + " " +
                                    std::to_string(Addr(local) + 5) + " 70000");
  EXPECT_EQ(reply.rfind("DONE Completed 70000", 0), 0u) << reply;
  EXPECT_EQ(PeerChecksum(*peer, peer_buf, 70000), PatternChecksum(31, 5, 70000));

  // Peer WRITEs its [1, 5001) (our pattern from offset 6) to our [landing+100, ...).
  reply = peer->Command("XFER WRITE " + me + " " + std::to_string(peer_buf + 1) + " " +
                        std::to_string(Addr(local) + landing + 100) + " 5000");
  EXPECT_EQ(reply.rfind("DONE Completed 5000", 0), 0u) << reply;

  // Our read-only buffer may be read but not written by the peer.
  reply = peer->Command("XFER READ " + me + " " + std::to_string(peer_buf) + " " +
                        std::to_string(Addr(readonly)) + " 4096");
  EXPECT_EQ(reply.rfind("DONE Completed 4096", 0), 0u) << reply;
  reply = peer->Command("XFER WRITE " + me + " " + std::to_string(peer_buf) + " " +
                        std::to_string(Addr(readonly)) + " 4096");
  EXPECT_TRUE(reply.rfind("DONE Failed", 0) == 0 || reply.rfind("ERR submit", 0) == 0) << reply;

  ASSERT_TRUE(engine_->unregisterLocalMemory(local).ok());
  ASSERT_TRUE(engine_->unregisterLocalMemory(readonly).ok());
  EXPECT_EQ(FirstPatternMismatch(Ptr(local, landing + 100), 5000, 31, 6), -1);
  EXPECT_EQ(*Ptr(local, landing + 99), 0);
  EXPECT_EQ(*Ptr(local, landing + 5100), 0);
  EXPECT_EQ(FirstPatternMismatch(local, landing, 31), -1);
  EXPECT_EQ(FirstPatternMismatch(readonly, 64 * kKiB, 32), -1);

  // Once unregistered, the peer can no longer reach that memory.
  reply = peer->Command("XFER READ " + me + " " + std::to_string(peer_buf) + " " +
                        std::to_string(Addr(local)) + " 4096");
  EXPECT_TRUE(reply.rfind("DONE Failed", 0) == 0 || reply.rfind("ERR submit", 0) == 0) << reply;
}

// ---------------------------------------------------------------------------------
// Notifications

TEST_F(TcpTransferTest, NotificationReachesPeer) {
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, 4 * kKiB, "rw", 1), &peer));
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  const std::vector<std::string> messages = {"hello", "with spaces\tand\nnewline",
                                             "\xc3\xbcnic\xc3\xb6"
                                             "de",
                                             std::string(4096, 'x')};
  for (const auto& m : messages) {
    te::Status s = engine_->sendNotification(seg, m);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  std::vector<std::pair<std::string, std::string>> got;
  auto deadline = Clock::now() + 10s;
  while (got.size() < messages.size() && Clock::now() < deadline) {
    std::string reply = peer->Command("NOTIFY?");
    std::istringstream in(reply);
    std::string word;
    size_t n = 0;
    ASSERT_TRUE((in >> word >> n) && word == "NOTIFICATIONS") << reply;
    for (size_t i = 0; i < n; ++i) {
      std::string from_tok, msg_tok, from, msg;
      ASSERT_TRUE(in >> from_tok >> msg_tok) << reply;
      ASSERT_TRUE(DecodeToken(from_tok, &from) && DecodeToken(msg_tok, &msg)) << reply;
      got.emplace_back(from, msg);
    }
    if (got.size() < messages.size()) std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(got.size(), messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    EXPECT_EQ(got[i].first, engine_->getSegmentName());
    EXPECT_EQ(got[i].second, messages[i]) << "notification " << i << " (order must be kept)";
  }
  // Receiving drained the queue.
  EXPECT_EQ(peer->Command("NOTIFY?"), "NOTIFICATIONS 0");
}

TEST_F(TcpTransferTest, NotificationFromPeerIsReceived) {
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, 4 * kKiB, "rw", 1), &peer));
  const std::vector<std::string> messages = {"first", "second message"};
  for (const auto& m : messages) {
    std::string reply = peer->Command("SEND " + engine_->getSegmentName() + " " + EncodeToken(m));
    ASSERT_EQ(reply, "OK");
  }
  std::vector<te::Notification> got;
  auto deadline = Clock::now() + 10s;
  while (got.size() < messages.size() && Clock::now() < deadline) {
    te::Status s = engine_->receiveNotification(&got);  // appends
    ASSERT_TRUE(s.ok()) << s.ToString();
    if (got.size() < messages.size()) std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(got.size(), messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    EXPECT_EQ(got[i].from, peer->segment_name());
    EXPECT_EQ(got[i].message, messages[i]);
  }
  std::vector<te::Notification> again;
  ASSERT_TRUE(engine_->receiveNotification(&again).ok());
  EXPECT_TRUE(again.empty());
}

// ---------------------------------------------------------------------------------
// Rejections

TEST_F(TcpTransferTest, WriteToReadOnlyBufferFailsAndTargetKeepsServing) {
  const uint64_t size = 64 * kKiB, fill = 11;
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(2, size, "rw,ro", fill), &peer));
  const uint64_t rw = peer->buffers()[0].base, ro = peer->buffers()[1].base;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  void* local;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &local));
  FillPattern(local, size, 123);

  Outcome w = RunOne(*engine_, Request::WRITE, local, seg, ro, 4096, 10s);
  ASSERT_TRUE(w.submit.ok()) << "expected the task to fail, not submitTransfer: "
                             << w.submit.ToString();
  EXPECT_EQ(w.overall.state, TransferState::kFailed) << w.Describe();
  EXPECT_NE(w.task_error.find("Permission"), std::string::npos)
      << "the task's error should say permission was denied: " << w.task_error;
  EXPECT_EQ(PeerChecksum(*peer, ro, size), PatternChecksum(BufferSeed(fill, 1), 0, size));

  // One bad task fails only itself.
  std::vector<Request> mixed = {MakeRequest(Request::WRITE, local, seg, rw, 4096),
                                MakeRequest(Request::WRITE, local, seg, ro + 4096, 4096)};
  te::BatchID batch;
  ASSERT_TRUE(engine_->allocateBatch(2, &batch).ok());
  ASSERT_TRUE(engine_->submitTransfer(batch, mixed).ok());
  te::TransferStatus overall = WaitBatch(*engine_, batch, 10s);
  EXPECT_EQ(overall.state, TransferState::kFailed) << overall.error;
  std::vector<te::TransferStatus> tasks;
  ASSERT_TRUE(engine_->getTransferStatus(batch, &tasks).ok());
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0].state, TransferState::kCompleted) << tasks[0].error;
  EXPECT_EQ(tasks[1].state, TransferState::kFailed);
  EXPECT_FALSE(tasks[1].error.empty());
  EXPECT_TRUE(engine_->freeBatch(batch).ok());

  // The target keeps serving: reading both buffers works.
  EXPECT_EQ(peer->Command("PING"), "PONG");
  std::memset(local, 0, size);
  Outcome r = RunOne(*engine_, Request::READ, local, seg, ro, size);
  ASSERT_TRUE(r.completed()) << r.Describe();
  EXPECT_EQ(FirstPatternMismatch(local, size, BufferSeed(fill, 1)), -1);
  r = RunOne(*engine_, Request::READ, local, seg, rw + 4096, 4096);
  ASSERT_TRUE(r.completed()) << r.Describe();
  EXPECT_EQ(FirstPatternMismatch(local, 4096, BufferSeed(fill, 0), 4096), -1);
}

// The target checks permissions itself: a cached descriptor that still says
// read-write does not let a WRITE through after the buffer became read-only.
TEST_F(TcpTransferTest, TargetEnforcesPermissionWithStaleDescriptor) {
  const uint64_t size = 64 * kKiB, fill = 12;
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, size, "rw", fill), &peer));
  const uint64_t remote = peer->buffers()[0].base;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  void* local;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &local));
  FillPattern(local, size, 456);

  ASSERT_EQ(peer->Command("REREGISTER " + std::to_string(remote) + " ro"), "OK");
  Outcome w = RunOne(*engine_, Request::WRITE, local, seg, remote, 4096, 10s);
  EXPECT_TRUE(w.rejected()) << w.Describe();
  EXPECT_EQ(PeerChecksum(*peer, remote, size), PatternChecksum(BufferSeed(fill, 0), 0, size));

  ASSERT_TRUE(engine_->refreshSegment(seg).ok());
  te::SegmentInfo info;
  ASSERT_TRUE(engine_->getSegmentInfo(seg, &info).ok());
  ASSERT_EQ(info.buffers.size(), 1u);
  EXPECT_EQ(info.buffers[0].permission, Permission::kRemoteRead);
  Outcome r = RunOne(*engine_, Request::READ, local, seg, remote, 4096);
  EXPECT_TRUE(r.completed()) << r.Describe();

  // Local-only: neither READ nor WRITE, and invisible after a refresh. The descriptor
  // is made stale at read-write first, so the WRITE reaches the target, which must
  // refuse it itself.
  ASSERT_EQ(peer->Command("REREGISTER " + std::to_string(remote) + " rw"), "OK");
  ASSERT_TRUE(engine_->refreshSegment(seg).ok());
  ASSERT_TRUE(engine_->getSegmentInfo(seg, &info).ok());
  ASSERT_EQ(info.buffers.size(), 1u);
  ASSERT_EQ(info.buffers[0].permission, Permission::kRemoteReadWrite);
  ASSERT_EQ(peer->Command("REREGISTER " + std::to_string(remote) + " local"), "OK");
  r = RunOne(*engine_, Request::READ, local, seg, remote, 4096, 10s);
  EXPECT_TRUE(r.rejected()) << r.Describe();
  w = RunOne(*engine_, Request::WRITE, local, seg, remote, 4096, 10s);
  EXPECT_TRUE(w.rejected()) << w.Describe();
  EXPECT_EQ(PeerChecksum(*peer, remote, size), PatternChecksum(BufferSeed(fill, 0), 0, size));
  ASSERT_TRUE(engine_->refreshSegment(seg).ok());
  ASSERT_TRUE(engine_->getSegmentInfo(seg, &info).ok());
  EXPECT_TRUE(info.buffers.empty());
}

TEST_F(TcpTransferTest, OutOfBoundsRemoteRangesAreRejected) {
  const uint64_t size = 64 * kKiB, fill = 13;
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, size, "rw", fill), &peer));
  const uint64_t base = peer->buffers()[0].base;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  void* local;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size + 4096, &local));
  FillPattern(local, size + 4096, 789);

  ExpectRangesMissingBufferRejected(seg, local, base, size);
  EXPECT_EQ(PeerChecksum(*peer, base, size), PatternChecksum(BufferSeed(fill, 0), 0, size));
  EXPECT_EQ(peer->Command("PING"), "PONG");

  // A valid request right at the end still works.
  Outcome r = RunOne(*engine_, Request::READ, local, seg, base + size - 10, 10);
  ASSERT_TRUE(r.completed()) << r.Describe();
  EXPECT_EQ(FirstPatternMismatch(local, 10, BufferSeed(fill, 0), size - 10), -1);
}

TEST_F(TcpTransferTest, SubmitRejectsInvalidLocalSide) {
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, 64 * kKiB, "rw", 14), &peer));
  const uint64_t remote = peer->buffers()[0].base;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  void* local;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(64 * kKiB, &local));
  std::vector<uint8_t> unregistered(4096);

  te::BatchID batch;
  ASSERT_TRUE(engine_->allocateBatch(4, &batch).ok());
  const Request bad[] = {
      MakeRequest(Request::READ, unregistered.data(), seg, remote, 16),
      MakeRequest(Request::WRITE, unregistered.data(), seg, remote, 16),
      MakeRequest(Request::READ, nullptr, seg, remote, 16),
      MakeRequest(Request::READ, Ptr(local, 64 * kKiB - 10), seg, remote, 20),
  };
  for (const auto& r : bad) {
    EXPECT_FALSE(engine_->submitTransfer(batch, {r}).ok())
        << "source " << r.source << " length " << r.length;
  }
  // A call with one invalid request queues nothing.
  te::Status s =
      engine_->submitTransfer(batch, {MakeRequest(Request::READ, local, seg, remote, 16), bad[0]});
  EXPECT_FALSE(s.ok());
  std::vector<te::TransferStatus> tasks;
  ASSERT_TRUE(engine_->getTransferStatus(batch, &tasks).ok());
  EXPECT_TRUE(tasks.empty()) << tasks.size() << " tasks queued by rejected calls";

  // An unknown segment handle never succeeds.
  s = engine_->submitTransfer(batch, {MakeRequest(Request::READ, local, seg + 1000, remote, 16)});
  if (s.ok()) {
    te::TransferStatus st = WaitBatch(*engine_, batch, 10s);
    EXPECT_EQ(st.state, TransferState::kFailed) << st.error;
  }
  EXPECT_TRUE(engine_->freeBatch(batch).ok());

  // The engine still works, and the capacity of a batch is enforced over its life.
  ASSERT_TRUE(engine_->allocateBatch(2, &batch).ok());
  EXPECT_FALSE(engine_
                   ->submitTransfer(batch, std::vector<Request>(3, MakeRequest(Request::READ, local,
                                                                               seg, remote, 16)))
                   .ok());
  ASSERT_TRUE(
      engine_->submitTransfer(batch, {MakeRequest(Request::READ, local, seg, remote, 16)}).ok());
  ASSERT_TRUE(
      engine_->submitTransfer(batch, {MakeRequest(Request::READ, Ptr(local, 16), seg, remote, 16)})
          .ok());
  EXPECT_FALSE(
      engine_->submitTransfer(batch, {MakeRequest(Request::READ, local, seg, remote, 16)}).ok());
  te::TransferStatus overall = WaitBatch(*engine_, batch, 10s);
  EXPECT_EQ(overall.state, TransferState::kCompleted) << overall.error;
  EXPECT_EQ(overall.transferred_bytes, 32u);
  EXPECT_TRUE(engine_->freeBatch(batch).ok());
  te::TransferStatus gone;
  EXPECT_FALSE(engine_->getTransferStatus(batch, &gone).ok());
  EXPECT_FALSE(engine_->freeBatch(batch).ok());
}

TEST_F(TcpTransferTest, OpenUnknownSegmentFailsQuickly) {
  for (const std::string name : {"127.0.0.1:1", "127.0.0.1:notaport", "", "no-port-here"}) {
    SCOPED_TRACE("'" + name + "'");
    te::SegmentHandle handle = 0;
    te::Status s;
    auto elapsed = RunBounded(
        "openSegment", [&] { s = engine_->openSegment(&handle, name); }, 10s, [] {});
    EXPECT_FALSE(s.ok());
    EXPECT_LT(elapsed.count(), 2 * kDefaults.connect_timeout_ms) << "bounded by connect_timeout_ms";
  }
}

TEST_F(TcpTransferTest, OpenAndNotifyStalledPeerAreBounded) {
  te::Config config = LoopbackConfig();
  config.connect_timeout_ms = 1000;
  ASSERT_NO_FATAL_FAILURE(StartEngine(config));
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, 4 * kKiB, "rw", 1), &peer));
  StopPeer(peer);  // its kernel still accepts connections; nobody answers

  te::SegmentHandle seg = 0;
  te::Status s;
  auto elapsed = RunBounded(
      "openSegment of a stopped peer",
      [&] { s = engine_->openSegment(&seg, peer->segment_name()); }, 10s,
      [&] { peer->Signal(SIGKILL); });
  EXPECT_FALSE(s.ok());
  EXPECT_LT(elapsed.count(), 4 * config.connect_timeout_ms);

  peer->Signal(SIGCONT);
  s = engine_->openSegment(&seg, peer->segment_name());
  ASSERT_TRUE(s.ok()) << s.ToString();

  StopPeer(peer);
  elapsed = RunBounded(
      "sendNotification to a stopped peer", [&] { s = engine_->sendNotification(seg, "hi"); }, 10s,
      [&] { peer->Signal(SIGKILL); });
  EXPECT_LT(elapsed.count(), 4 * config.connect_timeout_ms);
  peer->Signal(SIGCONT);
}

// ---------------------------------------------------------------------------------
// Failures of the target

TEST_F(TcpTransferTest, TargetKilledWhileStalledFailsTasks) {
  const uint64_t size = 64 * kMiB;
  PeerProcess* peer;
  te::SegmentHandle seg;
  void* local;
  ASSERT_NO_FATAL_FAILURE(StartPeerWithLocal(size, 15, &peer, &seg, &local));
  const uint64_t remote = peer->buffers()[0].base;
  // Warm the connections up so the kill hits established ones.
  ASSERT_TRUE(RunOne(*engine_, Request::READ, local, seg, remote, 4096).completed());

  // Stopped, the peer cannot finish anything: 64 MiB do not fit in socket buffers.
  StopPeer(peer);
  std::vector<Request> requests;
  for (uint64_t i = 0; i < 64; ++i) {
    requests.push_back(MakeRequest(i % 2 ? Request::READ : Request::WRITE, Ptr(local, i * kMiB),
                                   seg, remote + i * kMiB, kMiB));
  }
  te::BatchID batch;
  ASSERT_TRUE(engine_->allocateBatch(requests.size(), &batch).ok());
  ASSERT_TRUE(engine_->submitTransfer(batch, requests).ok());
  ASSERT_NO_FATAL_FAILURE(WaitUntilRequestsReachStoppedPeer(*peer));
  te::TransferStatus overall;
  ASSERT_TRUE(engine_->getTransferStatus(batch, &overall).ok());
  EXPECT_EQ(overall.state, TransferState::kPending);

  auto killed_at = Clock::now();
  peer->Signal(SIGKILL);
  ASSERT_TRUE(peer->WaitExit(5s));
  overall = WaitBatch(*engine_, batch, 10s);
  EXPECT_EQ(overall.state, TransferState::kFailed) << overall.error;
  EXPECT_LT(MsSince(killed_at), 10000);
  std::vector<te::TransferStatus> tasks;
  ASSERT_TRUE(engine_->getTransferStatus(batch, &tasks).ok());
  size_t failed = 0;
  for (const auto& t : tasks) {
    EXPECT_NE(t.state, TransferState::kPending);
    if (t.state == TransferState::kFailed) {
      ++failed;
      EXPECT_FALSE(t.error.empty());
    }
  }
  EXPECT_GT(failed, 0u);
  EXPECT_TRUE(engine_->freeBatch(batch).ok());

  // New requests to the dead segment fail in bounded time.
  Outcome again = RunOne(*engine_, Request::READ, local, seg, remote, 4096, 15s);
  EXPECT_TRUE(again.rejected()) << again.Describe();

  // The engine still works with a new peer.
  PeerProcess* other;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, 64 * kKiB, "rw", 16), &other));
  te::SegmentHandle seg2;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*other, &seg2));
  Outcome r = RunOne(*engine_, Request::READ, local, seg2, other->buffers()[0].base, 64 * kKiB);
  ASSERT_TRUE(r.completed()) << r.Describe();
  EXPECT_EQ(FirstPatternMismatch(local, 64 * kKiB, BufferSeed(16, 0)), -1);
}

TEST_F(TcpTransferTest, TargetKilledDuringActiveTransferDoesNotHang) {
  const uint64_t size = 64 * kMiB;
  PeerProcess* peer;
  te::SegmentHandle seg;
  void* local;
  ASSERT_NO_FATAL_FAILURE(StartPeerWithLocal(size, 17, &peer, &seg, &local));
  const uint64_t remote = peer->buffers()[0].base;

  std::vector<Request> requests = ConsecutiveRequests(Request::WRITE, local, seg, remote, 64, kMiB);
  te::BatchID batch;
  ASSERT_TRUE(engine_->allocateBatch(requests.size(), &batch).ok());
  ASSERT_TRUE(engine_->submitTransfer(batch, requests).ok());
  peer->Signal(SIGKILL);  // races with the transfer on purpose
  ASSERT_TRUE(peer->WaitExit(5s));
  te::TransferStatus overall = WaitBatch(*engine_, batch, 10s);
  EXPECT_NE(overall.state, TransferState::kPending) << overall.error;
  std::vector<te::TransferStatus> tasks;
  ASSERT_TRUE(engine_->getTransferStatus(batch, &tasks).ok());
  for (const auto& t : tasks) EXPECT_NE(t.state, TransferState::kPending);
  EXPECT_TRUE(engine_->freeBatch(batch).ok());
}

TEST_F(TcpTransferTest, StalledTargetTimesOutThenRecovers) {
  ASSERT_NO_FATAL_FAILURE(StartEngineWithTransferTimeout(kStalledTimeoutMs));
  PeerProcess* peer;
  te::SegmentHandle seg;
  void* local;
  ASSERT_NO_FATAL_FAILURE(StartPeerWithLocal(4 * kMiB, 18, &peer, &seg, &local));
  const uint64_t remote = peer->buffers()[0].base;
  ASSERT_TRUE(RunOne(*engine_, Request::READ, local, seg, remote, 4096).completed());

  StopPeer(peer);
  auto start = Clock::now();
  Outcome r = RunOne(*engine_, Request::READ, local, seg, remote, 4 * kMiB, 10s);
  EXPECT_EQ(r.overall.state, TransferState::kFailed) << r.Describe();
  EXPECT_FALSE(r.task_error.empty());
  EXPECT_LT(MsSince(start), 5 * kStalledTimeoutMs) << "bounded by transfer_timeout_ms";

  peer->Signal(SIGCONT);
  // The engine recovers (reconnecting if it has to) once the peer answers again.
  std::memset(local, 0, 4 * kMiB);
  Outcome ok;
  auto deadline = Clock::now() + 10s;
  do {
    ok = RunOne(*engine_, Request::READ, local, seg, remote, 4 * kMiB, 10s);
  } while (!ok.completed() && Clock::now() < deadline);
  ASSERT_TRUE(ok.completed()) << ok.Describe();
  EXPECT_EQ(FirstPatternMismatch(local, 4 * kMiB, BufferSeed(18, 0)), -1);
}

// Small requests on an idle channel are sent by the submitting thread without waiting;
// against a stopped target the socket fills up, and the unsent rest of such a send
// goes on in the channel's sender thread. Every byte still lands, in order, once the
// target runs again.
TEST_F(TcpTransferTest, SmallWritesFillingStoppedTargetsSocketsLandAfterItResumes) {
  const uint64_t size = 128 * kMiB;  // more than the connections' socket buffers hold
  const uint64_t block = 16 * kKiB;
  PeerProcess* peer;
  te::SegmentHandle seg;
  void* local;
  ASSERT_NO_FATAL_FAILURE(StartPeerWithLocal(size, 19, &peer, &seg, &local));
  const uint64_t remote = peer->buffers()[0].base;
  // Connections up, so that later submissions find them idle.
  ASSERT_TRUE(RunOne(*engine_, Request::READ, local, seg, remote, 4096).completed());
  FillPattern(local, size, 77);

  StopPeer(peer);
  std::vector<te::BatchID> batches(size / block);
  for (uint64_t i = 0; i < batches.size(); ++i) {
    ASSERT_TRUE(engine_->allocateBatch(1, &batches[i]).ok());
    ASSERT_TRUE(engine_
                    ->submitTransfer(batches[i], {MakeRequest(Request::WRITE, Ptr(local, i * block),
                                                              seg, remote + i * block, block)})
                    .ok());
  }
  ASSERT_NO_FATAL_FAILURE(WaitUntilRequestsReachStoppedPeer(*peer));
  peer->Signal(SIGCONT);
  for (te::BatchID batch : batches) {
    te::TransferStatus overall = WaitBatch(*engine_, batch, 20s);
    ASSERT_EQ(overall.state, TransferState::kCompleted) << overall.error;
    ASSERT_TRUE(engine_->freeBatch(batch).ok());
  }
  EXPECT_EQ(PeerChecksum(*peer, remote, size), Checksum(local, size));
}

// A target that shuts down cleanly (EXIT, or SIGTERM) destroys its engine while this
// one is connected: it exits 0 in time, and later requests to it fail in bounded time.
TEST_F(TcpTransferTest, TargetShutsDownCleanly) {
  void* local;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(1 * kMiB, &local));
  for (const std::string how : {"EXIT", "SIGTERM"}) {
    SCOPED_TRACE(how);
    PeerProcess* peer;
    ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, 1 * kMiB, "rw", 23), &peer));
    const uint64_t remote = peer->buffers()[0].base;
    te::SegmentHandle seg;
    ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
    ASSERT_TRUE(RunOne(*engine_, Request::WRITE, local, seg, remote, 1 * kMiB).completed());

    if (how == "EXIT") {
      EXPECT_EQ(peer->Command("EXIT"), "BYE");
    } else {
      peer->Signal(SIGTERM);
    }
    int wait_status = 0;
    ASSERT_TRUE(peer->WaitExit(10s, &wait_status)) << "the peer's engine did not shut down";
    EXPECT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0)
        << "wait status " << wait_status;

    Outcome after = RunOne(*engine_, Request::READ, local, seg, remote, 4096, 15s);
    EXPECT_TRUE(after.rejected()) << after.Describe();
    EXPECT_TRUE(engine_->closeSegment(seg).ok());
    te::SegmentHandle again;
    EXPECT_FALSE(engine_->openSegment(&again, peer->segment_name()).ok());
  }
}

// ---------------------------------------------------------------------------------
// freeBatch while in flight

TEST_F(TcpTransferTest, FreeBatchWhileInFlight) {
  const uint64_t size = 64 * kMiB;
  PeerProcess* peer;
  te::SegmentHandle seg;
  void* local;
  ASSERT_NO_FATAL_FAILURE(StartPeerWithLocal(size, 19, &peer, &seg, &local));
  const uint64_t remote = peer->buffers()[0].base;
  FillPattern(local, size, 20);

  for (auto op : {Request::WRITE, Request::READ}) {
    std::vector<Request> requests = ConsecutiveRequests(op, local, seg, remote, 64, kMiB);
    te::BatchID batch;
    ASSERT_TRUE(engine_->allocateBatch(requests.size(), &batch).ok());
    ASSERT_TRUE(engine_->submitTransfer(batch, requests).ok());
    te::Status s;
    auto elapsed = RunBounded(
        "freeBatch", [&] { s = engine_->freeBatch(batch); }, 15s, [&] { peer->Signal(SIGKILL); });
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_LT(elapsed.count(), 2 * kDefaults.transfer_timeout_ms)
        << "bounded by transfer_timeout_ms";
    te::TransferStatus gone;
    EXPECT_FALSE(engine_->getTransferStatus(batch, &gone).ok());
  }
  // Nothing broke: a full round trip still works.
  FillPattern(local, kMiB, 21);
  ASSERT_TRUE(RunOne(*engine_, Request::WRITE, local, seg, remote, kMiB).completed());
  std::memset(local, 0, kMiB);
  Outcome r = RunOne(*engine_, Request::READ, local, seg, remote, kMiB);
  ASSERT_TRUE(r.completed()) << r.Describe();
  EXPECT_EQ(FirstPatternMismatch(local, kMiB, 21), -1);
}

// freeBatch on a stalled target returns within transfer_timeout_ms, and no READ byte
// lands in local memory after it returned, even once the target resumes.
TEST_F(TcpTransferTest, FreeBatchOfStalledReadsLeavesLocalMemoryAlone) {
  ASSERT_NO_FATAL_FAILURE(StartEngineWithTransferTimeout(kStalledTimeoutMs));
  const uint64_t size = 16 * kMiB;
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, size, "rw", 22), &peer));
  const uint64_t remote = peer->buffers()[0].base;
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  void *local, *probe;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &local));
  ASSERT_NO_FATAL_FAILURE(AllocLocal(4096, &probe));
  ASSERT_TRUE(RunOne(*engine_, Request::READ, probe, seg, remote, 4096).completed());

  StopPeer(peer);
  std::memset(local, 0, size);
  std::vector<Request> requests = ConsecutiveRequests(Request::READ, local, seg, remote, 16, kMiB);
  te::BatchID batch;
  ASSERT_TRUE(engine_->allocateBatch(requests.size(), &batch).ok());
  ASSERT_TRUE(engine_->submitTransfer(batch, requests).ok());
  // The READs are on the wire, so the resumed peer will answer them after freeBatch.
  ASSERT_NO_FATAL_FAILURE(WaitUntilRequestsReachStoppedPeer(*peer));
  te::Status s;
  auto elapsed = RunBounded(
      "freeBatch", [&] { s = engine_->freeBatch(batch); }, 10s, [&] { peer->Signal(SIGCONT); });
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_LT(elapsed.count(), 4 * kStalledTimeoutMs) << "bounded by transfer_timeout_ms";
  const uint64_t before = Checksum(local, size);

  peer->Signal(SIGCONT);
  // The resumed peer answers whatever it had queued (or finds the connection gone);
  // then another transfer makes sure the engine has processed what arrived.
  ASSERT_NO_FATAL_FAILURE(WaitUntilPeerAnsweredEverything(*peer));
  Outcome after;
  auto deadline = Clock::now() + 10s;
  do {
    after = RunOne(*engine_, Request::READ, probe, seg, remote, 4096, 10s);
  } while (!after.completed() && Clock::now() < deadline);
  EXPECT_TRUE(after.completed()) << after.Describe();
  EXPECT_EQ(Checksum(local, size), before) << "bytes landed after freeBatch returned";
}

// ---------------------------------------------------------------------------------
// Waiting threads that receive their own responses (waitTransferStatus)

// Waits for the batch with waitTransferStatus (or, with poll, getTransferStatus in a
// loop), then frees it; the overall status, kPending after 20 s.
te::TransferStatus Finish(te::TransferEngine& engine, te::BatchID batch, bool poll) {
  te::TransferStatus st;
  const auto deadline = Clock::now() + 20s;
  do {
    te::Status s =
        poll ? engine.getTransferStatus(batch, &st) : engine.waitTransferStatus(batch, &st, 1000);
    if (!s.ok()) {
      st.state = TransferState::kFailed;
      st.error = s.ToString();
      break;
    }
  } while (st.state == TransferState::kPending && Clock::now() < deadline);
  EXPECT_TRUE(engine.freeBatch(batch).ok());
  return st;
}

te::TransferStatus RunAndFinish(te::TransferEngine& engine, const std::vector<Request>& requests,
                                bool poll) {
  te::BatchID batch;
  EXPECT_TRUE(engine.allocateBatch(requests.size(), &batch).ok());
  te::Status s = engine.submitTransfer(batch, requests);
  if (!s.ok()) {
    engine.freeBatch(batch);
    te::TransferStatus st;
    st.state = TransferState::kFailed;
    st.error = "submitTransfer: " + s.ToString();
    return st;
  }
  return Finish(engine, batch, poll);
}

// One-request batches that are waited for (the waiter reads the response), polled
// (after a phase of waiters, the channel's receiver thread must still read them),
// 16-request batches that are waited for (the receiver threads read), and small
// WRITEs read back, in a random order: every byte is right.
TEST_F(TcpTransferTest, WaitersReadTheirResponsesAlongsidePollersAndLargeBatches) {
  const uint64_t size = 16 * kMiB, half = size / 2;
  PeerProcess* peer;
  te::SegmentHandle seg;
  void* local;
  ASSERT_NO_FATAL_FAILURE(StartPeerWithLocal(size, 31, &peer, &seg, &local));
  const uint64_t remote = peer->buffers()[0].base;
  std::vector<uint8_t> expect(half);
  FillPattern(expect.data(), half, BufferSeed(31, 0));
  std::mt19937_64 rng(5);
  for (int round = 0; round < 600; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const int kind = round < 100 ? 0 : static_cast<int>(rng() % 4);
    if (kind <= 1) {  // one 4 KiB READ, waited for or polled
      const uint64_t off = rng() % (half - 4096);
      te::TransferStatus st = RunAndFinish(
          *engine_, {MakeRequest(Request::READ, Ptr(local, off), seg, remote + off, 4096)},
          kind == 1);
      ASSERT_EQ(st.state, TransferState::kCompleted) << st.error;
      ASSERT_EQ(std::memcmp(Ptr(local, off), expect.data() + off, 4096), 0);
    } else if (kind == 2) {  // 16 x 64 KiB READs, waited for
      std::vector<Request> requests =
          ConsecutiveRequests(Request::READ, local, seg, remote, 16, 64 * kKiB);
      te::TransferStatus st = RunAndFinish(*engine_, requests, false);
      ASSERT_EQ(st.state, TransferState::kCompleted) << st.error;
      ASSERT_EQ(std::memcmp(local, expect.data(), 16 * 64 * kKiB), 0);
    } else {  // a small WRITE to the upper half, read back, both waited for
      const uint64_t off = half + rng() % (half - 8192), len = 1 + rng() % 8192;
      FillPattern(Ptr(local, off), len, 9000 + round);
      te::TransferStatus st = RunAndFinish(
          *engine_, {MakeRequest(Request::WRITE, Ptr(local, off), seg, remote + off, len)}, false);
      ASSERT_EQ(st.state, TransferState::kCompleted) << st.error;
      std::memset(Ptr(local, off), 0, len);
      st = RunAndFinish(
          *engine_, {MakeRequest(Request::READ, Ptr(local, off), seg, remote + off, len)}, false);
      ASSERT_EQ(st.state, TransferState::kCompleted) << st.error;
      ASSERT_EQ(FirstPatternMismatch(Ptr(local, off), len, 9000 + round), -1);
    }
  }
}

// Several threads wait on the same connections at once: one reads, the others sleep
// and are woken; WRITEs above the inline limit go through the sender thread, so their
// waiter may find nothing in flight yet.
TEST_F(TcpTransferTest, ThreadsWaitingOnSharedConnections) {
  constexpr int kThreads = 3, kIterations = 200;
  const uint64_t region = 1 * kMiB;
  PeerProcess* peer;
  te::SegmentHandle seg;
  void* local;
  ASSERT_NO_FATAL_FAILURE(StartPeerWithLocal(2 * kThreads * region, 32, &peer, &seg, &local));
  const uint64_t remote = peer->buffers()[0].base;
  std::mutex mu;
  std::vector<std::string> errors;
  auto worker = [&](int t) {
    uint8_t* w = Ptr(local, 2 * t * region);
    uint8_t* r = w + region;
    for (int i = 0; i < kIterations; ++i) {
      const uint64_t len = i % 3 == 0 ? 20 * kKiB : 4 * kKiB + i;
      const uint64_t roff = t * region + (i % 16) * 64 * kKiB;
      FillPattern(w, len, 7000 + t * 1000 + i);
      te::TransferStatus st =
          RunAndFinish(*engine_, {MakeRequest(Request::WRITE, w, seg, remote + roff, len)}, false);
      if (st.state == TransferState::kCompleted) {
        st =
            RunAndFinish(*engine_, {MakeRequest(Request::READ, r, seg, remote + roff, len)}, false);
      }
      std::string error;
      if (st.state != TransferState::kCompleted) {
        error = std::string(te::TransferStateName(st.state)) + " " + st.error;
      } else if (std::memcmp(w, r, len) != 0) {
        error = "read-back differs";
      }
      if (!error.empty()) {
        std::lock_guard<std::mutex> lock(mu);
        errors.push_back("thread " + std::to_string(t) + " iteration " + std::to_string(i) + ": " +
                         error);
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  for (const auto& e : errors) ADD_FAILURE() << e;
}

// A waiter whose response does not come returns kPending at its own timeout, and gets
// the data once the target runs again; a target stalled past the transfer timeout
// fails the waiter's request.
TEST_F(TcpTransferTest, WaiterOnStoppedTargetReturnsAtItsTimeoutThenGetsTheData) {
  ASSERT_NO_FATAL_FAILURE(StartEngineWithTransferTimeout(kStalledTimeoutMs));
  PeerProcess* peer;
  te::SegmentHandle seg;
  void* local;
  ASSERT_NO_FATAL_FAILURE(StartPeerWithLocal(1 * kMiB, 33, &peer, &seg, &local));
  const uint64_t remote = peer->buffers()[0].base;
  // Waiters read on every connection from now on.
  for (int i = 0; i < 16; ++i) {
    ASSERT_EQ(
        RunAndFinish(*engine_, {MakeRequest(Request::READ, local, seg, remote, 4096)}, false).state,
        TransferState::kCompleted);
  }

  std::memset(local, 0, 4096);
  StopPeer(peer);
  te::BatchID batch;
  ASSERT_TRUE(engine_->allocateBatch(1, &batch).ok());
  ASSERT_TRUE(
      engine_->submitTransfer(batch, {MakeRequest(Request::READ, local, seg, remote, 4096)}).ok());
  te::TransferStatus st;
  ASSERT_TRUE(engine_->waitTransferStatus(batch, &st, 50).ok());
  EXPECT_EQ(st.state, TransferState::kPending);
  peer->Signal(SIGCONT);
  st = Finish(*engine_, batch, false);
  ASSERT_EQ(st.state, TransferState::kCompleted) << st.error;
  EXPECT_EQ(FirstPatternMismatch(local, 4096, BufferSeed(33, 0)), -1);

  StopPeer(peer);
  st = RunAndFinish(*engine_, {MakeRequest(Request::READ, local, seg, remote, 4096)}, false);
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_NE(st.error.find("Timeout"), std::string::npos) << st.error;
  peer->Signal(SIGCONT);
}

// ---------------------------------------------------------------------------------
// Segment refresh, reopen and the in-process path

TEST_F(TcpTransferTest, RefreshSeesRegisteredAndUnregisteredBuffers) {
  const uint64_t fill = 21;
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, 64 * kKiB, "rw", fill), &peer));
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  te::SegmentInfo info;
  ASSERT_TRUE(engine_->getSegmentInfo(seg, &info).ok());
  ASSERT_EQ(info.buffers.size(), 1u);
  void* local;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(128 * kKiB, &local));

  std::string reply = peer->Command("REGISTER 131072 rw");
  uint64_t base2 = 0, len2 = 0, index2 = 0;
  ASSERT_EQ(std::sscanf(reply.c_str(), "REGISTERED %" SCNu64 " %" SCNu64 " %" SCNu64, &base2, &len2,
                        &index2),
            3)
      << reply;
  ASSERT_EQ(len2, 128 * kKiB);

  ASSERT_TRUE(engine_->refreshSegment(seg).ok());
  ASSERT_TRUE(engine_->getSegmentInfo(seg, &info).ok());
  ASSERT_EQ(info.buffers.size(), 2u);
  EXPECT_LT(info.buffers[0].base, info.buffers[1].base);
  EXPECT_TRUE(info.buffers[0].base == base2 || info.buffers[1].base == base2);
  Outcome r = RunOne(*engine_, Request::READ, local, seg, base2, len2);
  ASSERT_TRUE(r.completed()) << r.Describe();
  EXPECT_EQ(FirstPatternMismatch(local, len2, BufferSeed(fill, index2)), -1);

  // A reopened handle sees the same buffers.
  ASSERT_TRUE(engine_->closeSegment(seg).ok());
  EXPECT_FALSE(engine_->getSegmentInfo(seg, &info).ok()) << "closed handle still answers";
  te::BatchID batch;
  ASSERT_TRUE(engine_->allocateBatch(1, &batch).ok());
  EXPECT_FALSE(
      engine_->submitTransfer(batch, {MakeRequest(Request::READ, local, seg, base2, 16)}).ok())
      << "a closed handle must not be usable";
  EXPECT_TRUE(engine_->freeBatch(batch).ok());
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  ASSERT_TRUE(engine_->getSegmentInfo(seg, &info).ok());
  EXPECT_EQ(info.buffers.size(), 2u);

  // Unregistered on the target: requests fail even with the stale descriptor.
  ASSERT_EQ(peer->Command("UNREGISTER " + std::to_string(base2)), "OK");
  FillPattern(local, len2, 555);
  Outcome w = RunOne(*engine_, Request::WRITE, local, seg, base2, 4096, 10s);
  EXPECT_TRUE(w.rejected()) << w.Describe();
  r = RunOne(*engine_, Request::READ, local, seg, base2, 4096, 10s);
  EXPECT_TRUE(r.rejected()) << r.Describe();
  EXPECT_EQ(PeerChecksum(*peer, base2, len2), PatternChecksum(BufferSeed(fill, index2), 0, len2));

  ASSERT_TRUE(engine_->refreshSegment(seg).ok());
  ASSERT_TRUE(engine_->getSegmentInfo(seg, &info).ok());
  ASSERT_EQ(info.buffers.size(), 1u);
  EXPECT_EQ(info.buffers[0].base, peer->buffers()[0].base);
  r = RunOne(*engine_, Request::READ, local, seg, base2, 4096, 10s);
  EXPECT_TRUE(r.rejected()) << r.Describe();
  r = RunOne(*engine_, Request::READ, local, seg, peer->buffers()[0].base, 4096);
  EXPECT_TRUE(r.completed()) << r.Describe();
}

TEST_F(TcpTransferTest, OwnSegmentTransfersInProcess) {
  const uint64_t size = 1 * kMiB;
  void *a, *b;
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &a));
  ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &b));
  FillPattern(a, size, 41);
  FillPattern(b, size, 42);
  te::SegmentHandle self;
  te::Status s = engine_->openSegment(&self, engine_->getSegmentName());
  ASSERT_TRUE(s.ok()) << s.ToString();

  // WRITE a[1 ..) -> b[3 ..), then READ b[3 ..) -> a[4095 ..).
  const uint64_t len = 100000;
  Outcome w = RunOne(*engine_, Request::WRITE, Ptr(a, 1), self, Addr(b) + 3, len);
  ASSERT_TRUE(w.completed()) << w.Describe();
  EXPECT_EQ(FirstPatternMismatch(Ptr(b, 3), len, 41, 1), -1);
  EXPECT_EQ(*Ptr(b, 2), PatternByte(42, 2));
  EXPECT_EQ(*Ptr(b, 3 + len), PatternByte(42, 3 + len));
  Outcome r = RunOne(*engine_, Request::READ, Ptr(a, 4095), self, Addr(b) + 3, len);
  ASSERT_TRUE(r.completed()) << r.Describe();
  EXPECT_EQ(FirstPatternMismatch(Ptr(a, 4095), len, 41, 1), -1);

  Outcome bad = RunOne(*engine_, Request::READ, a, self, Addr(b) + size - 8, 16, 10s);
  EXPECT_TRUE(bad.rejected()) << bad.Describe();
  EXPECT_EQ(engine_->primaryTransport(), "local");
}

}  // namespace
}  // namespace te_test
