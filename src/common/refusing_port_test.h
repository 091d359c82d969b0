// Test helper: a loopback port that refuses connections for as long as a RefusingPort
// lives. A socket bound to it that never listens keeps parallel tests from taking
// the port (as they could take a port that was free a moment ago, or that of an
// engine just destroyed), and every connection to it is refused at once.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>

#include "common/socket.h"

namespace te {

class RefusingPort {
 public:
  RefusingPort() {
    fd_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_.get() >= 0 &&
        ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  // 0 when no port could be bound (the test then fails on connecting to port 0).
  uint16_t port() const { return port_; }

 private:
  UniqueFd fd_;
  uint16_t port_ = 0;
};

}  // namespace te
