#include "te/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace te {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_TRUE(Status::OK().ok());
  EXPECT_EQ(Status::OK().ToString(), "OK");
}

TEST(StatusTest, CodesAreStable) {
  // The numeric values travel on the wire; they must never change.
  EXPECT_EQ(static_cast<int>(Status::Code::kOk), 0);
  EXPECT_EQ(static_cast<int>(Status::Code::kInvalidArgument), 1);
  EXPECT_EQ(static_cast<int>(Status::Code::kNotFound), 2);
  EXPECT_EQ(static_cast<int>(Status::Code::kAlreadyExists), 3);
  EXPECT_EQ(static_cast<int>(Status::Code::kPermissionDenied), 4);
  EXPECT_EQ(static_cast<int>(Status::Code::kOutOfRange), 5);
  EXPECT_EQ(static_cast<int>(Status::Code::kUnavailable), 6);
  EXPECT_EQ(static_cast<int>(Status::Code::kTimeout), 7);
  EXPECT_EQ(static_cast<int>(Status::Code::kNotSupported), 8);
  EXPECT_EQ(static_cast<int>(Status::Code::kResourceExhausted), 9);
  EXPECT_EQ(static_cast<int>(Status::Code::kFailedPrecondition), 10);
  EXPECT_EQ(static_cast<int>(Status::Code::kIoError), 11);
  EXPECT_EQ(static_cast<int>(Status::Code::kProtocolError), 12);
  EXPECT_EQ(static_cast<int>(Status::Code::kCancelled), 13);
  EXPECT_EQ(static_cast<int>(Status::Code::kInternal), 14);
}

TEST(StatusTest, FactoriesSetCodeAndMessage) {
  struct Case {
    Status status;
    Status::Code code;
    const char* name;
  };
  const Case cases[] = {
      {Status::InvalidArgument("m"), Status::Code::kInvalidArgument, "InvalidArgument"},
      {Status::NotFound("m"), Status::Code::kNotFound, "NotFound"},
      {Status::AlreadyExists("m"), Status::Code::kAlreadyExists, "AlreadyExists"},
      {Status::PermissionDenied("m"), Status::Code::kPermissionDenied, "PermissionDenied"},
      {Status::OutOfRange("m"), Status::Code::kOutOfRange, "OutOfRange"},
      {Status::Unavailable("m"), Status::Code::kUnavailable, "Unavailable"},
      {Status::Timeout("m"), Status::Code::kTimeout, "Timeout"},
      {Status::NotSupported("m"), Status::Code::kNotSupported, "NotSupported"},
      {Status::ResourceExhausted("m"), Status::Code::kResourceExhausted, "ResourceExhausted"},
      {Status::FailedPrecondition("m"), Status::Code::kFailedPrecondition, "FailedPrecondition"},
      {Status::IoError("m"), Status::Code::kIoError, "IoError"},
      {Status::ProtocolError("m"), Status::Code::kProtocolError, "ProtocolError"},
      {Status::Cancelled("m"), Status::Code::kCancelled, "Cancelled"},
      {Status::Internal("m"), Status::Code::kInternal, "Internal"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_FALSE(c.status.ok());
    EXPECT_EQ(c.status.code(), c.code);
    EXPECT_EQ(c.status.message(), "m");
    EXPECT_STREQ(Status::CodeName(c.code), c.name);
    EXPECT_EQ(c.status.ToString(), std::string(c.name) + ": m");
  }
}

TEST(StatusTest, CodeNames) {
  EXPECT_STREQ(Status::CodeName(Status::Code::kOk), "OK");
  EXPECT_STREQ(Status::CodeName(static_cast<Status::Code>(999)), "Unknown");
}

TEST(StatusTest, ToStringWithEmptyMessage) {
  EXPECT_EQ(Status::NotFound("").ToString(), "NotFound: ");
  EXPECT_EQ(Status(Status::Code::kTimeout, "late").ToString(), "Timeout: late");
}

TEST(StatusTest, FromErrno) {
  Status s = Status::FromErrno("open /x", ENOENT);
  EXPECT_EQ(s.code(), Status::Code::kIoError);
  EXPECT_EQ(s.message(), std::string("open /x: ") + std::strerror(ENOENT));
  EXPECT_EQ(s.ToString(), std::string("IoError: open /x: ") + std::strerror(ENOENT));

  Status t = Status::FromErrno("", EACCES);
  EXPECT_EQ(t.code(), Status::Code::kIoError);
  EXPECT_EQ(t.message(), std::string(": ") + std::strerror(EACCES));
}

TEST(StatusTest, CopyAndAssign) {
  Status a = Status::NotFound("x");
  Status b = a;
  EXPECT_EQ(b.code(), Status::Code::kNotFound);
  EXPECT_EQ(b.message(), "x");
  b = Status::OK();
  EXPECT_TRUE(b.ok());
  EXPECT_EQ(b.message(), "");
  EXPECT_EQ(a.message(), "x");
}

int g_calls = 0;

Status Counted(Status s) {
  ++g_calls;
  return s;
}

Status ReturnsEarly(const Status& first, bool* reached_end) {
  *reached_end = false;
  TE_RETURN_IF_ERROR(Counted(first));
  *reached_end = true;
  return Status::Internal("end");
}

TEST(StatusTest, ReturnIfErrorPropagatesError) {
  g_calls = 0;
  bool reached_end = true;
  Status s = ReturnsEarly(Status::Timeout("t"), &reached_end);
  EXPECT_EQ(g_calls, 1);  // the expression is evaluated exactly once
  EXPECT_FALSE(reached_end);
  EXPECT_EQ(s.code(), Status::Code::kTimeout);
  EXPECT_EQ(s.message(), "t");
}

TEST(StatusTest, ReturnIfErrorContinuesOnOk) {
  g_calls = 0;
  bool reached_end = false;
  Status s = ReturnsEarly(Status::OK(), &reached_end);
  EXPECT_EQ(g_calls, 1);
  EXPECT_TRUE(reached_end);
  EXPECT_EQ(s.code(), Status::Code::kInternal);
}

Status UnbracedIf(bool fail) {
  // The macro must behave as one statement inside an unbraced if/else.
  if (fail)
    TE_RETURN_IF_ERROR(Status::Cancelled("c"));
  else
    return Status::NotFound("else branch");
  return Status::OK();
}

TEST(StatusTest, ReturnIfErrorIsOneStatement) {
  EXPECT_EQ(UnbracedIf(true).code(), Status::Code::kCancelled);
  EXPECT_EQ(UnbracedIf(false).code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace te
