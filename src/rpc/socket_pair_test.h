// Test fixture: a connected pair of stream sockets standing in for a TCP connection,
// for tests of the wire format and the handshake.
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "common/socket.h"

namespace te {

class SocketPairTest : public testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    client_.Reset(fds[0]);
    server_.Reset(fds[1]);
    // Bounds every blocking call, so a broken peer fails the test instead of hanging it.
    ASSERT_TRUE(SetIoTimeout(client_.get(), 5000).ok());
    ASSERT_TRUE(SetIoTimeout(server_.get(), 5000).ok());
  }

  UniqueFd client_;
  UniqueFd server_;
};

}  // namespace te
