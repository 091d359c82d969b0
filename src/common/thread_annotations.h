// Lock rules the compiler checks: clang's -Wthread-safety reads these attributes
// (GUARDED_BY on shared state, REQUIRES on functions that expect a lock held) and
// rejects code that touches guarded state without the lock. Other compilers ignore
// them. libstdc++'s std::mutex carries no such attributes, so annotated code locks a
// te::Mutex (below). The CI's "tsa" build compiles with -Wthread-safety -Werror.
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define TE_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define TE_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) TE_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY TE_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) TE_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) TE_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) TE_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) TE_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) TE_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) TE_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS TE_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace te {

class CAPABILITY("mutex") Mutex {
 public:
  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable waited on with a te::Mutex held.
class CondVar {
 public:
  // Waits for a notification (or a spurious wake-up); mu is held again on return.
  void Wait(Mutex* mu) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace te
