// IoLoop: a fixed set of threads, each waiting on one epoll set, that run the TCP
// transport's socket handlers. However many peers and connections there are, the
// transport's socket work runs on these threads (plus the submitting and waiting
// threads that send and receive inline, tcp_connection.h).
//
// A process shares its loops: the transports of every engine with the same settings
// use one (Shared), so a process with many engines runs a few I/O threads, not a few
// per engine, and one epoll_wait finds the ready sockets of several engines at once.
// Each registration names its owner (a transport); RemoveAll ends one owner's
// handlers while the others' go on.
//
// A handler is added to one thread's set (round-robin) and from then on runs only on
// that thread: its events, the tasks posted to it and its ticks are never concurrent
// with each other. Sockets are watched edge-triggered (for input, output and hang-up
// unless the handler asks for less), so a handler must read (or write) until the
// socket would block, or post itself a task to go on later.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <unordered_map>
#include <unordered_set>
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

// What a loop is: a process shares one loop per distinct setting (IoLoop::Shared).
struct IoLoopSettings {
  uint32_t threads = 1;
  std::chrono::milliseconds tick{100};  // how often handlers' OnTick runs
  // How long a thread goes on polling (epoll_wait without sleeping, yielding the CPU
  // between tries) after events before it sleeps. The next message of a busy socket
  // then finds the thread awake: no wake-up, which costs a context switch and, on a
  // virtual machine whose idle CPU halted, a hypervisor's wake of that CPU (tens of
  // microseconds). 0: sleep at once.
  std::chrono::microseconds busy_poll{0};
  auto operator<=>(const IoLoopSettings&) const = default;
};

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

  // What the loop's threads are named (pthread_setname_np): `top -H` and tests see them.
  static constexpr char kThreadName[] = "te-tcp-io";

  // The process's started loop of these settings, shared with every other holder of
  // the same; it stops when the last holder lets it go.
  static Status Shared(const IoLoopSettings& settings, std::shared_ptr<IoLoop>* out);

  Status Start(const IoLoopSettings& settings);
  // Joins the threads and drops every handler. Later calls do nothing. On one of the
  // loop's own threads (its last holder let go in a handler) that thread is left to
  // end by itself once the handler returns, as it cannot join itself.
  void Stop();
  // An owner for Add: a set of registrations that RemoveAll ends together.
  uint64_t NewOwner() EXCLUDES(owners_mu_);
  // A registration id, for Add: known to the handler before its first event.
  uint64_t NewId() { return next_id_.fetch_add(1, std::memory_order_relaxed); }
  // What Add watches unless told otherwise.
  static constexpr uint32_t kAllEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  // Watches fd (owned by the handler, open until the handler is dropped) for events on
  // the thread that id picks; id then names the registration for Post, Watch and
  // Remove. Refused once the loop stopped or RemoveAll(owner) ran.
  Status Add(uint64_t owner, uint64_t id, int fd, std::shared_ptr<IoHandler> handler,
             uint32_t events = kAllEvents) EXCLUDES(owners_mu_);
  // Any thread: watches registration id's fd for `events` from now on. Input or output
  // already waiting is reported at once, as a new edge. NotFound while the Add has not
  // reached its thread (a task Posted now runs after it has); after Remove, events of
  // the fd (open until its handler goes) reach nobody.
  Status Watch(uint64_t id, int fd, uint32_t events);
  // Stops watching and drops the loop's reference to the handler, soon, on its thread.
  void Remove(uint64_t id);
  // Runs fn on the thread of registration id (not at all once the loop stopped). fn
  // must not own a handler (hold a weak pointer): the loop drops only what it holds.
  void Post(uint64_t id, std::function<void()> fn);
  // Ends owner: refuses its later Adds and drops its handlers on every thread. When it
  // returns, the loop holds none of them and none runs, and the tasks posted before it
  // ran (except on the caller's own thread, when it is one of the loop's: there the
  // handlers go at once, and the caller's own handler only when it returns). Not
  // concurrent with Stop.
  void RemoveAll(uint64_t owner) EXCLUDES(owners_mu_);

 private:
  // An Add on its way to its thread.
  struct Registration {
    uint64_t owner;
    uint64_t id;
    int fd;
    uint32_t events;
    std::shared_ptr<IoHandler> handler;
  };
  struct Entry {
    uint64_t owner;
    std::shared_ptr<IoHandler> handler;
  };
  struct Thread {
    UniqueFd epoll;
    UniqueFd wake;  // eventfd: tasks were posted
    Mutex mu;
    std::vector<Registration> adds GUARDED_BY(mu);
    std::vector<std::function<void()>> tasks GUARDED_BY(mu);
    bool stopping GUARDED_BY(mu) = false;
    // Touched only by the thread itself (or by Stop, once it ended).
    std::unordered_map<uint64_t, Entry> handlers;
    std::thread thread;
  };

  // A thread's work. It reaches only its Thread, which it co-owns, so that a thread
  // left to end by itself (Stop) outlives the IoLoop safely.
  static void Run(std::shared_ptr<Thread> t, IoLoopSettings settings);
  // Waits for t's events until next_tick, polling instead of sleeping until poll_until.
  static int WaitForEvents(Thread* t, epoll_event* events,
                           std::chrono::steady_clock::time_point next_tick,
                           std::chrono::steady_clock::time_point poll_until);
  // Registers the Adds and runs the tasks posted so far; false once the thread is to stop.
  static bool RunTasks(Thread* t);
  static void Register(Thread* t, std::vector<Registration>* adds);
  static void Tick(Thread* t, std::chrono::steady_clock::time_point now);
  // Hands events to registration id's handler, if it is still there.
  static void Dispatch(Thread* t, uint64_t id, uint32_t events);
  // On t's own thread: drops owner's handlers and the Adds of it not yet registered.
  static void DropOwner(Thread* t, uint64_t owner);
  // Queues fn for t; drops it, unrun, once t is stopping.
  static void PostTo(Thread* t, std::function<void()> fn);
  static void Wake(Thread* t);
  Thread* ThreadOf(uint64_t id) const { return threads_[id % threads_.size()].get(); }

  std::vector<std::shared_ptr<Thread>> threads_;
  std::atomic<uint64_t> next_id_{0};
  std::atomic<bool> running_{false};
  Mutex owners_mu_;
  // Owners whose registrations are accepted: from NewOwner until RemoveAll.
  std::unordered_set<uint64_t> owners_ GUARDED_BY(owners_mu_);
  uint64_t next_owner_ GUARDED_BY(owners_mu_) = 0;
};

}  // namespace te
