#include "transport/tcp/io_loop.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>

#include "test_util.h"

namespace te {
namespace {

// Records what the loop calls, and on which thread.
class Recorder : public IoHandler {
 public:
  explicit Recorder(int fd) : fd_(fd) {}
  void OnEvents(uint32_t events) override {
    Note();
    if (events & EPOLLIN) {
      char c;
      while (::recv(fd_.get(), &c, 1, MSG_DONTWAIT) == 1) ++bytes;
      input.store(true);
    }
  }
  void OnTick(std::chrono::steady_clock::time_point) override {
    Note();
    ++ticks;
  }
  void Note() {
    const std::thread::id self = std::this_thread::get_id();
    std::thread::id none;
    if (!thread.compare_exchange_strong(none, self) && none != self) wrong_thread = true;
  }

  UniqueFd fd_;
  std::atomic<std::thread::id> thread{};
  std::atomic<bool> wrong_thread{false};
  std::atomic<bool> input{false};
  std::atomic<int> bytes{0};
  std::atomic<int> ticks{0};
};

int IoThreads() { return te_test::ThreadsNamed(IoLoop::kThreadName); }

// A connected pair of sockets: `handler_end` for a handler to own, `writer` the test's.
struct SocketPair {
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    handler_end = fds[0];
    writer = UniqueFd(fds[1]);
  }
  void Send() { EXPECT_EQ(::send(writer.get(), "x", 1, 0), 1); }
  int handler_end;
  UniqueFd writer;
};

TEST(IoLoopTest, EventsTicksAndTasksOfAHandlerRunOnItsOneThread) {
  IoLoop loop;
  ASSERT_TRUE(loop.Start({3, std::chrono::milliseconds(5)}).ok());
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  UniqueFd writer(pair[1]);
  auto handler = std::make_shared<Recorder>(pair[0]);
  const uint64_t id = loop.NewId();
  ASSERT_TRUE(loop.Add(loop.NewOwner(), id, pair[0], handler).ok());
  ASSERT_EQ(::send(writer.get(), "abc", 3, 0), 3);
  ASSERT_TRUE(
      te_test::Eventually([&] { return handler->bytes.load() == 3; }, std::chrono::seconds(10)));
  ASSERT_TRUE(
      te_test::Eventually([&] { return handler->ticks.load() >= 2; }, std::chrono::seconds(10)));
  std::promise<std::thread::id> posted;
  loop.Post(id, [&] { posted.set_value(std::this_thread::get_id()); });
  EXPECT_EQ(posted.get_future().get(), handler->thread.load());
  EXPECT_FALSE(handler->wrong_thread.load());
}

// Watch changes what is reported from any thread: input left unwatched wakes nobody,
// and watching it again reports what waits at once. Before its Add reaches its thread
// a registration is not found, and a task posted then finds it.
TEST(IoLoopTest, WatchChangesTheEventsAndReportsWhatWaitsAtOnce) {
  IoLoop loop;
  ASSERT_TRUE(loop.Start({1, std::chrono::milliseconds(5)}).ok());
  SocketPair pair;
  auto handler = std::make_shared<Recorder>(pair.handler_end);
  const uint64_t id = loop.NewId();
  std::promise<void> release;
  loop.Post(id, [&release] { release.get_future().wait(); });  // holds the thread
  ASSERT_TRUE(loop.Add(loop.NewOwner(), id, pair.handler_end, handler, EPOLLIN | EPOLLET).ok());
  EXPECT_EQ(loop.Watch(id, pair.handler_end, EPOLLET).code(), Status::Code::kNotFound);
  std::promise<Status> watched;
  loop.Post(id, [&] { watched.set_value(loop.Watch(id, pair.handler_end, EPOLLET)); });
  release.set_value();
  ASSERT_TRUE(watched.get_future().get().ok());
  pair.Send();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(handler->input.load()) << "input was reported while not watched";
  ASSERT_TRUE(loop.Watch(id, pair.handler_end, EPOLLIN | EPOLLET).ok());
  EXPECT_TRUE(
      te_test::Eventually([&] { return handler->bytes.load() == 1; }, std::chrono::seconds(10)))
      << "the waiting byte was not reported once input was watched again";
}

TEST(IoLoopTest, RemovedHandlersAreDroppedAndStopDropsTheRest) {
  IoLoop loop;
  ASSERT_TRUE(loop.Start({2, std::chrono::milliseconds(5)}).ok());
  int a[2], b[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
  UniqueFd wa(a[1]), wb(b[1]);
  auto removed = std::make_shared<Recorder>(a[0]);
  auto kept = std::make_shared<Recorder>(b[0]);
  const uint64_t owner = loop.NewOwner();
  const uint64_t removed_id = loop.NewId(), kept_id = loop.NewId();
  ASSERT_TRUE(loop.Add(owner, removed_id, a[0], removed).ok());
  ASSERT_TRUE(loop.Add(owner, kept_id, b[0], kept).ok());
  loop.Remove(removed_id);
  ASSERT_TRUE(
      te_test::Eventually([&] { return removed.use_count() == 1; }, std::chrono::seconds(10)));
  EXPECT_GT(kept.use_count(), 1);
  loop.Stop();
  EXPECT_EQ(kept.use_count(), 1);
  EXPECT_FALSE(loop.Add(owner, loop.NewId(), a[0], removed).ok())
      << "a stopped loop takes no handler";
  loop.Post(kept_id, [] { FAIL() << "a stopped loop ran a task"; });
}

// How often the loop's one thread slept between two tasks, the second posted `after`
// the first ran: 0 while it still polled, 1 (or more) once it slept. Each task counts itself.
long SleepsBetweenTasks(std::chrono::microseconds busy_poll, std::chrono::milliseconds after) {
  IoLoop loop;
  EXPECT_TRUE(loop.Start({1, std::chrono::seconds(10), busy_poll}).ok());
  std::promise<long> first, second;
  loop.Post(0, [&] { first.set_value(te_test::SleepsSoFar()); });
  const long before = first.get_future().get();
  std::this_thread::sleep_for(after);
  loop.Post(0, [&] { second.set_value(te_test::SleepsSoFar()); });
  return second.get_future().get() - before;
}

TEST(IoLoopTest, AThreadPollsForItsBusyPollTimeAfterEventsThenSleeps) {
  EXPECT_EQ(SleepsBetweenTasks(std::chrono::seconds(5), std::chrono::milliseconds(20)), 0)
      << "slept although events came within its busy-poll time";
  // At least once: a sanitizer's own locks may make it sleep once more.
  EXPECT_GE(SleepsBetweenTasks(std::chrono::milliseconds(5), std::chrono::milliseconds(200)), 1)
      << "still polling long after its busy-poll time";
  EXPECT_GE(SleepsBetweenTasks(std::chrono::microseconds(0), std::chrono::milliseconds(20)), 1)
      << "polled without a busy-poll time";
}

TEST(IoLoopTest, SharedLoopsAreOnePerSettingAndStopWithTheirLastHolder) {
  ASSERT_TRUE(te_test::Eventually([] { return IoThreads() == 0; }, std::chrono::seconds(10)));
  const auto tick = std::chrono::milliseconds(5);
  std::shared_ptr<IoLoop> a, b, more_threads, other_tick, other_poll;
  ASSERT_TRUE(IoLoop::Shared({2, tick}, &a).ok());
  ASSERT_TRUE(IoLoop::Shared({2, tick}, &b).ok());
  ASSERT_TRUE(IoLoop::Shared({3, tick}, &more_threads).ok());
  ASSERT_TRUE(IoLoop::Shared({2, tick * 2}, &other_tick).ok());
  ASSERT_TRUE(IoLoop::Shared({2, tick, std::chrono::microseconds(7)}, &other_poll).ok());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, more_threads);
  EXPECT_NE(a, other_tick);
  EXPECT_NE(a, other_poll);
  EXPECT_EQ(IoThreads(), 9);
  a.reset();
  more_threads.reset();
  other_tick.reset();
  other_poll.reset();
  EXPECT_TRUE(te_test::Eventually([] { return IoThreads() == 2; }, std::chrono::seconds(10)))
      << IoThreads() << " I/O threads: the loop b still holds stopped, or the others did not";
  b.reset();
  EXPECT_TRUE(te_test::Eventually([] { return IoThreads() == 0; }, std::chrono::seconds(10)))
      << "the last holder's release left threads running";

  // The same settings again: a new loop, started.
  ASSERT_TRUE(IoLoop::Shared({2, tick}, &a).ok());
  SocketPair pair;
  auto handler = std::make_shared<Recorder>(pair.handler_end);
  ASSERT_TRUE(a->Add(a->NewOwner(), a->NewId(), pair.handler_end, handler).ok());
  pair.Send();
  EXPECT_TRUE(
      te_test::Eventually([&] { return handler->bytes.load() == 1; }, std::chrono::seconds(10)));
}

// Holds its thread in OnEvents, once input came, until released.
class Blocker : public IoHandler {
 public:
  explicit Blocker(int fd) : fd_(fd) {}
  void OnEvents(uint32_t) override {
    char c;
    if (::recv(fd_.get(), &c, 1, MSG_DONTWAIT) != 1) return;
    entered = true;
    while (!release) std::this_thread::yield();
    exited = true;
  }
  void OnTick(std::chrono::steady_clock::time_point) override {}

  UniqueFd fd_;
  std::atomic<bool> entered{false}, release{false}, exited{false};
};

TEST(IoLoopTest, RemoveAllEndsOneOwnerAndWaitsForItsRunningHandler) {
  IoLoop loop;
  ASSERT_TRUE(loop.Start({2, std::chrono::milliseconds(5)}).ok());
  const uint64_t ending = loop.NewOwner(), kept_owner = loop.NewOwner();
  SocketPair a, b, c;
  auto blocker = std::make_shared<Blocker>(a.handler_end);
  auto other = std::make_shared<Recorder>(b.handler_end);
  auto kept = std::make_shared<Recorder>(c.handler_end);
  // Consecutive ids: the three on both threads, the kept one beside the blocker.
  ASSERT_TRUE(loop.Add(ending, loop.NewId(), a.handler_end, blocker).ok());
  ASSERT_TRUE(loop.Add(ending, loop.NewId(), b.handler_end, other).ok());
  ASSERT_TRUE(loop.Add(kept_owner, loop.NewId(), c.handler_end, kept).ok());
  a.Send();
  ASSERT_TRUE(
      te_test::Eventually([&] { return blocker->entered.load(); }, std::chrono::seconds(10)));

  auto removing = std::async(std::launch::async, [&] { loop.RemoveAll(ending); });
  EXPECT_EQ(removing.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout)
      << "RemoveAll returned while a handler of its owner was running";
  blocker->release = true;
  removing.get();
  EXPECT_TRUE(blocker->exited.load());
  EXPECT_EQ(blocker.use_count(), 1) << "the loop still holds the ended owner's handler";
  EXPECT_EQ(other.use_count(), 1) << "the loop still holds the ended owner's handler";
  SocketPair late;
  EXPECT_EQ(
      loop.Add(ending, loop.NewId(), late.handler_end, std::make_shared<Recorder>(late.handler_end))
          .code(),
      Status::Code::kCancelled)
      << "an ended owner's Add was taken";

  c.Send();
  EXPECT_TRUE(
      te_test::Eventually([&] { return kept->bytes.load() == 1; }, std::chrono::seconds(10)))
      << "the other owner's handler stopped running";
}

// Ends its own owner from its event: on the loop's own thread, which a barrier task
// could never reach while it waits.
class Ender : public IoHandler {
 public:
  Ender(int fd, IoLoop* loop, uint64_t owner) : fd_(fd), loop_(loop), owner_(owner) {}
  void OnEvents(uint32_t) override {
    char c;
    if (::recv(fd_.get(), &c, 1, MSG_DONTWAIT) != 1) return;
    loop_->RemoveAll(owner_);
    ended = true;
  }
  void OnTick(std::chrono::steady_clock::time_point) override {}

  UniqueFd fd_;
  IoLoop* const loop_;
  const uint64_t owner_;
  std::atomic<bool> ended{false};
};

TEST(IoLoopTest, RemoveAllOnTheLoopsOwnThreadDropsAtOnceWithoutWaitingForItself) {
  IoLoop loop;
  ASSERT_TRUE(loop.Start({2, std::chrono::milliseconds(5)}).ok());
  const uint64_t ending = loop.NewOwner(), kept_owner = loop.NewOwner();
  SocketPair a, b, c, d;
  auto ender = std::make_shared<Ender>(a.handler_end, &loop, ending);
  auto other_thread = std::make_shared<Recorder>(b.handler_end);
  auto same_thread = std::make_shared<Recorder>(c.handler_end);
  auto kept = std::make_shared<Recorder>(d.handler_end);
  // Consecutive ids alternate between the two threads.
  ASSERT_TRUE(loop.Add(ending, loop.NewId(), a.handler_end, ender).ok());
  ASSERT_TRUE(loop.Add(ending, loop.NewId(), b.handler_end, other_thread).ok());
  ASSERT_TRUE(loop.Add(ending, loop.NewId(), c.handler_end, same_thread).ok());
  ASSERT_TRUE(loop.Add(kept_owner, loop.NewId(), d.handler_end, kept).ok());
  a.Send();
  ASSERT_TRUE(te_test::Eventually([&] { return ender->ended.load(); }, std::chrono::seconds(10)))
      << "RemoveAll on an I/O thread did not return";
  EXPECT_EQ(other_thread.use_count(), 1);
  EXPECT_EQ(same_thread.use_count(), 1);
  EXPECT_TRUE(te_test::Eventually([&] { return ender.use_count() == 1; }, std::chrono::seconds(10)))
      << "the handler that ended its owner was kept after it returned";
  d.Send();
  EXPECT_TRUE(
      te_test::Eventually([&] { return kept->bytes.load() == 1; }, std::chrono::seconds(10)));
}

// The last holder of a shared loop may let go in one of its handlers: that thread
// cannot join itself, and must not touch the loop once it is gone (ASan sees it).
TEST(IoLoopTest, ALoopDestroyedOnItsOwnThreadLetsThatThreadEnd) {
  ASSERT_TRUE(te_test::Eventually([] { return IoThreads() == 0; }, std::chrono::seconds(10)));
  auto loop = std::make_unique<IoLoop>();
  ASSERT_TRUE(loop->Start({2, std::chrono::milliseconds(5)}).ok());
  SocketPair pair;
  auto handler = std::make_shared<Recorder>(pair.handler_end);
  const uint64_t id = loop->NewId();
  ASSERT_TRUE(loop->Add(loop->NewOwner(), id, pair.handler_end, handler).ok());
  std::promise<void> destroyed;
  loop->Post(id, [&] {
    loop.reset();
    destroyed.set_value();
  });
  auto done = destroyed.get_future();
  ASSERT_EQ(done.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(handler.use_count(), 1) << "the destroyed loop kept a handler";
  EXPECT_TRUE(te_test::Eventually([] { return IoThreads() == 0; }, std::chrono::seconds(10)))
      << "a thread of the destroyed loop did not end";
}

}  // namespace
}  // namespace te
