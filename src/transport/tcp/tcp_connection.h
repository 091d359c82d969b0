// TcpConnection: one initiator-side connection to a peer's TCP data port, driven by
// the transport's I/O threads (io_loop.h) instead of threads of its own. Requests go
// out in order, gathered (headers and WRITE payloads in one sendmsg); responses come
// back in order, READ data landing straight in the destination.
//
// The socket opens on first use (connect and HELLO in the handshake pool), reopens on
// demand after a failure, and closes after idle_timeout_ms without use. A failure ends
// every slice on the wire with the error, while queued ones wait for the next socket.
// A slice with nothing received for io_timeout_ms fails the socket (the loop's tick).
//
// Who touches the socket: one sender at a time (the submitting thread for a small send
// on an idle connection, else an I/O thread), and one reader at a time (an I/O thread,
// or a thread waiting for its own response: ReceiveFor). Both shortcuts keep a small
// round trip at what a plain TCP ping-pong costs: no thread hand-off on either side.
// While a waiter reads, the loop stops watching for input, so the response does not
// also wake an I/O thread (a context switch per round trip); it watches again once a
// request is on the wire with no waiter reading (raised after its send), except when
// every request on the wire is one a waiter is expected for (Slice::awaited): then
// not until it turns out that none comes (Unattended, a reader leaving, or the tick).
// A lone round trip thus changes no watch at all, and its response, which on one CPU
// is often back before the send returns, wakes nobody but its waiter. Output is
// watched only while a send waits for room.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/socket.h"
#include "common/thread_annotations.h"
#include "metrics/engine_metrics.h"
#include "rpc/handshake.h"
#include "rpc/wire.h"
#include "transport/tcp/handshake_pool.h"
#include "transport/tcp/io_loop.h"
#include "transport/transport.h"

namespace te {

struct TcpConnectionOptions {
  // Addresses of the peer's data port, tried in order; the first that connects wins
  // and is tried first from then on (see TcpEndpoint).
  std::shared_ptr<struct TcpEndpoint> endpoint;
  wire::Credentials self;  // proven to the peer in each socket's HELLO
  uint32_t connect_timeout_ms = 3000;
  uint32_t io_timeout_ms = 5000;
  uint32_t idle_timeout_ms = 0;  // 0: never close an idle socket
  // How long a waiter in ReceiveFor polls the socket (yielding the CPU between tries)
  // after its last input before it sleeps in the kernel: input arriving for a sleeper
  // costs the sender a wake-up (on a virtual machine often an inter-processor
  // interrupt, a hypervisor exit), and the waiter a context switch.
  std::chrono::microseconds busy_poll{0};
  std::atomic<int64_t>* connections = nullptr;  // the engine's open-connection gauge
  DataSocketTuning tuning;                      // ResolveDataSocketTuning's
};

class TcpConnection : public std::enable_shared_from_this<TcpConnection> {
 public:
  // Its sockets are registered in loop as owner's.
  TcpConnection(TcpConnectionOptions options, IoLoop* loop, uint64_t owner,
                HandshakePool* handshakes);
  ~TcpConnection();
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  // Appends a chain of slices linked through Slice::next; never waits on the network.
  void Enqueue(Slice* head, Slice* tail) EXCLUDES(mu_);
  // Reads responses in this thread until done() or `deadline`, or until nothing is in
  // flight. False, having done nothing, when another thread reads or nothing is in
  // flight; true once it received (or failed the socket).
  bool ReceiveFor(const std::function<bool()>& done, std::chrono::steady_clock::time_point deadline)
      EXCLUDES(mu_);
  // Nothing queued, on the wire, being sent or being read by a waiter.
  bool Idle() EXCLUDES(mu_);
  // Bytes of the slices it carries (queued, on the wire, or being received), without a
  // lock: how busy it is, for picking one (TcpPeer).
  uint64_t carried_bytes() const { return carried_bytes_.load(std::memory_order_relaxed); }
  // No waiter comes for the awaited requests on the wire: the loop receives them.
  void Unattended() EXCLUDES(mu_);
  // Fails queued and in-flight slices with kCancelled and closes the socket; later
  // submissions fail the same way, and the loop is never used again. Called before the
  // last reference goes or the loop does.
  void Close() EXCLUDES(mu_);

 private:
  struct Socket;
  class Watcher;
  // The send in progress: a run of requests, sent in as many steps as the socket needs.
  struct PendingSend {
    std::vector<uint8_t> headers;
    std::vector<iovec> iov;
    // Per iovec: the highest request id whose bytes are all sent once it is (none
    // reads the caller's buffer any more).
    std::vector<uint64_t> sent_with;
    size_t at = 0;            // first iovec not yet fully sent
    Slice* staged = nullptr;  // device-memory WRITE whose payload follows the iovecs
    uint64_t last_id = 0;
    bool empty() const { return at == iov.size() && staged == nullptr; }
  };
  // The response being received, owned by the reader of the moment.
  struct PendingReceive {
    // Bytes received ahead of the response they belong to, consumed from `at`: a
    // header's receive takes what the socket has up to the buffer's size, i.e. with
    // the header a small payload (a 4 KiB READ's: one receive a round trip) or the
    // headers of the responses behind it (a run of WRITEs: one receive for all); a
    // payload's receive, the next response's header.
    static constexpr size_t kInputSize = 4096 + 2 * wire::kHeaderSize;
    uint8_t input[kInputSize];
    size_t at = 0, end = 0;
    size_t buffered() const { return end - at; }
    Slice* slice = nullptr;  // off the in-flight list once its header came
    wire::FrameHeader frame;
    uint64_t done = 0;  // payload bytes so far
    std::string text;   // a failed response's message
  };
  // What a new socket is watched for: no output until a send waits for room, as
  // re-arming output on a writable socket would report it at once.
  static constexpr uint32_t kFirstEvents = EPOLLIN | EPOLLRDHUP | EPOLLET;
  enum class Reader { kNone, kLoop, kWaiter };
  enum class SendBudget { kInline, kLoop };
  enum class ReadResult { kWouldBlock, kStopped, kFailed };

  // Sends queued requests while this thread holds sending_ (taken by the caller).
  void Flush(SendBudget budget) EXCLUDES(mu_);
  // Under mu_: moves queued slices into pending_send_ (and onto in_flight_).
  void TakeRun(size_t max_slices, uint64_t max_payload, bool first_always, Slice** cancelled)
      REQUIRES(mu_);
  // Runs work on the I/O thread of loop_id, if this connection still lives then.
  void PostToLoop(uint64_t loop_id, void (TcpConnection::*work)());
  // The loop's way in: takes sending_ (or leaves a note to its holder) and flushes.
  void FlushFromLoop() EXCLUDES(mu_);
  // The loop's read: takes the reader role (or leaves a note to its holder).
  void ReadFromLoop() EXCLUDES(mu_);
  void OnSocketEvents(const std::shared_ptr<Socket>& sock, uint32_t events) EXCLUDES(mu_);
  void OnTick(const std::shared_ptr<Socket>& sock, std::chrono::steady_clock::time_point now)
      EXCLUDES(mu_);
  // Under mu_: has the loop watch sock for input while a response is due and no waiter
  // reads it, and for output while a send waits for room. `retry`: once more from the
  // loop thread when the socket's Add has not reached it yet.
  void WatchFor(const std::shared_ptr<Socket>& sock, bool retry) REQUIRES(mu_);
  // A waiter done reading: the I/O thread saw the input it read and asked to read
  // again; when nothing is left on an otherwise idle socket, the loop is spared that.
  void SpareLoopWakeUp(const std::shared_ptr<Socket>& sock) EXCLUDES(mu_);
  // Gives the reader role back; true when input came meanwhile that nobody read.
  bool ReleaseReader(const std::shared_ptr<Socket>& sock) EXCLUDES(mu_);
  // The reader's work: receives what the socket has until it would block, `stop` says
  // so after a completed response, or the socket fails. `wait_for_header`: the first
  // header's recv waits for it (up to the socket's receive timeout).
  ReadResult ReadAvailable(const std::shared_ptr<Socket>& sock, const std::function<bool()>& stop,
                           bool wait_for_header = false) EXCLUDES(mu_);
  // Receives what the socket has of the current response's payload; *complete once
  // all came, with *outcome the response's verdict; *drained when a receive came back
  // short (the socket had no more). An error fails the socket.
  Status ReadPayload(const std::shared_ptr<Socket>& sock, bool* complete, Status* outcome,
                     bool* drained) EXCLUDES(mu_);
  // The reader's (or, under mu_, anyone's): a whole response header waits in
  // pending_receive_, received with earlier bytes.
  bool HeaderBuffered() const {
    return !pending_receive_.slice && pending_receive_.buffered() >= wire::kHeaderSize;
  }
  // Under mu_: matches a received header to the oldest request on the wire.
  Status TakeResponse() REQUIRES(mu_);
  // Ends the current response (its slice's on_done) and readies the next.
  void FinishResponse(const Status& status) EXCLUDES(mu_);
  // Starts a connect in the handshake pool unless one runs. When none can start, takes
  // the queue out for the caller to fail, after mu_.
  Slice* StartConnect() REQUIRES(mu_);
  // In the handshake pool; `asked`: when StartConnect queued it.
  void Connect(std::chrono::steady_clock::time_point asked) EXCLUDES(mu_);
  // Drops sock if it is current and ends what was on it with status.
  void Fail(const std::shared_ptr<Socket>& sock, const Status& status) EXCLUDES(mu_);
  void Detach(const std::shared_ptr<Socket>& sock) REQUIRES(mu_);
  // Ends a slice this connection carried: every on_done goes through here.
  void Done(Slice* slice, const Status& status);
  void Complete(Slice* chain, const Status& status);
  // Waits until no send reads the slice's source bytes any more.
  void AwaitReleased(const Slice* slice) const;
  void Touch();
  std::string PeerText() const;

  const TcpConnectionOptions options_;
  IoLoop* const loop_;
  const uint64_t owner_;
  HandshakePool* const handshakes_;

  Mutex mu_;
  Slice* queue_head_ GUARDED_BY(mu_) = nullptr;
  Slice* queue_tail_ GUARDED_BY(mu_) = nullptr;
  std::deque<Slice*> in_flight_ GUARDED_BY(mu_);  // sent or being sent, awaiting response
  // How many of in_flight_ a waiter is expected to receive (Slice::awaited): a lower
  // bound, reset whenever that expectation may have gone; equal to in_flight_.size(),
  // the loop need not watch for input.
  size_t awaited_in_flight_ GUARDED_BY(mu_) = 0;
  std::shared_ptr<Socket> socket_ GUARDED_BY(mu_);
  bool connecting_ GUARDED_BY(mu_) = false;
  bool closed_ GUARDED_BY(mu_) = false;
  Status failure_ GUARDED_BY(mu_);  // why the last socket went
  // Only the holder of sending_ writes to the socket, so requests go out whole and in
  // id order; send_again_ asks the holder to try once more before letting go (the
  // socket became writable meanwhile).
  bool sending_ GUARDED_BY(mu_) = false;
  bool send_again_ GUARDED_BY(mu_) = false;
  PendingSend pending_send_;  // the holder of sending_'s
  Reader reader_ GUARDED_BY(mu_) = Reader::kNone;
  bool read_again_ GUARDED_BY(mu_) = false;  // input came while a waiter read
  PendingReceive pending_receive_;           // the reader's
  uint64_t next_request_id_ GUARDED_BY(mu_) = 1;
  // Highest request id whose bytes no send reads any more (sent, or its send failed).
  // A slice completes only once its id is covered, so the caller never gets its buffer
  // back while sendmsg may still read it.
  std::atomic<uint64_t> released_id_{0};
  // steady_clock nanoseconds: when the oldest response became due or last progressed;
  // and when the connection was last used.
  std::atomic<int64_t> progress_ns_{0};
  std::atomic<int64_t> used_ns_{0};
  std::atomic<uint64_t> carried_bytes_{0};  // see carried_bytes()
};

}  // namespace te
