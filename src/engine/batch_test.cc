#include "engine/batch.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace te {
namespace {

using Clock = std::chrono::steady_clock;

// Sets up task `index` of batch with one slice per entry of lengths, the way the
// engine does, and returns the slices. The task is published (visible to status
// reads) and counted in flight.
Slice* PrepareTask(Batch* batch, size_t index, const std::vector<uint64_t>& lengths) {
  Task& task = batch->task(index);
  Slice* slices = task.PrepareSlices(static_cast<uint32_t>(lengths.size()));
  for (size_t k = 0; k < lengths.size(); ++k) {
    slices[k].length = lengths[k];
    slices[k].cancelled = batch->cancel_flag();
    slices[k].on_done = &Batch::OnSliceDone;
    slices[k].owner = &task;
  }
  batch->AddInFlight(static_cast<int64_t>(lengths.size()));
  return slices;
}

void Done(Slice* slice, const Status& s = Status::OK()) { slice->on_done(slice, s); }

TEST(BatchTest, NewBatch) {
  Batch batch(8);
  EXPECT_EQ(batch.capacity(), 8u);
  EXPECT_EQ(batch.size(), 0u);
  EXPECT_EQ(batch.in_flight(), 0);
  EXPECT_FALSE(batch.cancel_flag()->load());
  for (size_t i = 0; i < batch.capacity(); ++i) {
    EXPECT_EQ(batch.task(i).batch, &batch);
    EXPECT_EQ(batch.task(i).state.load(), TransferState::kPending);
  }
  // Nothing submitted: nothing pending.
  TransferStatus overall = batch.Overall();
  EXPECT_EQ(overall.state, TransferState::kCompleted);
  EXPECT_EQ(overall.transferred_bytes, 0u);
  EXPECT_EQ(overall.error, "");
}

TEST(BatchTest, ReserveCapacity) {
  Batch batch(5);
  size_t first = 99;
  ASSERT_TRUE(batch.Reserve(3, &first));
  EXPECT_EQ(first, 0u);
  first = 99;
  EXPECT_FALSE(batch.Reserve(3, &first));  // 3 + 3 > 5
  EXPECT_EQ(first, 99u);
  ASSERT_TRUE(batch.Reserve(2, &first));
  EXPECT_EQ(first, 3u);
  EXPECT_FALSE(batch.Reserve(1, &first));
  EXPECT_TRUE(batch.Reserve(0, &first));  // an empty claim always fits
  EXPECT_EQ(first, 5u);
  EXPECT_FALSE(batch.Reserve(SIZE_MAX, &first));

  batch.Unreserve(3);  // give back the last claim
  ASSERT_TRUE(batch.Reserve(2, &first));
  EXPECT_EQ(first, 3u);
  // Reserving does not publish.
  EXPECT_EQ(batch.size(), 0u);
  batch.Publish(5);
  EXPECT_EQ(batch.size(), 5u);
}

TEST(BatchTest, ReserveExactCapacity) {
  Batch batch(4);
  size_t first;
  EXPECT_FALSE(batch.Reserve(5, &first));
  ASSERT_TRUE(batch.Reserve(4, &first));
  EXPECT_EQ(first, 0u);
  EXPECT_FALSE(batch.Reserve(1, &first));
}

TEST(BatchTest, PrepareSlices) {
  Batch batch(1);
  Task& task = batch.task(0);
  EXPECT_EQ(task.PrepareSlices(1), &task.inline_slice);
  EXPECT_EQ(task.pending_slices.load(), 1u);
  Slice* split = task.PrepareSlices(4);
  EXPECT_NE(split, &task.inline_slice);
  EXPECT_EQ(split, task.split_slices.get());
  EXPECT_EQ(task.pending_slices.load(), 4u);
}

TEST(BatchTest, SingleSliceTaskCompletes) {
  Batch batch(2);
  size_t first;
  ASSERT_TRUE(batch.Reserve(1, &first));
  Slice* s = PrepareTask(&batch, first, {4096});
  batch.Publish(first + 1);
  EXPECT_EQ(batch.in_flight(), 1);
  TransferStatus st = batch.task(0).Status();
  EXPECT_EQ(st.state, TransferState::kPending);
  EXPECT_EQ(st.transferred_bytes, 0u);
  EXPECT_EQ(batch.Overall().state, TransferState::kPending);

  Done(s);
  st = batch.task(0).Status();
  EXPECT_EQ(st.state, TransferState::kCompleted);
  EXPECT_EQ(st.transferred_bytes, 4096u);
  EXPECT_EQ(st.error, "");
  EXPECT_EQ(batch.in_flight(), 0);
  TransferStatus overall = batch.Overall();
  EXPECT_EQ(overall.state, TransferState::kCompleted);
  EXPECT_EQ(overall.transferred_bytes, 4096u);
}

TEST(BatchTest, SplitTaskCompletesAfterLastSlice) {
  Batch batch(1);
  Slice* s = PrepareTask(&batch, 0, {100, 200, 300});
  batch.Publish(1);
  EXPECT_EQ(batch.in_flight(), 3);
  Done(&s[2]);
  Done(&s[0]);
  TransferStatus st = batch.task(0).Status();
  EXPECT_EQ(st.state, TransferState::kPending);
  EXPECT_EQ(st.transferred_bytes, 400u);  // progress is visible before completion
  EXPECT_EQ(batch.in_flight(), 1);
  EXPECT_EQ(batch.Overall().transferred_bytes, 400u);
  Done(&s[1]);
  st = batch.task(0).Status();
  EXPECT_EQ(st.state, TransferState::kCompleted);
  EXPECT_EQ(st.transferred_bytes, 600u);
  EXPECT_EQ(batch.in_flight(), 0);
}

TEST(BatchTest, FirstErrorIsKept) {
  Batch batch(1);
  Slice* s = PrepareTask(&batch, 0, {10, 20, 30, 40});
  batch.Publish(1);
  Done(&s[0]);
  Done(&s[1], Status::OutOfRange("first failure"));
  // Still pending: the task ends only when every slice has reported.
  TransferStatus st = batch.task(0).Status();
  EXPECT_EQ(st.state, TransferState::kPending);
  EXPECT_EQ(st.error, "");  // the error is only reported with kFailed
  Done(&s[2], Status::Timeout("second failure"));
  Done(&s[3]);
  st = batch.task(0).Status();
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_EQ(st.error, "OutOfRange: first failure");
  EXPECT_EQ(st.transferred_bytes, 50u);  // only successful slices count
  EXPECT_EQ(batch.in_flight(), 0);

  TransferStatus overall = batch.Overall();
  EXPECT_EQ(overall.state, TransferState::kFailed);
  EXPECT_EQ(overall.error, "task 0: OutOfRange: first failure");
  EXPECT_EQ(overall.transferred_bytes, 50u);
}

TEST(BatchTest, OverallStates) {
  Batch batch(4);
  size_t first;
  ASSERT_TRUE(batch.Reserve(3, &first));
  Slice* a = PrepareTask(&batch, 0, {1000});
  Slice* b = PrepareTask(&batch, 1, {2000});
  Slice* c = PrepareTask(&batch, 2, {3000, 3000});
  batch.Publish(3);
  EXPECT_EQ(batch.in_flight(), 4);

  // One failed, others pending: pending, and no error yet.
  Done(b, Status::PermissionDenied("read-only"));
  TransferStatus overall = batch.Overall();
  EXPECT_EQ(overall.state, TransferState::kPending);
  EXPECT_EQ(overall.error, "");

  Done(a);
  Done(&c[0]);
  overall = batch.Overall();
  EXPECT_EQ(overall.state, TransferState::kPending);
  EXPECT_EQ(overall.transferred_bytes, 4000u);

  Done(&c[1]);
  overall = batch.Overall();
  EXPECT_EQ(overall.state, TransferState::kFailed);
  EXPECT_EQ(overall.transferred_bytes, 7000u);
  EXPECT_EQ(overall.error, "task 1: PermissionDenied: read-only");
  EXPECT_EQ(batch.in_flight(), 0);
  EXPECT_EQ(batch.task(0).Status().state, TransferState::kCompleted);
  EXPECT_EQ(batch.task(1).Status().state, TransferState::kFailed);
  EXPECT_EQ(batch.task(2).Status().state, TransferState::kCompleted);
}

TEST(BatchTest, OverallReportsFirstFailedTask) {
  Batch batch(3);
  Slice* a = PrepareTask(&batch, 0, {1});
  Slice* b = PrepareTask(&batch, 1, {1});
  Slice* c = PrepareTask(&batch, 2, {1});
  batch.Publish(3);
  Done(c, Status::Cancelled("third"));
  Done(b, Status::Timeout("second"));
  Done(a);
  TransferStatus overall = batch.Overall();
  EXPECT_EQ(overall.state, TransferState::kFailed);
  EXPECT_EQ(overall.error, "task 1: Timeout: second");  // by task order, not time
}

TEST(BatchTest, OverallIgnoresUnpublishedTasks) {
  Batch batch(4);
  Slice* a = PrepareTask(&batch, 0, {10});
  PrepareTask(&batch, 1, {20});  // reserved and set up, not yet published
  batch.Publish(1);
  Done(a);
  EXPECT_EQ(batch.size(), 1u);
  TransferStatus overall = batch.Overall();
  EXPECT_EQ(overall.state, TransferState::kCompleted);
  EXPECT_EQ(overall.transferred_bytes, 10u);
  batch.Publish(2);
  EXPECT_EQ(batch.Overall().state, TransferState::kPending);
}

TEST(BatchTest, SubmissionsAccumulate) {
  Batch batch(4);
  size_t first;
  ASSERT_TRUE(batch.Reserve(2, &first));
  Slice* a = PrepareTask(&batch, first, {5});
  Slice* b = PrepareTask(&batch, first + 1, {6});
  batch.Publish(first + 2);
  Done(a);
  Done(b);
  EXPECT_EQ(batch.Overall().state, TransferState::kCompleted);

  ASSERT_TRUE(batch.Reserve(1, &first));
  EXPECT_EQ(first, 2u);
  Slice* c = PrepareTask(&batch, first, {7});
  batch.Publish(first + 1);
  EXPECT_EQ(batch.Overall().state, TransferState::kPending);  // the new task is pending
  EXPECT_EQ(batch.Overall().transferred_bytes, 11u);
  Done(c, Status::IoError("boom"));
  TransferStatus overall = batch.Overall();
  EXPECT_EQ(overall.state, TransferState::kFailed);
  EXPECT_EQ(overall.error, "task 2: IoError: boom");
  EXPECT_EQ(overall.transferred_bytes, 11u);
}

TEST(BatchTest, CancelFlag) {
  Batch batch(1);
  Slice* s = PrepareTask(&batch, 0, {1});
  EXPECT_FALSE(s->IsCancelled());
  batch.Cancel();
  EXPECT_TRUE(batch.cancel_flag()->load());
  EXPECT_TRUE(s->IsCancelled());
  Slice detached;
  EXPECT_FALSE(detached.IsCancelled());  // no flag: never cancelled
  // A cancelled slice still reports through on_done like any other.
  Done(s, Status::Cancelled("batch freed"));
  EXPECT_EQ(batch.task(0).Status().state, TransferState::kFailed);
  EXPECT_EQ(batch.in_flight(), 0);
}

TEST(BatchTest, InFlightAccounting) {
  Batch batch(2);
  Slice* a = PrepareTask(&batch, 0, {1, 1, 1});
  EXPECT_EQ(batch.in_flight(), 3);
  Slice* b = PrepareTask(&batch, 1, {1, 1});
  EXPECT_EQ(batch.in_flight(), 5);
  batch.Publish(2);
  Done(&a[0]);
  Done(&b[1], Status::Timeout("t"));
  EXPECT_EQ(batch.in_flight(), 3);
  Done(&a[1]);
  Done(&a[2]);
  Done(&b[0]);
  EXPECT_EQ(batch.in_flight(), 0);
}

TEST(BatchTest, ConcurrentSliceCompletions) {
  constexpr int kThreads = 8;
  constexpr int kSlicesPerThread = 2000;
  constexpr uint32_t kSlices = kThreads * kSlicesPerThread;
  Batch batch(1);
  std::vector<uint64_t> lengths(kSlices);
  for (uint32_t i = 0; i < kSlices; ++i) lengths[i] = i % 7 + 1;
  Slice* slices = PrepareTask(&batch, 0, lengths);
  batch.Publish(1);
  uint64_t expected_bytes = 0;
  for (uint32_t i = 0; i < kSlices; ++i) {
    if (i % 1000 != 0) expected_bytes += lengths[i];
  }
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int k = 0; k < kSlicesPerThread; ++k) {
        uint32_t i = static_cast<uint32_t>(t * kSlicesPerThread + k);
        // Every 1000th slice fails, each with its own message.
        Done(&slices[i],
             i % 1000 == 0 ? Status::IoError("slice " + std::to_string(i)) : Status::OK());
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();
  TransferStatus st = batch.task(0).Status();
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_EQ(st.transferred_bytes, expected_bytes);
  EXPECT_EQ(st.error.rfind("IoError: slice ", 0), 0u) << st.error;  // exactly one, whole
  EXPECT_EQ(batch.in_flight(), 0);
  EXPECT_EQ(batch.task(0).pending_slices.load(), 0u);
}

// A sleeping waiter waits for the whole batch: it is woken by the completion of the
// last task, not by every task (each wake-up a context switch).
TEST(BatchTest, ASleepingWaiterIsWokenOnceForTheWholeBatch) {
  constexpr size_t kTasks = 16;
  auto owned = std::make_shared<Batch>(kTasks);  // a waker holds it by shared_from_this
  Batch& batch = *owned;
  size_t first;
  ASSERT_TRUE(batch.Reserve(kTasks, &first));
  std::vector<Slice*> slices;
  for (size_t i = 0; i < kTasks; ++i) slices.push_back(PrepareTask(&batch, i, {64}));
  batch.Publish(kTasks);
  std::atomic<long> switches{-1};
  std::thread waiter([&] {
    rusage before{}, after{};
    ::getrusage(RUSAGE_THREAD, &before);
    SpinBudget budget;
    EXPECT_TRUE(batch.WaitDone(Clock::now() + std::chrono::seconds(30), &budget));
    ::getrusage(RUSAGE_THREAD, &after);
    switches = after.ru_nvcsw - before.ru_nvcsw;
  });
  for (Slice* slice : slices) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the waiter sleeps
    Done(slice);
  }
  waiter.join();
  EXPECT_LT(switches.load(), static_cast<long>(kTasks / 2))
      << "the waiter slept and woke " << switches.load() << " times for " << kTasks << " tasks";
}

// ---- retries on the next route ----

// A transport peer that completes every slice at once with a scripted status and
// records what it was given. `serves` says whether CanServe accepts a buffer.
class ScriptedPeer : public TransportPeer {
 public:
  ScriptedPeer(Status result, bool serves = true) : result_(std::move(result)), serves_(serves) {}
  void Submit(Slice* const* slices, size_t count) override {
    for (size_t i = 0; i < count; ++i) {
      ++submitted;
      slices[i]->on_done(slices[i], result_);
    }
  }
  bool CanServe(const SegmentBuffer*) const override { return serves_; }
  bool CarriesDeviceMemory() const override { return carries_device; }
  int submitted = 0;
  bool carries_device = false;

 private:
  Status result_;
  bool serves_;
};

struct RetryFixture {
  explicit RetryFixture(std::vector<std::shared_ptr<ScriptedPeer>> peers)
      : metrics(Names(peers.size()), "p2p", /*time_latency=*/true), batch(1, &metrics) {
    auto r = std::make_shared<SegmentRoutes>();
    auto d = std::make_shared<SegmentDescriptor>();
    SegmentBuffer b;
    b.base = 4096;
    b.length = 4096;
    d->buffers.push_back(b);
    r->descriptor = d;
    for (size_t i = 0; i < peers.size(); ++i) r->routes.push_back({i, peers[i]});
    routes = r;
  }
  // Submits one slice the way the engine does, on route 0.
  void Run() {
    Slice* s = PrepareTask(&batch, 0, {512});
    s->remote = 4096;
    batch.task(0).routes = routes;
    batch.Publish(1);
    routes->routes[0].peer->Submit(&s, 1);
  }
  static std::vector<std::string> Names(size_t n) {
    std::vector<std::string> names;
    for (size_t i = 0; i < n; ++i) names.push_back("t" + std::to_string(i));
    return names;
  }
  EngineStatistics Stats() const {
    EngineStatistics stats;
    metrics.Fill(&stats);
    return stats;
  }
  EngineMetrics metrics;
  Batch batch;
  std::shared_ptr<const SegmentRoutes> routes;
};

TEST(BatchRetryTest, FailedSliceMovesToTheNextRouteThatServesIt) {
  auto shm = std::make_shared<ScriptedPeer>(Status::Unavailable("shm gone"));
  auto cma = std::make_shared<ScriptedPeer>(Status::OK(), /*serves=*/false);
  auto tcp = std::make_shared<ScriptedPeer>(Status::OK());
  RetryFixture f({shm, cma, tcp});
  f.Run();
  EXPECT_EQ(f.batch.task(0).state.load(), TransferState::kCompleted);
  EXPECT_EQ(f.batch.task(0).transferred.load(), 512u);
  EXPECT_EQ(cma->submitted, 0);  // it cannot serve the buffer
  EXPECT_EQ(tcp->submitted, 1);
  const EngineStatistics stats = f.Stats();
  EXPECT_EQ(stats.retried_slices, 1u);
  EXPECT_EQ(stats.bytes_by_transport.at("t2"), 512u);
  // The slice completed on its retry's transport: its latency is counted there.
  EXPECT_EQ(stats.transports.at("t2").slice_latency.count, 1u);
  EXPECT_EQ(stats.transports.at("t0").slice_latency.count, 0u);
  EXPECT_EQ(stats.transports.at("t2").batch_latency.count, 1u);
  EXPECT_EQ(f.batch.in_flight(), 0);
}

// A memcpy (shm), process_vm_readv (cma) or plain memmove of a device address faults:
// a request with GPU memory on either side skips every route that does not carry it,
// first choice and retries alike. No GPU needed: the location alone decides.
TEST(DeviceRoutingTest, DeviceMemoryOnEitherSideSkipsHostOnlyRoutes) {
  auto shm = std::make_shared<ScriptedPeer>(Status::OK());
  auto cma = std::make_shared<ScriptedPeer>(Status::OK());
  auto tcp = std::make_shared<ScriptedPeer>(Status::OK());
  tcp->carries_device = true;
  SegmentRoutes routes;
  routes.routes = {{0, shm}, {1, cma}, {2, tcp}};
  SegmentBuffer dram, vram;
  dram.location = "cpu:0";
  vram.location = "cuda:1";
  EXPECT_EQ(routes.NextRoute(-1, kHostMemory, &dram), 0) << "DRAM to DRAM keeps its order";
  EXPECT_EQ(routes.NextRoute(-1, kHostMemory, &vram), 2) << "remote VRAM";
  EXPECT_EQ(routes.NextRoute(-1, 0, &dram), 2) << "local VRAM";
  EXPECT_EQ(routes.NextRoute(-1, 0, nullptr), 2) << "local VRAM, unknown remote range";
  EXPECT_EQ(routes.NextRoute(2, 0, &vram), -1) << "no later route carries it";
  tcp->carries_device = false;
  EXPECT_EQ(routes.NextRoute(-1, 0, &vram), -1) << "nothing carries device memory";
}

TEST(DeviceRoutingTest, RetryOfADeviceSliceSkipsHostOnlyRoutes) {
  auto ipc = std::make_shared<ScriptedPeer>(Status::Unavailable("ipc gone"));
  ipc->carries_device = true;
  auto shm = std::make_shared<ScriptedPeer>(Status::OK());
  auto tcp = std::make_shared<ScriptedPeer>(Status::OK());
  tcp->carries_device = true;
  RetryFixture f({ipc, shm, tcp});
  Slice* s = PrepareTask(&f.batch, 0, {512});
  s->remote = 4096;
  s->local_device = 0;
  f.batch.task(0).routes = f.routes;
  f.batch.Publish(1);
  ipc->Submit(&s, 1);
  EXPECT_EQ(f.batch.task(0).state.load(), TransferState::kCompleted);
  EXPECT_EQ(shm->submitted, 0);
  EXPECT_EQ(tcp->submitted, 1);
}

TEST(BatchRetryTest, EveryRouteFailingFailsTheTaskWithTheLastError) {
  auto a = std::make_shared<ScriptedPeer>(Status::Unavailable("first"));
  auto b = std::make_shared<ScriptedPeer>(Status::IoError("second"));
  auto c = std::make_shared<ScriptedPeer>(Status::OutOfRange("third"));
  RetryFixture f({a, b, c});
  f.Run();
  EXPECT_EQ(f.batch.task(0).state.load(), TransferState::kFailed);
  EXPECT_NE(f.batch.task(0).error.find("third"), std::string::npos) << f.batch.task(0).error;
  EXPECT_EQ(a->submitted + b->submitted + c->submitted, 3);
  const EngineStatistics stats = f.Stats();
  EXPECT_EQ(stats.retried_slices, 2u);  // bounded by the routes
  // Counted once, as a failure of the last transport tried, with its reason.
  EXPECT_EQ(stats.transports.at("t2").failures_by_reason,
            (std::map<std::string, uint64_t>{{"out_of_range", 1}}));
  EXPECT_TRUE(stats.transports.at("t0").failures_by_reason.empty());
  EXPECT_EQ(stats.slices_in_flight, 0);
  EXPECT_EQ(f.batch.in_flight(), 0);
}

TEST(BatchRetryTest, CancelledAndInvalidAreNotRetried) {
  for (Status st : {Status::Cancelled("freed"), Status::InvalidArgument("bad")}) {
    auto a = std::make_shared<ScriptedPeer>(st);
    auto b = std::make_shared<ScriptedPeer>(Status::OK());
    RetryFixture f({a, b});
    f.Run();
    EXPECT_EQ(f.batch.task(0).state.load(), TransferState::kFailed) << st.ToString();
    EXPECT_EQ(b->submitted, 0) << st.ToString();
    EXPECT_EQ(f.Stats().retried_slices, 0u);
  }
}

TEST(BatchRetryTest, RoutesGoneMeansNoRetry) {
  auto a = std::make_shared<ScriptedPeer>(Status::Unavailable("gone"));
  auto b = std::make_shared<ScriptedPeer>(Status::OK());
  RetryFixture f({a, b});
  Slice* s = PrepareTask(&f.batch, 0, {512});
  f.batch.task(0).routes = f.routes;
  f.batch.Publish(1);
  f.routes.reset();  // the segment was closed: the task's weak reference expires
  a->Submit(&s, 1);
  EXPECT_EQ(f.batch.task(0).state.load(), TransferState::kFailed);
  EXPECT_EQ(b->submitted, 0);
}

TEST(BatchTest, WaitDoneReturnsAtOnceWhenDone) {
  auto shared = std::make_shared<Batch>(1);
  Batch& batch = *shared;
  Slice* a = PrepareTask(&batch, 0, {1});
  batch.Publish(1);
  EXPECT_FALSE(batch.Done());
  Done(&a[0]);
  EXPECT_TRUE(batch.Done());
  SpinBudget spin;
  EXPECT_TRUE(batch.WaitDone(Clock::now(), &spin));
}

TEST(BatchTest, WaitDoneTimesOutWhilePending) {
  auto shared = std::make_shared<Batch>(2);
  Batch& batch = *shared;
  Slice* a = PrepareTask(&batch, 0, {1});
  PrepareTask(&batch, 1, {1});
  batch.Publish(2);
  Done(&a[0]);
  SpinBudget spin;
  EXPECT_FALSE(batch.WaitDone(Clock::now() + std::chrono::milliseconds(20), &spin));
  EXPECT_FALSE(batch.Done());
}

TEST(BatchTest, WaitDoneWakesOnTheLastCompletion) {
  // Every round completes from another thread, past the spin, while the waiter
  // sleeps or is about to: a lost wake-up would run into the (long) deadline.
  SpinBudget spin;
  for (int round = 0; round < 200; ++round) {
    auto shared = std::make_shared<Batch>(2);
    Batch& batch = *shared;
    Slice* a = PrepareTask(&batch, 0, {1});
    Slice* b = PrepareTask(&batch, 1, {1, 1});
    batch.Publish(2);
    std::thread completer([&] {
      Done(&a[0]);
      std::this_thread::sleep_for(std::chrono::microseconds(round % 4 * 50));
      Done(&b[0], Status::IoError("x"));
      Done(&b[1]);
    });
    EXPECT_TRUE(batch.WaitDone(Clock::now() + std::chrono::seconds(30), &spin));
    completer.join();
    EXPECT_EQ(batch.Overall().state, TransferState::kFailed);
  }
}

TEST(SpinBudgetTest, LearnsFromWhatWaitsFound) {
  using std::chrono::microseconds;
  SpinBudget spin;
  EXPECT_EQ(spin.Next(), SpinBudget::kMax);
  spin.Learn(false, microseconds(0));  // had to sleep: half
  EXPECT_EQ(spin.Next(), SpinBudget::kMax / 2);
  spin.Learn(false, microseconds(0));
  EXPECT_EQ(spin.Next(), SpinBudget::kMax / 4);
  spin.Learn(true, microseconds(3));  // caught in time: keeps what it has, >= 2x the wait
  EXPECT_EQ(spin.Next(), SpinBudget::kMax / 4);
  spin.Learn(true, microseconds(20));
  EXPECT_EQ(spin.Next(), microseconds(40));
  spin.Learn(true, microseconds(45));  // never above the cap
  EXPECT_EQ(spin.Next(), SpinBudget::kMax);
  for (int i = 0; i < 20; ++i) spin.Learn(false, microseconds(0));
  EXPECT_EQ(spin.Next().count(), 0);
}

TEST(SpinBudgetTest, ProbesTheFullBudgetNowAndThen) {
  SpinBudget spin;
  int full = 0;
  for (uint32_t i = 1; i <= 4 * SpinBudget::kProbeEvery; ++i) {
    if (spin.Next() == SpinBudget::kMax) ++full;
    spin.Learn(false, std::chrono::nanoseconds(0));
  }
  EXPECT_EQ(full, 4 + 1);  // the probes, and the first wait before anything was learnt
}

}  // namespace
}  // namespace te
