// How the TCP transport tunes its data sockets (common/socket.h's TuneDataSocket and
// SetMinRtoOnceRetransmitted), seen on the sockets of real connections.
#include <dirent.h>
#include <gtest/gtest.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/socket.h"
#include "transport/tcp/tcp_test_endpoints.h"

namespace te {
namespace {
using tcp_test::Endpoint;
using tcp_test::Read;
using tcp_test::Target;

// An initiator and a target, both configured by `tune`, after one READ between them;
// `check` runs while their connection is open.
void AfterOneRead(const std::function<void(Config*)>& tune, const std::function<void()>& check) {
  Endpoint initiator("initiator");
  tune(&initiator.config);
  ASSERT_TRUE(initiator.Start().ok());
  Target target("target");
  tune(&target.config);
  ASSERT_TRUE(target.Start().ok());
  std::shared_ptr<TransportPeer> peer;
  ASSERT_TRUE(initiator.transport.GetPeer(target.descriptor, &peer).ok());
  std::vector<char> local(target.memory.size());
  ASSERT_TRUE(Read(*peer, target.info.base, &local).ok());
  check();
}

// This process's established TCP sockets.
std::vector<int> EstablishedTcpSockets() {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return fds;
  while (dirent* entry = ::readdir(dir)) {
    const int fd = std::atoi(entry->d_name);
    tcp_info info{};
    socklen_t len = sizeof(info);
    if (fd > 2 && ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
        info.tcpi_state == 1 /* TCP_ESTABLISHED */) {
      fds.push_back(fd);
    }
  }
  ::closedir(dir);
  return fds;
}

// The congestion control of every established TCP socket of this process.
std::vector<std::string> EstablishedCongestionControls() {
  std::vector<std::string> names;
  for (int fd : EstablishedTcpSockets()) {
    char name[16] = {};
    socklen_t len = sizeof(name);
    if (::getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len) == 0) names.push_back(name);
  }
  return names;
}

TEST(TcpCongestionTest, SystemMeansTheKernelsDefaultAndANameItself) {
  std::string name = "x";
  ASSERT_TRUE(ResolveCongestionControl("system", &name).ok());
  EXPECT_EQ(name, "");
  ASSERT_TRUE(ResolveCongestionControl("reno", &name).ok());  // built into every kernel
  EXPECT_EQ(name, "reno");
  Status s = ResolveCongestionControl("no_such_cc", &name);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("no_such_cc"), std::string::npos) << s.message();
}

TEST(TcpCongestionTest, AutoReplacesOnlyBbr) {
  const std::string system = KernelCongestionControl();
  ASSERT_FALSE(system.empty());
  std::string name;
  ASSERT_TRUE(ResolveCongestionControl("auto", &name).ok());
  if (system == "bbr") {
    std::string cubic;
    if (ResolveCongestionControl("cubic", &cubic).ok()) {
      EXPECT_EQ(name, "cubic");
    }
  } else {
    EXPECT_EQ(name, "") << "auto changed the kernel's " << system;
  }
}

// Both ends' data connections use the configured congestion control (one that is not
// the kernel's default, so that the test sees it applied).
TEST(TcpCongestionTest, DataConnectionsUseTheConfiguredOne) {
  const std::string system = KernelCongestionControl();
  ASSERT_FALSE(system.empty());
  const std::string chosen = system == "reno" ? "cubic" : "reno";
  AfterOneRead([&](Config* config) { config->tcp_congestion = chosen; },
               [&] {
                 const std::vector<std::string> names = EstablishedCongestionControls();
                 ASSERT_GE(names.size(), 2u) << "no connection, or not both of its ends";
                 for (const std::string& name : names) EXPECT_EQ(name, chosen);
               });
}

// A data socket's tuning goes on before its handshake: the kernel sets a connection up
// with the congestion control in force then, and bbr's pacing outlives a later switch.
// The listener's setup runs before listen(), the initiator's before connect().
TEST(TcpCongestionTest, SocketsAreTunedBeforeTheirHandshake) {
  int listening_when_set = -1;
  UniqueFd listener;
  uint16_t port = 0;
  ASSERT_TRUE(Listen("127.0.0.1", 0, &listener, &port, [&](int fd) {
                int accepting = -1;
                socklen_t len = sizeof(accepting);
                ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len);
                listening_when_set = accepting;
                SetCongestionControl(fd, "reno");
              }).ok());
  EXPECT_EQ(listening_when_set, 0);
  int peer_errno_when_set = 0;
  UniqueFd client;
  ASSERT_TRUE(Connect("127.0.0.1", port, 3000, &client, [&](int fd) {
                sockaddr_storage peer{};
                socklen_t len = sizeof(peer);
                if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) {
                  peer_errno_when_set = errno;
                }
                SetCongestionControl(fd, "reno");
              }).ok());
  EXPECT_EQ(peer_errno_when_set, ENOTCONN);
  UniqueFd accepted;
  ASSERT_TRUE(Accept(listener.get(), &accepted).ok());
  for (int fd : {client.get(), accepted.get()}) {  // the accepted one as its listener
    char name[16] = {};
    socklen_t len = sizeof(name);
    ASSERT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len), 0);
    EXPECT_STREQ(name, "reno");
  }
}

TEST(TcpCongestionTest, AnUnknownOneFailsTheStartWithItsName) {
  Endpoint endpoint("endpoint");
  endpoint.config.tcp_congestion = "no_such_cc";
  Status s = endpoint.Start();
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("no_such_cc"), std::string::npos) << s.message();
}

// Data connections that lose nothing keep the kernel's minimum retransmission timeout
// (200 ms), and with it its delayed ACKs, however many ticks pass: tcp_rto_min_us
// (TCP_RTO_MIN_US, Linux >= 6.15) goes only on a connection that has retransmitted
// (tests/netns_transfer_test.cc, under loss).
TEST(TcpRtoMinTest, ConnectionsThatLoseNothingKeepTheKernelsMinimum) {
  constexpr int kTcpRtoMinUs = 45;
  {
    UniqueFd probe(::socket(AF_INET, SOCK_STREAM, 0));
    int value = 0;
    socklen_t len = sizeof(value);
    if (::getsockopt(probe.get(), IPPROTO_TCP, kTcpRtoMinUs, &value, &len) != 0) {
      GTEST_SKIP() << "this kernel has no per-socket minimum RTO (Linux >= 6.15)";
    }
  }
  AfterOneRead([](Config* config) { config->tcp_rto_min_us = 40000; },
               [] {
                 std::this_thread::sleep_for(std::chrono::milliseconds(300));  // ticks
                 const std::vector<int> sockets = EstablishedTcpSockets();
                 ASSERT_GE(sockets.size(), 2u) << "no connection, or not both of its ends";
                 for (int fd : sockets) {
                   tcp_info info{};
                   socklen_t info_len = sizeof(info);
                   ASSERT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &info_len), 0);
                   if (info.tcpi_total_retrans > 0) continue;  // loopback lost one: may be set
                   int value = 0;
                   socklen_t len = sizeof(value);
                   ASSERT_EQ(::getsockopt(fd, IPPROTO_TCP, kTcpRtoMinUs, &value, &len), 0);
                   EXPECT_EQ(value, 200000) << "fd " << fd;
                 }
               });
}

}  // namespace
}  // namespace te
