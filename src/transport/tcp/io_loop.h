// IoLoop: a fixed set of threads, each waiting on one epoll set, that run the TCP
// transport's socket handlers. However many peers and connections there are, the
// transport's socket work runs on these threads (plus the submitting and waiting
// threads that send and receive inline, tcp_connection.h).
//
// A handler is added to one thread's set (round-robin) and from then on runs only on
// that thread: its events, the tasks posted to it and its ticks are never concurrent
// with each other. Sockets are watched edge-triggered for input, output and hang-up,
// so a handler must read (or write) until the socket would block, or post itself a
// task to go on later.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/socket.h"
#include "common/thread_annotations.h"
#include "te/status.h"

namespace te {

// steady_clock time in nanoseconds, as the handlers keep their progress stamps.
inline int64_t SteadyNs(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline int64_t SteadyNowNs() { return SteadyNs(std::chrono::steady_clock::now()); }

class IoHandler {
 public:
  virtual ~IoHandler() = default;
  // The epoll events (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLERR, EPOLLHUP) of its fd.
  virtual void OnEvents(uint32_t events) = 0;
  // Called every tick of the loop: timeouts and idle connections are checked here.
  virtual void OnTick(std::chrono::steady_clock::time_point now) = 0;
};

class IoLoop {
 public:
  IoLoop() = default;
  ~IoLoop() { Stop(); }
  IoLoop(const IoLoop&) = delete;
  IoLoop& operator=(const IoLoop&) = delete;

  Status Start(uint32_t threads, std::chrono::milliseconds tick);
  // Joins the threads and drops every handler. Later calls do nothing.
  void Stop();
  // A registration id, for Add: known to the handler before its first event.
  uint64_t NewId() { return next_id_.fetch_add(1, std::memory_order_relaxed); }
  // Watches fd (owned by the handler, open until the handler is dropped) on the thread
  // that id picks; id then names the registration for Post and Remove.
  Status Add(uint64_t id, int fd, std::shared_ptr<IoHandler> handler);
  // Stops watching and drops the loop's reference to the handler, soon, on its thread.
  void Remove(uint64_t id);
  // Runs fn on the thread of registration id (not at all once the loop stopped).
  void Post(uint64_t id, std::function<void()> fn);

 private:
  struct Thread {
    UniqueFd epoll;
    UniqueFd wake;  // eventfd: tasks were posted
    Mutex mu;
    std::vector<std::function<void()>> tasks GUARDED_BY(mu);
    bool stopping GUARDED_BY(mu) = false;
    // Touched only by the thread itself.
    std::unordered_map<uint64_t, std::shared_ptr<IoHandler>> handlers;
    std::thread thread;
  };

  void Run(Thread* t);
  // Runs the tasks posted so far; false once the thread is to stop.
  bool RunTasks(Thread* t);
  Thread* ThreadOf(uint64_t id) const { return threads_[id % threads_.size()].get(); }
  void PostTo(Thread* t, std::function<void()> fn);

  std::vector<std::unique_ptr<Thread>> threads_;
  std::chrono::milliseconds tick_{100};
  std::atomic<uint64_t> next_id_{0};
  std::atomic<bool> running_{false};
};

}  // namespace te
