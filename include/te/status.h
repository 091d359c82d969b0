// Status: the result of every public call. A default-constructed Status is OK.
// Errors carry a code (stable, for programs) and a one-line message (for people).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace te {

class Status {
 public:
  enum class Code : uint16_t {
    kOk = 0,
    kInvalidArgument = 1,    // the caller passed a bad value
    kNotFound = 2,           // unknown segment, buffer, batch or key
    kAlreadyExists = 3,      // name or region already taken
    kPermissionDenied = 4,   // access outside granted permissions or failed authentication
    kOutOfRange = 5,         // address range not inside a registered buffer
    kUnavailable = 6,        // peer or server unreachable
    kTimeout = 7,            // deadline passed
    kNotSupported = 8,       // feature not built or not possible on this machine
    kResourceExhausted = 9,  // out of memory, slots or descriptors
    kFailedPrecondition = 10,
    kIoError = 11,        // a system call failed
    kProtocolError = 12,  // a peer sent malformed data
    kCancelled = 13,
    kInternal = 14,
  };

  Status() = default;
  Status(Code code, std::string_view message) : code_(code), message_(message) {}

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string_view m) { return {Code::kInvalidArgument, m}; }
  static Status NotFound(std::string_view m) { return {Code::kNotFound, m}; }
  static Status AlreadyExists(std::string_view m) { return {Code::kAlreadyExists, m}; }
  static Status PermissionDenied(std::string_view m) { return {Code::kPermissionDenied, m}; }
  static Status OutOfRange(std::string_view m) { return {Code::kOutOfRange, m}; }
  static Status Unavailable(std::string_view m) { return {Code::kUnavailable, m}; }
  static Status Timeout(std::string_view m) { return {Code::kTimeout, m}; }
  static Status NotSupported(std::string_view m) { return {Code::kNotSupported, m}; }
  static Status ResourceExhausted(std::string_view m) { return {Code::kResourceExhausted, m}; }
  static Status FailedPrecondition(std::string_view m) { return {Code::kFailedPrecondition, m}; }
  static Status IoError(std::string_view m) { return {Code::kIoError, m}; }
  // An IoError whose message ends with strerror(err).
  static Status FromErrno(std::string_view what, int err);
  static Status ProtocolError(std::string_view m) { return {Code::kProtocolError, m}; }
  static Status Cancelled(std::string_view m) { return {Code::kCancelled, m}; }
  static Status Internal(std::string_view m) { return {Code::kInternal, m}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "OK" or "<CodeName>: <message>".
  std::string ToString() const;
  static const char* CodeName(Code code);

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace te

// Returns from the enclosing function when `expr` yields a non-OK Status.
#define TE_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::te::Status te_status_ = (expr);        \
    if (!te_status_.ok()) return te_status_; \
  } while (0)
