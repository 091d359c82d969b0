// The GIL around engine calls. Python ends a thread that takes the GIL while another
// thread finalizes the interpreter by unwinding it (pthread_exit): a daemon thread
// still in a transfer when the program exits. pybind11's guards have noexcept
// destructors, where that unwinding ends in std::terminate. These guards park such a
// thread when the interpreter is already finalizing (the process is about to exit),
// and let the unwinding through when finalization begins while the thread waits for
// the GIL.
#pragma once

#include <pybind11/pybind11.h>

namespace te::python {

// Call once, at import: notes the main thread, the one that finalizes.
void InitGil();

// Releases the GIL for its lifetime. The calling thread must hold it.
class GilRelease {
 public:
  GilRelease();
  // Taking the GIL back may unwind the thread (abi::__forced_unwind), which must pass.
  ~GilRelease() noexcept(false);
  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;

 private:
  PyThreadState* state_;
};

// Holds the GIL for its lifetime, whether or not the thread had it.
class GilAcquire {
 public:
  GilAcquire();
  ~GilAcquire();
  GilAcquire(const GilAcquire&) = delete;
  GilAcquire& operator=(const GilAcquire&) = delete;

 private:
  PyGILState_STATE state_;
};

// Runs f() without the GIL when the calling thread holds it (Python calls,
// destructors run by Python), and as is otherwise (an engine reference dropped by
// a thread that already released the GIL).
template <typename F>
void WithoutGil(F&& f) {
  if (PyGILState_Check()) {
    GilRelease release;
    f();
  } else {
    f();
  }
}

}  // namespace te::python
