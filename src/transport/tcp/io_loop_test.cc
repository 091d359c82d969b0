#include "transport/tcp/io_loop.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <atomic>
#include <future>
#include <thread>

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

template <typename Cond>
bool Within(Cond cond, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

TEST(IoLoopTest, EventsTicksAndTasksOfAHandlerRunOnItsOneThread) {
  IoLoop loop;
  ASSERT_TRUE(loop.Start(3, std::chrono::milliseconds(5)).ok());
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  UniqueFd writer(pair[1]);
  auto handler = std::make_shared<Recorder>(pair[0]);
  const uint64_t id = loop.NewId();
  ASSERT_TRUE(loop.Add(id, pair[0], handler).ok());
  ASSERT_EQ(::send(writer.get(), "abc", 3, 0), 3);
  ASSERT_TRUE(Within([&] { return handler->bytes.load() == 3; }, std::chrono::seconds(10)));
  ASSERT_TRUE(Within([&] { return handler->ticks.load() >= 2; }, std::chrono::seconds(10)));
  std::promise<std::thread::id> posted;
  loop.Post(id, [&] { posted.set_value(std::this_thread::get_id()); });
  EXPECT_EQ(posted.get_future().get(), handler->thread.load());
  EXPECT_FALSE(handler->wrong_thread.load());
}

TEST(IoLoopTest, RemovedHandlersAreDroppedAndStopDropsTheRest) {
  IoLoop loop;
  ASSERT_TRUE(loop.Start(2, std::chrono::milliseconds(5)).ok());
  int a[2], b[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
  UniqueFd wa(a[1]), wb(b[1]);
  auto removed = std::make_shared<Recorder>(a[0]);
  auto kept = std::make_shared<Recorder>(b[0]);
  const uint64_t removed_id = loop.NewId(), kept_id = loop.NewId();
  ASSERT_TRUE(loop.Add(removed_id, a[0], removed).ok());
  ASSERT_TRUE(loop.Add(kept_id, b[0], kept).ok());
  loop.Remove(removed_id);
  ASSERT_TRUE(Within([&] { return removed.use_count() == 1; }, std::chrono::seconds(10)));
  EXPECT_GT(kept.use_count(), 1);
  loop.Stop();
  EXPECT_EQ(kept.use_count(), 1);
  EXPECT_FALSE(loop.Add(loop.NewId(), a[0], removed).ok()) << "a stopped loop takes no handler";
  loop.Post(kept_id, [] { FAIL() << "a stopped loop ran a task"; });
}

}  // namespace
}  // namespace te
