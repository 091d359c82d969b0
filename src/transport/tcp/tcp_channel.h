// TcpChannel: one initiator-side connection to a peer's TCP data port. A sender thread
// writes queued slices (headers and WRITE payloads gathered into one sendmsg); a
// receiver thread reads responses in order and lands READ data straight in the
// destination. The connection opens lazily and reopens after a failure; a failure ends
// every slice on the wire with the error, while queued ones wait for the next
// connection.
//
// Two shortcuts take thread hand-offs out of a small round trip, which then costs what
// a plain TCP ping-pong does: on an idle channel the submitting thread sends small
// requests itself, without waiting (what the socket does not take goes on in the
// sender thread); and a thread waiting for a response may read it itself
// (ReceiveFor). Once waiters read on a channel, its receiver thread leaves the socket
// to them whenever at most one slice is in flight, and reads a lone slice only when
// no waiter came for it within a grace period.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/socket.h"
#include "metrics/engine_metrics.h"
#include "rpc/handshake.h"
#include "transport/transport.h"

namespace te {

struct TcpChannelOptions {
  std::string host;
  uint16_t port = 0;
  wire::Credentials self;  // proven to the peer in each connection's HELLO
  uint32_t connect_timeout_ms = 3000;
  uint32_t io_timeout_ms = 5000;
  std::atomic<int64_t>* connections = nullptr;  // the engine's open-connection gauge
};

class TcpChannel {
 public:
  explicit TcpChannel(TcpChannelOptions options);
  ~TcpChannel();  // fails queued and in-flight slices with kCancelled
  TcpChannel(const TcpChannel&) = delete;
  TcpChannel& operator=(const TcpChannel&) = delete;

  // Appends a chain of slices linked through Slice::next.
  void Enqueue(Slice* head, Slice* tail);
  // Reads responses in this thread until done() or `deadline`, or until nothing is in
  // flight. False, having done nothing, when another thread is reading or nothing is
  // in flight; true once it received (or failed the connection).
  bool ReceiveFor(const std::function<bool()>& done,
                  std::chrono::steady_clock::time_point deadline);
  // Nothing queued, on the wire, being sent or being read by a waiter.
  bool Idle();

 private:
  struct Connection {
    UniqueFd fd;
    GaugeHold counted;  // in the connection gauge once established
  };

  void SendLoop();
  // Under mu_, by the holder of sending_: moves queued slices, in order, into one
  // gathered send (headers encoded into `headers`, WRITE payloads by reference) and
  // onto in_flight_. Stops at max_slices, or before a slice whose payload would take
  // the send past max_payload (the first is taken regardless when first_always).
  // Cancelled slices are chained into *cancelled. A WRITE from device memory cannot be
  // gathered (its bytes need staging copies): it is taken only first, and last, in a
  // run, its header alone in the iovecs and the slice in *staged for the caller to send
  // the payload after them; with staged null it is not taken. Returns the last request
  // id taken.
  uint64_t TakeRun(uint8_t* headers, size_t max_slices, uint64_t max_payload, bool first_always,
                   std::vector<iovec>* iov, Slice** cancelled, Slice** staged);
  // The submitting thread's send on an idle channel: sends what the socket takes now
  // and hands the rest to the sender thread.
  void SendInline(const std::shared_ptr<Connection>& conn, uint64_t last_id);
  void ReceiveLoop();
  // Under mu_: the receiver thread should read now although waiters read here.
  bool ReceiverMustRead() const;
  // Receives one response on conn: waiting for it up to wait_ms first (< 0: blocking
  // in recv, bounded by the I/O timeout). *idle when none came; an error when none
  // came for the I/O timeout while slices are in flight.
  Status ReadOne(const std::shared_ptr<Connection>& conn, int wait_ms, bool* idle);
  // Receives one response; *idle when none came within the I/O timeout.
  Status ReceiveOne(int fd, bool* idle);
  // Opens a connection for the sender; fails the queue when the peer is unreachable.
  std::shared_ptr<Connection> EnsureConnected();
  // Drops conn if it is current and ends its in-flight slices with status.
  void Fail(const std::shared_ptr<Connection>& conn, const Status& status);
  static void Complete(Slice* chain, const Status& status);
  // Waits until the sender is done reading the slice's source bytes.
  void AwaitReleased(const Slice* slice) const;

  const TcpChannelOptions options_;
  std::mutex mu_;
  std::condition_variable queue_cv_;  // sender: work queued or stopping
  // Receiver: a connection is up, the socket was left to it, or stopping.
  std::condition_variable conn_cv_;
  Slice* queue_head_ = nullptr;  // guarded by mu_
  Slice* queue_tail_ = nullptr;
  std::deque<Slice*> in_flight_;  // guarded by mu_; sent, awaiting response
  // Guarded by mu_: when in_flight_ last became non-empty or last got a response.
  std::chrono::steady_clock::time_point progress_;
  std::shared_ptr<Connection> current_;  // guarded by mu_
  // Guarded by mu_: who reads from the socket, one at a time.
  enum class Reader { kNone, kThread, kWaiter };
  Reader reader_ = Reader::kNone;
  // Guarded by mu_: waiters read here, so the receiver thread leaves the socket to them
  // while at most one slice is in flight (see ReceiveLoop).
  bool waiter_mode_ = false;
  bool read_now_ = false;  // a waiter left slices of others unread
  int idle_checks_ = 0;    // the receiver thread's looks at an idle channel in waiter mode
  // Guarded by mu_: someone (the sender thread or a submitting thread) is writing to
  // the socket; only the holder sends, so requests go out whole and in id order.
  bool sending_ = false;
  uint64_t next_request_id_ = 1;  // guarded by mu_
  // The inline send's iovecs and headers: used only by the holder of sending_, so a
  // send handed to the sender thread may keep pointing into them.
  std::vector<iovec> inline_iov_;
  std::vector<uint8_t> inline_headers_;
  // Guarded by mu_: the unsent rest of an inline send, for the sender thread.
  iovec* handoff_iov_ = nullptr;
  int handoff_count_ = 0;
  uint64_t handoff_last_id_ = 0;
  std::shared_ptr<Connection> handoff_conn_;
  // Highest request id whose bytes the sender no longer reads (sent, or its send
  // failed). A slice completes only once its id is covered, so the caller never gets
  // its buffer back while sendmsg may still read it.
  std::atomic<uint64_t> released_id_{0};
  bool stopping_ = false;
  std::thread sender_;
  std::thread receiver_;
};

}  // namespace te
