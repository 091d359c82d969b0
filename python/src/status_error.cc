#include "status_error.h"

namespace te::python {
namespace py = pybind11;
namespace {

constexpr auto kFirstCode = Status::Code::kOk;
constexpr auto kLastCode = Status::Code::kInternal;

template <typename F>
void ForEachCode(F f) {
  for (auto c = static_cast<uint16_t>(kFirstCode); c <= static_cast<uint16_t>(kLastCode); ++c) {
    f(static_cast<Status::Code>(c));
  }
}

// Raises transfer_engine.errors.TransferError(code_name, message). The class is
// Python (errors.py) so that users get a documented, picklable exception; it is
// looked up on first use because this module is imported by that package.
void RaiseTransferError(const Status& status) {
  // Leaked on purpose: a static py::object would be released after the
  // interpreter is gone.
  static PyObject* error_class =
      py::object(py::module_::import("transfer_engine.errors").attr("TransferError"))
          .release()
          .ptr();
  py::object error = py::reinterpret_borrow<py::object>(error_class)(
      Status::CodeName(status.code()), status.message());
  PyErr_SetObject(error_class, error.ptr());
}

}  // namespace

Status StatusFromTaskError(const std::string& error) {
  Status parsed(Status::Code::kInternal, error);
  ForEachCode([&](Status::Code code) {
    const std::string prefix = std::string(Status::CodeName(code)) + ": ";
    if (code != Status::Code::kOk && error.rfind(prefix, 0) == 0) {
      parsed = Status(code, error.substr(prefix.size()));
    }
  });
  return parsed;
}

py::dict StatusCodes() {
  py::dict codes;
  ForEachCode(
      [&](Status::Code code) { codes[py::str(Status::CodeName(code))] = static_cast<int>(code); });
  return codes;
}

void RegisterStatusError() {
  py::register_exception_translator([](std::exception_ptr pending) {
    try {
      if (pending) std::rethrow_exception(pending);
    } catch (const StatusError& e) {
      RaiseTransferError(e.status());
    }
  });
}

}  // namespace te::python
