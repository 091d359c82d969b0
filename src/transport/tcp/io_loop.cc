#include "transport/tcp/io_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/logging.h"

namespace te {
namespace {
constexpr int kMaxEventsPerWait = 64;
// Registration ids' low bits pick the thread; the eventfd's own id is never issued.
constexpr uint64_t kWakeId = ~0ull;
}  // namespace

Status IoLoop::Start(uint32_t threads, std::chrono::milliseconds tick) {
  tick_ = tick;
  for (uint32_t i = 0; i < threads; ++i) {
    auto t = std::make_unique<Thread>();
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
    Thread* raw = t.get();
    raw->thread = std::thread([this, raw] { Run(raw); });
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
    const uint64_t one = 1;
    (void)!::write(t->wake.get(), &one, sizeof(one));
  }
  for (auto& t : threads_) t->thread.join();
  // Handlers, and tasks never run (an Add among them), may hold the last reference to
  // objects whose destructors post here: those posts find the loop stopped.
  for (auto& t : threads_) {
    std::vector<std::function<void()>> never_run;
    {
      MutexLock lock(&t->mu);
      never_run.swap(t->tasks);
    }
    never_run.clear();
    t->handlers.clear();
  }
}

Status IoLoop::Add(uint64_t id, int fd, std::shared_ptr<IoHandler> handler) {
  if (!running_) return Status::Cancelled("tcp: transport stopped");
  Thread* t = ThreadOf(id);
  const uint64_t key = id;
  // Registered on the thread itself, so that its map has the handler before any event.
  PostTo(t, [t, fd, key, handler = std::move(handler)]() mutable {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = key;
    if (::epoll_ctl(t->epoll.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      TE_LOG(Error) << "tcp: epoll_ctl ADD: " << std::strerror(errno);
      handler->OnEvents(EPOLLERR);  // the handler fails its socket
      return;
    }
    t->handlers.emplace(key, std::move(handler));
  });
  return Status::OK();
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

void IoLoop::PostTo(Thread* t, std::function<void()> fn) {
  bool first;
  {
    MutexLock lock(&t->mu);
    if (t->stopping) return;
    first = t->tasks.empty();
    t->tasks.push_back(std::move(fn));
  }
  if (first) {
    const uint64_t one = 1;
    (void)!::write(t->wake.get(), &one, sizeof(one));
  }
}

bool IoLoop::RunTasks(Thread* t) {
  std::vector<std::function<void()>> tasks;
  {
    MutexLock lock(&t->mu);
    if (t->stopping) return false;
    tasks.swap(t->tasks);
  }
  for (auto& task : tasks) task();
  return true;
}

void IoLoop::Run(Thread* t) {
  using Clock = std::chrono::steady_clock;
  epoll_event events[kMaxEventsPerWait];
  auto next_tick = Clock::now() + tick_;
  for (;;) {
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_tick - Clock::now());
    const int n = ::epoll_wait(t->epoll.get(), events, kMaxEventsPerWait,
                               wait.count() > 0 ? static_cast<int>(wait.count()) : 0);
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
      auto it = t->handlers.find(events[i].data.u64);
      if (it == t->handlers.end()) continue;            // removed after the event was queued
      std::shared_ptr<IoHandler> handler = it->second;  // may remove itself
      handler->OnEvents(events[i].events);
    }
    if (woken && !RunTasks(t)) return;
    const auto now = Clock::now();
    if (now >= next_tick) {
      std::vector<std::shared_ptr<IoHandler>> all;
      all.reserve(t->handlers.size());
      for (auto& [id, handler] : t->handlers) all.push_back(handler);
      for (auto& handler : all) handler->OnTick(now);
      next_tick = now + tick_;
    }
  }
}

}  // namespace te
