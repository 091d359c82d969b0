// HandshakePool: a few threads that open TCP data connections: the initiator's
// connect and HELLO, and the target's HELLO on accepted sockets. Those exchanges block
// (rpc/handshake.h), each bounded by the connect timeout, so they are kept off the I/O
// threads: a slow or silent peer delays other handshakes, never the data path. The
// thread count is fixed, and so is the number of handshakes waiting for a thread.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "common/thread_annotations.h"

namespace te {

class HandshakePool {
 public:
  HandshakePool() = default;
  ~HandshakePool() { Stop(); }
  HandshakePool(const HandshakePool&) = delete;
  HandshakePool& operator=(const HandshakePool&) = delete;

  void Start(size_t threads, size_t max_waiting);
  // Runs the jobs already started, drops the waiting ones and joins the threads.
  void Stop();
  // False, leaving job unrun, when stopped or max_waiting jobs already wait.
  bool TryRun(std::function<void()> job);

 private:
  void Work();

  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> jobs_ GUARDED_BY(mu_);
  size_t max_waiting_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace te
