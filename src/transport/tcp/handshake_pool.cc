#include "transport/tcp/handshake_pool.h"

namespace te {

void HandshakePool::Start(size_t threads, size_t max_waiting) {
  {
    MutexLock lock(&mu_);
    max_waiting_ = max_waiting;
    stopping_ = false;  // a pool stopped before starts anew
  }
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

void HandshakePool::Stop() {
  std::deque<std::function<void()>> dropped;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    dropped.swap(jobs_);
  }
  cv_.NotifyAll();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

bool HandshakePool::TryRun(std::function<void()> job) {
  {
    MutexLock lock(&mu_);
    if (stopping_ || jobs_.size() >= max_waiting_) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.NotifyOne();
  return true;
}

void HandshakePool::Work() {
  for (;;) {
    std::function<void()> job;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && jobs_.empty()) cv_.Wait(&mu_);
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

}  // namespace te
