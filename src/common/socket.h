// Blocking TCP socket helpers. Every call that can wait on a peer is bounded, either
// by an explicit timeout or by the SO_RCVTIMEO/SO_SNDTIMEO set with SetIoTimeout.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "te/status.h"

namespace te {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.Release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) Reset(o.Release());
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Tunes a socket before its handshake (see TuneDataSocket); nothing when empty.
using SocketSetup = std::function<void(int fd)>;
// Binds and listens on host:port (empty host: all interfaces; port 0: any free port).
// setup runs on the listener before listen(): accepted sockets inherit what it sets.
Status Listen(const std::string& host, uint16_t port, UniqueFd* fd, uint16_t* bound_port,
              const SocketSetup& setup = {});
// Connects within timeout_ms; the result is blocking with TCP_NODELAY set. setup runs
// on the socket before connect().
Status Connect(const std::string& host, uint16_t port, uint32_t timeout_ms, UniqueFd* fd,
               const SocketSetup& setup = {});
// Accepts one connection; kCancelled once the listener is shut down.
Status Accept(int listen_fd, UniqueFd* fd);
// Sets SO_RCVTIMEO and SO_SNDTIMEO: a blocked recv/send fails with kTimeout after this.
Status SetIoTimeout(int fd, uint32_t timeout_ms);
// Enlarges kernel socket buffers for bulk data.
void SetBulkBuffers(int fd);
// Ends a TCP connection at once: what it still has queued to send is dropped and the
// peer gets a reset, and threads blocked on it wake with an error. shutdown() would
// send its FIN behind that queue, which the kernel keeps retransmitting: a WRITE failed
// by its timeout during a partition then lands once the link is back, possibly over a
// later WRITE that succeeded. The descriptor stays open (close it as usual).
void AbortConnection(int fd);
// TCP_CORK on: partial segments wait for more data, even under TCP_NODELAY and when
// an ACK arrives meanwhile; off sends what waits. False when the kernel refused it.
bool SetCork(int fd, bool on);
// This network namespace's default TCP congestion control; empty when unreadable.
std::string KernelCongestionControl();
// The congestion control that Config::tcp_congestion asks for ("auto", "system" or a
// name), in this network namespace: empty for the kernel's default. A name this
// kernel refuses is an error naming it.
Status ResolveCongestionControl(const std::string& configured, std::string* name);
// Sets a resolved congestion control on a TCP socket; nothing when name is empty.
void SetCongestionControl(int fd, const std::string& name);
// How the TCP transport's data sockets are tuned: resolved once (ResolveDataSocketTuning)
// and set on each socket (TuneDataSocket).
struct DataSocketTuning {
  std::string congestion;   // empty: the kernel's default
  uint32_t rto_min_us = 0;  // 0: the kernel's minimum retransmission timeout (200 ms)
};
// Config::tcp_congestion as ResolveCongestionControl reads it, and tcp_rto_min_us: a
// minimum this kernel cannot set per socket (before Linux 6.15, or below two of its
// timer ticks) is logged and left to the kernel.
Status ResolveDataSocketTuning(const std::string& congestion, uint32_t rto_min_us,
                               DataSocketTuning* out);
// Bulk buffers and the congestion control. Set before the handshake (as Connect's or
// the listener's SocketSetup), because the kernel sets a connection up under the
// congestion control in force when it is established. bbr, where it is the system's
// default, turns on the kernel's own pacing then, and a later switch to cubic leaves
// it on: an hrtimer armed on nearly every send, a third of the CPU of an engine
// writing to 256 peers (docs/performance.md).
void TuneDataSocket(int fd, const DataSocketTuning& tuning);
// The minimum retransmission timeout goes on a data socket only once it has
// retransmitted (TCP_INFO): below the kernel's 200 ms, Linux also caps the socket's
// delayed ACKs just under it, so that on a connection used every few ms each ACK
// becomes a timer of its own (one engine writing to 256 peers: 38,000 delayed-ACK
// timers a second at 5 ms against 400, and 15% less throughput). A lossless socket
// keeps the kernel's timers; a lossy one waits 5 ms, not 200, from its first loss
// on. True once nothing is left to do (set, or nothing to set).
bool SetMinRtoOnceRetransmitted(int fd, const DataSocketTuning& tuning);
// Asked of a socket that moved data within this long (ns): only such a one can have
// retransmitted since its last check.
inline constexpr int64_t kRetransmitCheckNs = 1'000'000'000;

// Sends every byte of iov (modified in place). kUnavailable when the peer is gone.
Status SendAll(int fd, struct iovec* iov, int iovcnt);
Status SendAll(int fd, const void* data, size_t len);
// Sends what the socket buffer takes without waiting, and advances *iov and *iovcnt
// past it (*iovcnt is 0 once everything went). kUnavailable when the peer is gone.
Status SendSome(int fd, struct iovec** iov, int* iovcnt);
// Receives what the socket has, up to len bytes, without waiting: *received is 0 when
// nothing was there. kUnavailable on orderly close.
Status RecvSome(int fd, void* data, size_t len, size_t* received);
// The same, filling iov's buffers in order.
Status RecvSome(int fd, struct iovec* iov, int iovcnt, size_t* received);
// RecvSome that waits for the first byte, up to the socket's receive timeout (then
// *received is 0). The fd must be a blocking one.
Status RecvWaiting(int fd, void* data, size_t len, size_t* received);
// Receives exactly len bytes. kUnavailable on orderly close, kTimeout after the
// socket's receive timeout without any byte.
Status RecvAll(int fd, void* data, size_t len);
// RecvAll for a frame that may never come: *idle is set when the receive timeout
// passed without a single byte, so the stream is still in step.
Status RecvAllOrIdle(int fd, void* data, size_t len, bool* idle);
// Discards len bytes.
Status RecvDiscard(int fd, uint64_t len);
// "ip:port" of the connected peer, or "unknown peer".
std::string PeerAddress(int fd);
// Waits until fd is readable; false on timeout. timeout_ms < 0 waits forever.
bool WaitReadable(int fd, int timeout_ms);

}  // namespace te
