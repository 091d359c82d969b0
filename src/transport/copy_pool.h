// A small pool of threads for copies too large to run inline in the submitting thread
// (same-host transports). Jobs run in FIFO order.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace te {

class CopyPool {
 public:
  explicit CopyPool(unsigned threads);
  ~CopyPool();  // runs what is queued, then joins
  CopyPool(const CopyPool&) = delete;
  CopyPool& operator=(const CopyPool&) = delete;

  void Post(std::function<void()> job);

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace te
