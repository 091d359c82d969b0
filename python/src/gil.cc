#include "gil.h"

#include <chrono>
#include <thread>

namespace te::python {
namespace {

unsigned long main_thread = 0;

bool InterpreterFinalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

// A thread that finalization would unwind waits here until the process exits.
void ParkIfExiting() {
  if (!InterpreterFinalizing() || PyThread_get_thread_ident() == main_thread) return;
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

}  // namespace

void InitGil() {
  main_thread = pybind11::module_::import("threading")
                    .attr("main_thread")()
                    .attr("ident")
                    .cast<unsigned long>();
}

GilRelease::GilRelease() : state_(PyEval_SaveThread()) {}

GilRelease::~GilRelease() noexcept(false) {
  ParkIfExiting();
  PyEval_RestoreThread(state_);
}

GilAcquire::GilAcquire() {
  ParkIfExiting();
  state_ = PyGILState_Ensure();
}

GilAcquire::~GilAcquire() { PyGILState_Release(state_); }

}  // namespace te::python
