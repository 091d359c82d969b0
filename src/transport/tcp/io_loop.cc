#include "transport/tcp/io_loop.h"

#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <map>
#include <utility>

#include "common/logging.h"

namespace te {
namespace {
using Clock = std::chrono::steady_clock;
constexpr int kMaxEventsPerWait = 64;
// Registration ids' low bits pick the thread; the eventfd's own id is never issued.
constexpr uint64_t kWakeId = ~0ull;
// The loop thread that this thread is, if any: RemoveAll and Stop must not wait for it.
thread_local const void* current_loop_thread = nullptr;

// The process's loops by (threads, tick in ms). Never destroyed: an engine that is a
// static may let go of its loop after this file's statics are gone.
struct SharedLoops {
  Mutex mu;
  std::map<IoLoopSettings, std::weak_ptr<IoLoop>> loops GUARDED_BY(mu);
};
SharedLoops& TheSharedLoops() {
  static SharedLoops* loops = new SharedLoops;
  return *loops;
}
}  // namespace

Status IoLoop::Shared(const IoLoopSettings& settings, std::shared_ptr<IoLoop>* out) {
  SharedLoops& shared = TheSharedLoops();
  MutexLock lock(&shared.mu);
  std::weak_ptr<IoLoop>& slot = shared.loops[settings];
  // Expired while its last holder stops it: that one goes on ending, a new one starts.
  *out = slot.lock();
  if (*out) return Status::OK();
  auto loop = std::make_shared<IoLoop>();
  TE_RETURN_IF_ERROR(loop->Start(settings));
  slot = loop;
  *out = std::move(loop);
  return Status::OK();
}

Status IoLoop::Start(const IoLoopSettings& settings) {
  for (uint32_t i = 0; i < settings.threads; ++i) {
    auto t = std::make_shared<Thread>();
    t->epoll = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    t->wake = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!t->epoll.valid() || !t->wake.valid()) {
      return Status::Internal(std::string("tcp: epoll/eventfd: ") + std::strerror(errno));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeId;
    if (::epoll_ctl(t->epoll.get(), EPOLL_CTL_ADD, t->wake.get(), &ev) != 0) {
      return Status::Internal(std::string("tcp: epoll_ctl: ") + std::strerror(errno));
    }
    threads_.push_back(std::move(t));
  }
  for (auto& t : threads_) {
    t->thread = std::thread(Run, t, settings);
    pthread_setname_np(t->thread.native_handle(), kThreadName);  // named once Start returns
  }
  running_ = true;
  return Status::OK();
}

void IoLoop::Stop() {
  if (!running_.exchange(false)) return;
  for (auto& t : threads_) {
    {
      MutexLock lock(&t->mu);
      t->stopping = true;
    }
    Wake(t.get());
  }
  for (auto& t : threads_) {
    if (t.get() == current_loop_thread) {
      t->thread.detach();  // it sees `stopping` once its handler returns, and ends
    } else {
      t->thread.join();
    }
  }
  // Handlers, and Adds and tasks never run, may hold the last reference to objects
  // whose destructors post here: those posts find the loop stopped. The caller's own
  // thread, if it is one of them, runs nothing else meanwhile.
  for (auto& t : threads_) {
    std::vector<Registration> adds;
    std::vector<std::function<void()>> tasks;
    {
      MutexLock lock(&t->mu);
      adds.swap(t->adds);
      tasks.swap(t->tasks);
    }
    adds.clear();
    tasks.clear();
    t->handlers.clear();
  }
}

uint64_t IoLoop::NewOwner() {
  MutexLock lock(&owners_mu_);
  const uint64_t owner = next_owner_++;
  owners_.insert(owner);
  return owner;
}

Status IoLoop::Add(uint64_t owner, uint64_t id, int fd, std::shared_ptr<IoHandler> handler,
                   uint32_t events) {
  if (!running_) return Status::Cancelled("tcp: transport stopped");
  Thread* t = ThreadOf(id);
  bool first;
  {
    // Queued under owners_mu_: RemoveAll's barrier task, queued after the owner went,
    // then reaches each thread after every Add that was accepted.
    MutexLock owners(&owners_mu_);
    if (owners_.count(owner) == 0) return Status::Cancelled("tcp: transport stopped");
    MutexLock lock(&t->mu);
    if (t->stopping) return Status::Cancelled("tcp: transport stopped");
    first = t->adds.empty() && t->tasks.empty();
    t->adds.push_back({owner, id, fd, events, std::move(handler)});
  }
  if (first) Wake(t);
  return Status::OK();
}

Status IoLoop::Watch(uint64_t id, int fd, uint32_t events) {
  if (threads_.empty()) return Status::NotFound("tcp: loop not started");
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  if (::epoll_ctl(ThreadOf(id)->epoll.get(), EPOLL_CTL_MOD, fd, &ev) == 0) return Status::OK();
  if (errno == ENOENT) return Status::NotFound("tcp: fd not (or no longer) watched");
  return Status::Internal(std::string("tcp: epoll_ctl MOD: ") + std::strerror(errno));
}

void IoLoop::Remove(uint64_t id) {
  if (threads_.empty()) return;
  Thread* t = ThreadOf(id);
  // The fd is closed by the handler's owner only after the handler is dropped, so it is
  // still the registered one here.
  PostTo(t, [t, id] { t->handlers.erase(id); });
}

void IoLoop::Post(uint64_t id, std::function<void()> fn) {
  if (threads_.empty()) return;
  PostTo(ThreadOf(id), std::move(fn));
}

void IoLoop::RemoveAll(uint64_t owner) {
  {
    MutexLock lock(&owners_mu_);
    if (owners_.erase(owner) == 0) return;  // ended already
  }
  if (!running_) return;  // Stop dropped every handler
  // A barrier: each thread drops the owner's handlers in a task, which runs between
  // handlers (never during an event or tick of one) and after the tasks posted before.
  // A task dropped unrun (the loop stopping) breaks its promise, which ends the wait too.
  std::vector<std::future<void>> dropped;
  for (auto& t : threads_) {
    Thread* raw = t.get();
    if (raw == current_loop_thread) {
      DropOwner(raw, owner);  // here, now: this thread cannot run a task while it waits
      continue;
    }
    auto done = std::make_shared<std::promise<void>>();
    dropped.push_back(done->get_future());
    PostTo(raw, [raw, owner, done] {
      DropOwner(raw, owner);
      done->set_value();
    });
  }
  for (auto& f : dropped) f.wait();
}

void IoLoop::DropOwner(Thread* t, uint64_t owner) {
  // Destroyed last, outside the lock: their destructors may post here.
  std::vector<std::shared_ptr<IoHandler>> dropped;
  {
    // Adds still queued: only when called on t itself, from within a handler; a
    // barrier task runs after every Add queued before it.
    MutexLock lock(&t->mu);
    for (auto it = t->adds.begin(); it != t->adds.end();) {
      if (it->owner != owner) {
        ++it;
        continue;
      }
      dropped.push_back(std::move(it->handler));
      it = t->adds.erase(it);
    }
  }
  for (auto it = t->handlers.begin(); it != t->handlers.end();) {
    if (it->second.owner != owner) {
      ++it;
      continue;
    }
    dropped.push_back(std::move(it->second.handler));
    it = t->handlers.erase(it);
  }
}

void IoLoop::PostTo(Thread* t, std::function<void()> fn) {
  bool first;
  {
    MutexLock lock(&t->mu);
    if (t->stopping) return;
    first = t->adds.empty() && t->tasks.empty();
    t->tasks.push_back(std::move(fn));
  }
  if (first) Wake(t);
}

void IoLoop::Wake(Thread* t) {
  const uint64_t one = 1;
  (void)!::write(t->wake.get(), &one, sizeof(one));
}

bool IoLoop::RunTasks(Thread* t) {
  std::vector<Registration> adds;
  std::vector<std::function<void()>> tasks;
  {
    MutexLock lock(&t->mu);
    if (t->stopping) return false;
    adds.swap(t->adds);
    tasks.swap(t->tasks);
  }
  Register(t, &adds);  // first: a task after an Add (a Remove) finds it registered
  for (auto& task : tasks) task();
  return true;
}

void IoLoop::Register(Thread* t, std::vector<Registration>* adds) {
  // Registered on the thread itself, so that its map has the handler before any event.
  std::vector<uint64_t> failed;
  for (Registration& r : *adds) {
    epoll_event ev{};
    ev.events = r.events;
    ev.data.u64 = r.id;
    if (::epoll_ctl(t->epoll.get(), EPOLL_CTL_ADD, r.fd, &ev) != 0) {
      TE_LOG(Error) << "tcp: epoll_ctl ADD: " << std::strerror(errno);
      failed.push_back(r.id);
    }
    t->handlers.emplace(r.id, Entry{r.owner, std::move(r.handler)});
  }
  adds->clear();
  // Told once every Add is in, as a handler may end its owner (RemoveAll) there; then
  // dropped, as nothing watches its fd.
  for (uint64_t id : failed) {
    Dispatch(t, id, EPOLLERR);  // the handler fails its socket
    t->handlers.erase(id);
  }
}

void IoLoop::Dispatch(Thread* t, uint64_t id, uint32_t events) {
  auto it = t->handlers.find(id);
  if (it == t->handlers.end()) return;                      // removed after the event was queued
  std::shared_ptr<IoHandler> handler = it->second.handler;  // may remove itself
  handler->OnEvents(events);
}

void IoLoop::Tick(Thread* t, Clock::time_point now) {
  // By id, each looked up in its turn: a tick may end its owner (RemoveAll), whose
  // other handlers must not tick after that.
  std::vector<uint64_t> ids;
  ids.reserve(t->handlers.size());
  for (const auto& [id, entry] : t->handlers) ids.push_back(id);
  for (uint64_t id : ids) {
    auto it = t->handlers.find(id);
    if (it == t->handlers.end()) continue;
    std::shared_ptr<IoHandler> handler = it->second.handler;  // may remove itself
    handler->OnTick(now);
  }
}

int IoLoop::WaitForEvents(Thread* t, epoll_event* events, Clock::time_point next_tick,
                          Clock::time_point poll_until) {
  for (;;) {
    const auto now = Clock::now();
    if (now >= poll_until) {
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_tick - now);
      return ::epoll_wait(t->epoll.get(), events, kMaxEventsPerWait,
                          wait.count() > 0 ? static_cast<int>(wait.count()) : 0);
    }
    const int n = ::epoll_wait(t->epoll.get(), events, kMaxEventsPerWait, 0);
    if (n != 0) return n;
    // Yielding, not pausing: the thread that sends this loop's next message (a
    // submitter, a peer's engine on this host) may need this very CPU.
    sched_yield();
  }
}

void IoLoop::Run(std::shared_ptr<Thread> owned, IoLoopSettings settings) {
  Thread* t = owned.get();
  current_loop_thread = t;
  epoll_event events[kMaxEventsPerWait];
  auto next_tick = Clock::now() + settings.tick;
  auto poll_until = Clock::time_point::min();
  for (;;) {
    const int n = WaitForEvents(t, events, next_tick, poll_until);
    if (n > 0 && settings.busy_poll.count() > 0) poll_until = Clock::now() + settings.busy_poll;
    if (n < 0 && errno != EINTR) {
      TE_LOG(Error) << "tcp: epoll_wait: " << std::strerror(errno);
      return;
    }
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kWakeId) {
        uint64_t count;
        (void)!::read(t->wake.get(), &count, sizeof(count));
        woken = true;
        continue;
      }
      Dispatch(t, events[i].data.u64, events[i].events);
    }
    if (woken && !RunTasks(t)) return;
    const auto now = Clock::now();
    if (now >= next_tick) {
      Tick(t, now);
      next_tick = now + settings.tick;
    }
  }
}

}  // namespace te
