#include "common/socket.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cerrno>
#include <vector>

namespace te {
namespace {

// What the sender still queues is dropped, not delivered behind a FIN once the peer
// reads again (a partition's end, for a WRITE that already failed), and the reader
// learns of it as a reset, not as an orderly end.
TEST(SocketTest, AnAbortedConnectionDeliversNothingItStillQueued) {
  static constexpr int kSmall = 64 << 10;
  UniqueFd listener;
  uint16_t port = 0;
  ASSERT_TRUE(Listen("127.0.0.1", 0, &listener, &port, [](int fd) {
                ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kSmall, sizeof(kSmall));
              }).ok());
  UniqueFd sender, receiver;
  ASSERT_TRUE(Connect("127.0.0.1", port, 3000, &sender, SetBulkBuffers).ok());
  ASSERT_TRUE(Accept(listener.get(), &receiver).ok());
  // Far more than the receiver's window: most of it waits in the sender's queue.
  std::vector<char> data(8 << 20, 'q');
  size_t sent = 0;
  for (ssize_t n;
       (n = ::send(sender.get(), data.data() + sent, data.size() - sent, MSG_DONTWAIT)) > 0;) {
    sent += static_cast<size_t>(n);
  }
  ASSERT_GT(sent, 4u * kSmall);
  AbortConnection(sender.get());
  ASSERT_TRUE(SetIoTimeout(receiver.get(), 5000).ok());
  size_t received = 0;
  ssize_t n;
  while ((n = ::recv(receiver.get(), data.data(), data.size(), 0)) > 0) {
    received += static_cast<size_t>(n);
  }
  EXPECT_EQ(n, -1) << "an orderly end of stream, after " << received << " bytes";
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_LT(received, sent) << "the sender's queue was delivered";
}

}  // namespace
}  // namespace te
