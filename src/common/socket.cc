#include "common/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <fstream>

#include "common/logging.h"
#include "common/tsan_annotations.h"

namespace te {
namespace {

Status Resolve(const std::string& host, uint16_t port, bool passive, addrinfo** result) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, result);
  if (rc != 0) {
    return Status::InvalidArgument("cannot resolve '" + host + "': " + gai_strerror(rc));
  }
  return Status::OK();
}

Status IoStatus(const char* what, int err) {
  if (err == EAGAIN || err == EWOULDBLOCK) return Status::Timeout(std::string(what) + " timed out");
  if (err == EPIPE || err == ECONNRESET || err == ENOTCONN || err == ESHUTDOWN) {
    return Status::Unavailable(std::string(what) + ": connection lost (" + std::strerror(err) +
                               ")");
  }
  return Status::FromErrno(what, err);
}

}  // namespace

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Status Listen(const std::string& host, uint16_t port, UniqueFd* out, uint16_t* bound_port,
              const SocketSetup& setup) {
  addrinfo* ai = nullptr;
  TE_RETURN_IF_ERROR(Resolve(host, port, true, &ai));
  Status last = Status::Unavailable("no address to listen on for '" + host + "'");
  for (addrinfo* p = ai; p; p = p->ai_next) {
    UniqueFd fd(::socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol));
    if (!fd.valid()) {
      last = Status::FromErrno("socket", errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setup) setup(fd.get());
    if (::bind(fd.get(), p->ai_addr, p->ai_addrlen) != 0) {
      int err = errno;
      last = err == EADDRINUSE ? Status::AlreadyExists("port " + std::to_string(port) + " on '" +
                                                       host + "' is in use")
                               : Status::FromErrno("bind " + host, err);
      continue;
    }
    if (::listen(fd.get(), 512) != 0) {
      last = Status::FromErrno("listen", errno);
      continue;
    }
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    *bound_port =
        ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                         : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    *out = std::move(fd);
    freeaddrinfo(ai);
    return Status::OK();
  }
  freeaddrinfo(ai);
  return last;
}

Status Connect(const std::string& host, uint16_t port, uint32_t timeout_ms, UniqueFd* out,
               const SocketSetup& setup) {
  addrinfo* ai = nullptr;
  TE_RETURN_IF_ERROR(Resolve(host, port, false, &ai));
  std::string where = host + ":" + std::to_string(port);
  Status last = Status::Unavailable("cannot connect to " + where);
  for (addrinfo* p = ai; p; p = p->ai_next) {
    UniqueFd fd(
        ::socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, p->ai_protocol));
    if (!fd.valid()) {
      last = Status::FromErrno("socket", errno);
      continue;
    }
    if (setup) setup(fd.get());
    int rc = ::connect(fd.get(), p->ai_addr, p->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd pfd{fd.get(), POLLOUT, 0};
      rc = ::poll(&pfd, 1, static_cast<int>(timeout_ms));
      if (rc == 0) {
        last = Status::Timeout("connect to " + where + " timed out after " +
                               std::to_string(timeout_ms) + " ms");
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      last = Status::Unavailable("cannot connect to " + where + ": " + std::strerror(errno));
      continue;
    }
    int flags = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *out = std::move(fd);
    freeaddrinfo(ai);
    return Status::OK();
  }
  freeaddrinfo(ai);
  return last;
}

Status Accept(int listen_fd, UniqueFd* out) {
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      out->Reset(fd);
      return Status::OK();
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EINVAL || errno == EBADF) return Status::Cancelled("listener closed");
    if (errno == EMFILE || errno == ENFILE) {
      // Out of descriptors: back off instead of spinning on the pending connection.
      ::poll(nullptr, 0, 50);
      return Status::ResourceExhausted("accept: out of file descriptors");
    }
    return Status::FromErrno("accept", errno);
  }
}

std::string PeerAddress(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  char host[INET6_ADDRSTRLEN] = {};
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown peer";
  uint16_t port = 0;
  if (addr.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  } else {
    return "local peer";
  }
  return std::string(host) + ":" + std::to_string(port);
}

Status SetIoTimeout(int fd, uint32_t timeout_ms) {
  timeval tv{static_cast<time_t>(timeout_ms / 1000),
             static_cast<suseconds_t>((timeout_ms % 1000) * 1000)};
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
    return Status::FromErrno("setsockopt timeout", errno);
  }
  return Status::OK();
}

std::string KernelCongestionControl() {
  std::ifstream in("/proc/sys/net/ipv4/tcp_congestion_control");
  std::string name;
  in >> name;
  return name;
}

Status ResolveCongestionControl(const std::string& configured, std::string* name) {
  name->clear();
  if (configured == "system") return Status::OK();
  if (configured == "auto") {
    // bbr paces to a bandwidth and a minimum RTT measured on a quiet link; request and
    // response bursts between busy hosts then wait on it (docs/performance.md).
    if (KernelCongestionControl() == "bbr") *name = "cubic";
    if (name->empty()) return Status::OK();
  } else {
    *name = configured;
  }
  UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (probe.get() < 0) return Status::FromErrno("socket", errno);
  if (::setsockopt(probe.get(), IPPROTO_TCP, TCP_CONGESTION, name->data(), name->size()) != 0) {
    const int err = errno;
    if (configured == "auto") {  // cubic not here: the kernel's default it is
      name->clear();
      return Status::OK();
    }
    return Status::InvalidArgument("tcp_congestion '" + configured + "' cannot be used here: " +
                                   (err == ENOENT
                                        ? std::string("this kernel has no such congestion control")
                                        : std::string(std::strerror(err))) +
                                   " (see net.ipv4.tcp_allowed_congestion_control)");
  }
  return Status::OK();
}

void SetCongestionControl(int fd, const std::string& name) {
  if (!name.empty()) ::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(), name.size());
}

namespace {

// Linux >= 6.15 (uapi linux/tcp.h); Debian 12's headers predate it.
constexpr int kTcpRtoMinUs = 45;

// 0, or the errno of the refusal.
int SetMinRetransmitTimeout(int fd, uint32_t us) {
  if (us == 0) return 0;
  const int value = static_cast<int>(us);
  return ::setsockopt(fd, IPPROTO_TCP, kTcpRtoMinUs, &value, sizeof(value)) == 0 ? 0 : errno;
}

}  // namespace

Status ResolveDataSocketTuning(const std::string& congestion, uint32_t rto_min_us,
                               DataSocketTuning* out) {
  TE_RETURN_IF_ERROR(ResolveCongestionControl(congestion, &out->congestion));
  out->rto_min_us = 0;
  if (rto_min_us == 0) return Status::OK();
  UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (probe.get() < 0) return Status::FromErrno("socket", errno);
  const int refused = SetMinRetransmitTimeout(probe.get(), rto_min_us);
  if (refused == 0) {
    out->rto_min_us = rto_min_us;
  } else if (refused == ENOPROTOOPT) {
    TE_LOG(Info) << "tcp_rto_min_us: this kernel sets no minimum RTO per socket (Linux >= "
                    "6.15 does); its own applies (ip route ... rto_min sets one per route)";
  } else {
    TE_LOG(Warning) << "tcp_rto_min_us " << rto_min_us << " refused by the kernel ("
                    << std::strerror(refused) << "; it takes two timer ticks to 200 ms); its own "
                    << "minimum applies";
  }
  return Status::OK();
}

void TuneDataSocket(int fd, const DataSocketTuning& tuning) {
  SetBulkBuffers(fd);
  SetCongestionControl(fd, tuning.congestion);
}

bool SetMinRtoOnceRetransmitted(int fd, const DataSocketTuning& tuning) {
  if (tuning.rto_min_us == 0) return true;
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || info.tcpi_total_retrans == 0) {
    return false;
  }
  (void)SetMinRetransmitTimeout(fd, tuning.rto_min_us);  // resolved: the kernel takes it
  return true;
}

void AbortConnection(int fd) {
  sockaddr unspecified{};
  unspecified.sa_family = AF_UNSPEC;  // connect(AF_UNSPEC) disconnects a TCP socket
  // The system call itself, not libc's connect(): ThreadSanitizer's connect() takes it
  // for a new connection on the descriptor and reports the send it is meant to cut
  // short, on another thread, as a race.
  ::syscall(SYS_connect, fd, &unspecified, sizeof(unspecified));
  ::shutdown(fd, SHUT_RDWR);  // what is not TCP (a test's socket pair) is still shut
}

bool SetCork(int fd, bool on) {
  const int value = on ? 1 : 0;
  return ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, sizeof(value)) == 0;
}

void SetBulkBuffers(int fd) {
  int size = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

namespace {

// Drops the first n bytes from the front of *iov.
void Advance(struct iovec** iov, int* iovcnt, size_t n) {
  while (*iovcnt > 0 && n >= (*iov)->iov_len) {
    n -= (*iov)->iov_len;
    ++*iov;
    --*iovcnt;
  }
  if (*iovcnt > 0) {
    (*iov)->iov_base = static_cast<char*>((*iov)->iov_base) + n;
    (*iov)->iov_len -= n;
  }
}

ssize_t SendMsg(int fd, struct iovec* iov, int iovcnt, int flags) {
  TE_TSAN_RELEASE_SOCKET_HAND_OFF();
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(iovcnt < IOV_MAX ? iovcnt : IOV_MAX);
  return ::sendmsg(fd, &msg, flags | MSG_NOSIGNAL);
}

}  // namespace

Status SendAll(int fd, struct iovec* iov, int iovcnt) {
  while (iovcnt > 0) {
    ssize_t n = SendMsg(fd, iov, iovcnt, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoStatus("send", errno);
    }
    Advance(&iov, &iovcnt, static_cast<size_t>(n));
  }
  return Status::OK();
}

Status SendSome(int fd, struct iovec** iov, int* iovcnt) {
  while (*iovcnt > 0) {
    ssize_t n = SendMsg(fd, *iov, *iovcnt, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::OK();
      return IoStatus("send", errno);
    }
    Advance(iov, iovcnt, static_cast<size_t>(n));
  }
  return Status::OK();
}

Status SendAll(int fd, const void* data, size_t len) {
  iovec iov{const_cast<void*>(data), len};
  return SendAll(fd, &iov, 1);
}

namespace {

// RecvAll that also says how many bytes arrived before a failure.
Status RecvCounted(int fd, void* data, size_t len, size_t* received) {
  char* p = static_cast<char*>(data);
  *received = 0;
  while (*received < len) {
    ssize_t n = ::recv(fd, p + *received, len - *received, MSG_WAITALL);
    if (n > 0) {
      TE_TSAN_ACQUIRE_SOCKET_HAND_OFF();
      *received += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return Status::Unavailable("connection closed by peer");
    if (errno == EINTR) continue;
    return IoStatus("recv", errno);
  }
  return Status::OK();
}

}  // namespace

Status RecvSome(int fd, void* data, size_t len, size_t* received) {
  iovec iov{data, len};
  return RecvSome(fd, &iov, 1, received);
}

namespace {

Status RecvUpTo(int fd, struct iovec* iov, int iovcnt, int flags, size_t* received) {
  *received = 0;
  size_t len = 0;
  for (int i = 0; i < iovcnt; ++i) len += iov[i].iov_len;
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(iovcnt);
  for (;;) {
    ssize_t n = ::recvmsg(fd, &msg, flags);
    if (n > 0) {
      TE_TSAN_ACQUIRE_SOCKET_HAND_OFF();
      *received = static_cast<size_t>(n);
      return Status::OK();
    }
    if (n == 0) return len == 0 ? Status::OK() : Status::Unavailable("connection closed by peer");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::OK();
    return IoStatus("recv", errno);
  }
}

}  // namespace

Status RecvSome(int fd, struct iovec* iov, int iovcnt, size_t* received) {
  return RecvUpTo(fd, iov, iovcnt, MSG_DONTWAIT, received);
}

Status RecvWaiting(int fd, void* data, size_t len, size_t* received) {
  iovec iov{data, len};
  return RecvUpTo(fd, &iov, 1, 0, received);
}

Status RecvAll(int fd, void* data, size_t len) {
  size_t received;
  return RecvCounted(fd, data, len, &received);
}

Status RecvAllOrIdle(int fd, void* data, size_t len, bool* idle) {
  size_t received;
  Status s = RecvCounted(fd, data, len, &received);
  *idle = s.code() == Status::Code::kTimeout && received == 0;
  return s;
}

Status RecvDiscard(int fd, uint64_t len) {
  char sink[16384];
  while (len > 0) {
    size_t chunk = len < sizeof(sink) ? static_cast<size_t>(len) : sizeof(sink);
    TE_RETURN_IF_ERROR(RecvAll(fd, sink, chunk));
    len -= chunk;
  }
  return Status::OK();
}

bool WaitReadable(int fd, int timeout_ms) {
  pollfd pfd{fd, POLLIN, 0};
  for (;;) {
    int rc = ::poll(&pfd, 1, timeout_ms);
    if (rc < 0 && errno == EINTR) continue;
    return rc > 0;
  }
}

}  // namespace te
