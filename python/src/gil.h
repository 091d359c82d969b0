// The GIL around engine calls. Python ends a thread that takes the GIL while another
// thread finalizes the interpreter by unwinding it (pthread_exit), which C++ frames
// cannot survive (std::terminate). A daemon thread still waiting on a transfer when
// the program exits would do that, so such a thread parks instead of taking the GIL:
// the process is about to exit. Hence these classes rather than pybind11's.
#pragma once

#include <pybind11/pybind11.h>

namespace te::python {

// Call once, at import: notes the main thread, the one that finalizes.
void InitGil();

// Releases the GIL for its lifetime. The calling thread must hold it.
class GilRelease {
 public:
  GilRelease();
  ~GilRelease();
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
