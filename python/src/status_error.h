// Engine failures on their way to Python: C++ code throws StatusError, and the
// translator registered by RegisterStatusError turns it into
// transfer_engine.TransferError carrying the status code's name and the message.
#pragma once

#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "te/status.h"

namespace te::python {

class StatusError : public std::runtime_error {
 public:
  explicit StatusError(Status status)
      : std::runtime_error(status.ToString()), status_(std::move(status)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

inline void ThrowIfError(const Status& status) {
  if (!status.ok()) throw StatusError(status);
}

// A failed task reports its error as "<CodeName>: <message>" (te::TransferStatus);
// this recovers the Status. Text without a known code name is kInternal.
Status StatusFromTaskError(const std::string& error);

// Every code with its name, for Python (transfer_engine.STATUS_CODES).
pybind11::dict StatusCodes();

void RegisterStatusError();

}  // namespace te::python
