#include "transport/tcp/tcp_connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <thread>
#include <utility>

#include "common/logging.h"
#include "transport/tcp/payload_io.h"
#include "transport/tcp/tcp_connection_socket.h"
#include "transport/tcp/tcp_endpoint.h"

namespace te {
namespace {
using Clock = std::chrono::steady_clock;
// Bounds one gathered send: enough to amortize the syscall, small enough to keep
// the receiver busy while the sender builds the next one.
constexpr size_t kMaxSlicesPerSend = 64;
constexpr uint64_t kMaxBytesPerSend = 8 << 20;
// What a submitting thread sends itself on an idle connection: READ requests (headers
// only) and small WRITEs, whose copy into the socket costs less than a hand-off to an
// I/O thread. Larger payloads are copied by the I/O threads.
constexpr size_t kMaxInlineSlices = 16;
constexpr uint64_t kMaxInlineBytes = 16 << 10;
// Runs an I/O thread sends before it lets the other sockets of its loop go first.
constexpr int kLoopRunsPerTurn = 4;

}  // namespace

// The loop's handle on one socket: it keeps the socket (and so its fd) open until the
// loop lets go, and reaches the connection only while the connection lives.
class TcpConnection::Watcher : public IoHandler {
 public:
  Watcher(std::weak_ptr<TcpConnection> conn, std::shared_ptr<Socket> sock)
      : conn_(std::move(conn)), sock_(std::move(sock)) {}
  void OnEvents(uint32_t events) override {
    if (auto conn = conn_.lock()) conn->OnSocketEvents(sock_, events);
  }
  void OnTick(Clock::time_point now) override {
    if (auto conn = conn_.lock()) conn->OnTick(sock_, now);
  }

 private:
  const std::weak_ptr<TcpConnection> conn_;
  const std::shared_ptr<Socket> sock_;
};

TcpConnection::TcpConnection(TcpConnectionOptions options, IoLoop* loop, uint64_t owner,
                             HandshakePool* handshakes)
    : options_(std::move(options)), loop_(loop), owner_(owner), handshakes_(handshakes) {
  pending_send_.headers.resize(kMaxSlicesPerSend * wire::kHeaderSize);
  pending_send_.iov.reserve(kMaxSlicesPerSend * 2);
  pending_send_.sent_with.reserve(kMaxSlicesPerSend * 2);
  Touch();
}

TcpConnection::~TcpConnection() { Close(); }

std::string TcpConnection::PeerText() const { return options_.endpoint->Describe(); }

void TcpConnection::Touch() { used_ns_.store(SteadyNowNs(), std::memory_order_relaxed); }

void TcpConnection::Done(Slice* slice, const Status& status) {
  carried_bytes_.fetch_sub(slice->length, std::memory_order_relaxed);
  slice->on_done(slice, status);
}

void TcpConnection::Complete(Slice* chain, const Status& status) {
  while (chain) {
    Slice* next = chain->next;
    chain->next = nullptr;
    Done(chain, status);
    chain = next;
  }
}

void TcpConnection::AwaitReleased(const Slice* slice) const {
  // Brief: the send either finished (a response can only follow it) or was cut short
  // by the abort in Fail(); sends never wait for the socket (MSG_DONTWAIT).
  while (released_id_.load(std::memory_order_acquire) < slice->transport_tag) {
    std::this_thread::yield();
  }
}

void TcpConnection::Enqueue(Slice* head, Slice* tail) {
  tail->next = nullptr;
  Touch();
  uint64_t bytes = 0;
  for (const Slice* s = head; s; s = s->next) bytes += s->length;
  carried_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  Slice* refused = nullptr;
  Status why;
  {
    MutexLock lock(&mu_);
    if (closed_) {
      refused = head;
      why = Status::Cancelled("transport stopped");
    } else {
      if (queue_tail_) {
        queue_tail_->next = head;
      } else {
        queue_head_ = head;
      }
      queue_tail_ = tail;
      if (!socket_) {
        refused = StartConnect();
        why = Status::ResourceExhausted("tcp: too many connections opening at once");
        if (!refused) return;
      } else if (sending_) {
        send_again_ = true;
        return;
      } else {
        sending_ = true;
      }
    }
  }
  if (refused) {
    Complete(refused, why);
    return;
  }
  Flush(SendBudget::kInline);
}

void TcpConnection::TakeRun(size_t max_slices, uint64_t max_payload, bool first_always,
                            Slice** cancelled) {
  PendingSend& p = pending_send_;
  p.iov.clear();
  p.sent_with.clear();
  p.at = 0;
  p.staged = nullptr;
  size_t count = 0;
  uint64_t bytes = 0;
  while (queue_head_ && count < max_slices) {
    Slice* s = queue_head_;
    const uint64_t payload = s->opcode == Request::WRITE ? s->length : 0;
    if (bytes + payload > max_payload && !(first_always && count == 0)) break;
    // Device bytes need staging copies: such a WRITE goes last in a run, its payload
    // sent after the iovecs, and never inline.
    const bool device_payload = payload && s->local_device != kHostMemory;
    if (device_payload && (count > 0 || !first_always)) break;
    queue_head_ = s->next;
    if (!queue_head_) queue_tail_ = nullptr;
    s->next = nullptr;
    if (s->IsCancelled()) {
      s->next = *cancelled;
      *cancelled = s;
      continue;
    }
    wire::FrameHeader h;
    h.opcode = s->opcode == Request::READ ? wire::Opcode::kRead : wire::Opcode::kWrite;
    h.request_id = s->transport_tag = next_request_id_++;
    h.addr = s->remote;
    h.length = s->length;
    h.payload_len = payload;
    uint8_t* hdr = p.headers.data() + count * wire::kHeaderSize;
    wire::EncodeHeader(h, hdr);
    // What is sent once each iovec is: a request whose payload follows is not yet.
    const bool payload_follows = payload > 0;
    p.iov.push_back({hdr, wire::kHeaderSize});
    p.sent_with.push_back(payload_follows ? h.request_id - 1 : h.request_id);
    if (payload && !device_payload) {
      p.iov.push_back({s->local, payload});
      p.sent_with.push_back(h.request_id);
    }
    bytes += payload;
    if (in_flight_.empty()) progress_ns_.store(SteadyNowNs(), std::memory_order_relaxed);
    in_flight_.push_back(s);
    if (s->awaited.load(std::memory_order_relaxed)) ++awaited_in_flight_;
    ++count;
    if (device_payload) {
      p.staged = s;
      break;
    }
  }
  p.last_id = next_request_id_ - 1;
}

void TcpConnection::Flush(SendBudget budget) {
  const bool inline_send = budget == SendBudget::kInline;
  int runs = 0;
  for (;;) {
    Slice* cancelled = nullptr;
    std::shared_ptr<Socket> sock;
    bool hand_to_loop = false;
    {
      MutexLock lock(&mu_);
      sock = socket_;
      // After a send: what went out is watched for, off the round trip's path.
      if (sock) WatchFor(sock, true);
      const bool budget_left = inline_send ? runs == 0 : runs < kLoopRunsPerTurn;
      if (sock && pending_send_.empty() && budget_left) {
        send_again_ = false;
        TakeRun(inline_send ? kMaxInlineSlices : kMaxSlicesPerSend,
                inline_send ? kMaxInlineBytes : kMaxBytesPerSend, !inline_send, &cancelled);
      }
      if (!sock || pending_send_.empty()) {
        sending_ = false;
        hand_to_loop = sock && queue_head_ != nullptr;
        sock = nullptr;
      }
    }
    Complete(cancelled, Status::Cancelled("batch freed before the slice was sent"));
    if (!sock) {
      if (hand_to_loop) {
        MutexLock lock(&mu_);
        if (socket_) PostToLoop(socket_->loop_id, &TcpConnection::FlushFromLoop);
      }
      return;
    }
    ++runs;
    PendingSend& p = pending_send_;
    iovec* iov = p.iov.data() + p.at;
    int count = static_cast<int>(p.iov.size() - p.at);
    Status s = SendSome(sock->fd.get(), &iov, &count);
    p.at = p.iov.size() - static_cast<size_t>(count);
    // Released as far as whole requests went: the response to one that did may come
    // before the rest of the run is sent, and its reader must not wait for that.
    if (p.at > 0) released_id_.store(p.sent_with[p.at - 1], std::memory_order_release);
    if (s.ok() && count == 0 && p.staged) {
      s = SendPayload(sock->fd.get(), p.staged->local_device, p.staged->local, p.staged->length);
      p.staged = nullptr;
    }
    if (s.ok() && count > 0) {
      // The socket is full: an EPOLLOUT goes on with the rest, unless one came already.
      MutexLock lock(&mu_);
      if (socket_ == sock) {
        if (send_again_) {
          send_again_ = false;
          continue;
        }
        sending_ = false;
        sock->awaits_output = true;
        WatchFor(sock, true);
        return;
      }
      // Failed meanwhile: the rest of the run must not go out on a later socket.
    }
    released_id_.store(p.last_id, std::memory_order_release);
    p.iov.clear();
    p.at = 0;
    p.staged = nullptr;
    if (!s.ok()) Fail(sock, s);
  }
}

void TcpConnection::PostToLoop(uint64_t loop_id, void (TcpConnection::*work)()) {
  std::weak_ptr<TcpConnection> weak = weak_from_this();
  loop_->Post(loop_id, [weak, work] {
    if (auto conn = weak.lock()) ((*conn).*work)();
  });
}

void TcpConnection::FlushFromLoop() {
  {
    MutexLock lock(&mu_);
    if (sending_) {
      send_again_ = true;
      return;
    }
    sending_ = true;
  }
  Flush(SendBudget::kLoop);
}

Slice* TcpConnection::StartConnect() {
  if (connecting_ || closed_) return nullptr;
  connecting_ = true;
  std::weak_ptr<TcpConnection> weak = weak_from_this();
  const auto asked = Clock::now();
  const bool started = handshakes_->TryRun([weak, asked] {
    if (auto conn = weak.lock()) conn->Connect(asked);
  });
  if (started) return nullptr;
  // Only when the transport stops or thousands of connections open at once.
  connecting_ = false;
  Slice* refused = queue_head_;
  queue_head_ = queue_tail_ = nullptr;
  return refused;
}

void TcpConnection::Connect(Clock::time_point asked) {
  const TcpEndpoint& endpoint = *options_.endpoint;
  UniqueFd fd;
  // The wait for a handshake thread (behind other connects to a peer that does not
  // answer, say) comes out of the first address's connect timeout: what is queued
  // fails within connect_timeout_ms of needing the socket, not a multiple of it.
  const auto timeout = std::chrono::milliseconds(options_.connect_timeout_ms);
  auto first_timeout =
      std::chrono::ceil<std::chrono::milliseconds>(timeout - (Clock::now() - asked));
  Status s =
      Status::Timeout("connect to " + PeerText() + " waited " +
                      std::to_string(options_.connect_timeout_ms) + " ms for a handshake thread");
  for (size_t i : endpoint.TryOrder()) {
    const TcpEndpoint::Address& a = endpoint.addresses[i];
    const auto budget = std::exchange(first_timeout, timeout);
    if (budget.count() <= 0) continue;
    s = te::Connect(a.host, a.port, static_cast<uint32_t>(budget.count()), &fd,
                    [this](int raw) { TuneDataSocket(raw, options_.tuning); });
    if (s.ok()) {
      options_.endpoint->preferred.store(i, std::memory_order_relaxed);
      break;
    }
  }
  // The HELLO and (device payloads are staged with blocking sends and receives) data
  // are bounded by the I/O timeout: a peer that accepts but never answers is stuck.
  if (s.ok()) s = SetIoTimeout(fd.get(), options_.io_timeout_ms);
  if (s.ok()) s = wire::ClientHello(fd.get(), wire::kChannelTcpData, options_.self);
  auto sock = std::make_shared<Socket>();
  if (s.ok()) {
    sock->fd = std::move(fd);
    sock->counted = GaugeHold(options_.connections);
    sock->loop_id = loop_->NewId();
    s = loop_->Add(owner_, sock->loop_id, sock->fd.get(),
                   std::make_shared<Watcher>(weak_from_this(), sock), kFirstEvents);
  }
  Slice* failed = nullptr;
  bool flush = false;
  {
    MutexLock lock(&mu_);
    connecting_ = false;
    if (closed_) {
      if (s.ok()) loop_->Remove(sock->loop_id);
      return;
    }
    if (s.ok()) {
      socket_ = sock;
      flush = queue_head_ != nullptr && !sending_;
      if (flush) sending_ = true;
    } else {
      failed = queue_head_;
      queue_head_ = queue_tail_ = nullptr;
    }
  }
  if (flush) Flush(SendBudget::kLoop);
  if (!s.ok()) {
    TE_LOG(Info) << "tcp: " << PeerText() << ": " << s.ToString();
    // Nothing is on the wire; everything queued so far fails, later submissions retry.
    Complete(failed, Status(s.code(), "tcp data connection to " + PeerText() + ": " + s.message()));
  }
}

void TcpConnection::Detach(const std::shared_ptr<Socket>& sock) {
  const std::shared_ptr<Socket> keep = sock;  // sock may be socket_ itself
  socket_.reset();
  AbortConnection(keep->fd.get());  // nothing it still queues may land later
  loop_->Remove(keep->loop_id);
}

void TcpConnection::Fail(const std::shared_ptr<Socket>& sock, const Status& status) {
  std::deque<Slice*> failed;
  Slice* refused = nullptr;
  {
    MutexLock lock(&mu_);
    if (socket_ != sock) return;
    Detach(sock);
    failed.swap(in_flight_);
    awaited_in_flight_ = 0;
    if (!sending_ && !pending_send_.empty()) {
      // A run cut short, waiting for the socket: nobody sends the rest.
      released_id_.store(pending_send_.last_id, std::memory_order_release);
      pending_send_.iov.clear();
      pending_send_.at = 0;
      pending_send_.staged = nullptr;
    }
    if (reader_ == Reader::kNone) {
      // A response half received: its slice is the reader's, and there is none.
      if (pending_receive_.slice) failed.push_back(pending_receive_.slice);
      pending_receive_ = PendingReceive{};
    }
    failure_ = status;
    if (queue_head_) refused = StartConnect();
  }
  TE_LOG(Info) << "tcp: connection to " << PeerText() << " failed: " << status.ToString();
  for (Slice* s : failed) {
    AwaitReleased(s);
    Done(s, status);
  }
  Complete(refused, Status::ResourceExhausted("tcp: too many connections opening at once"));
}

void TcpConnection::OnSocketEvents(const std::shared_ptr<Socket>& sock, uint32_t events) {
  {
    MutexLock lock(&mu_);
    if (socket_ != sock) return;  // an old socket on its way out
    if (events & EPOLLOUT) sock->awaits_output = false;
  }
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) sock->hung_up.store(true);
  if (events & EPOLLOUT) FlushFromLoop();
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ReadFromLoop();
}

void TcpConnection::WatchFor(const std::shared_ptr<Socket>& sock, bool retry) {
  bool input = sock->events & EPOLLIN;
  if (reader_ == Reader::kWaiter || (awaited_in_flight_ > 0 && !pending_receive_.slice &&
                                     in_flight_.size() == awaited_in_flight_)) {
    input = false;  // a waiter reads, or is expected to read all that is due
  } else if (!in_flight_.empty() || pending_receive_.slice) {
    input = true;
  }  // else nothing is due: as it is (the next request decides, after its send)
  // Output no send waits for is dropped with the next change of input, not by a call of
  // its own: until a send fills the socket again it reports nothing.
  const bool output = sock->awaits_output ||
                      ((sock->events & EPOLLOUT) && input == ((sock->events & EPOLLIN) != 0));
  const uint32_t want =
      (input ? uint32_t{EPOLLIN} : 0u) | (output ? uint32_t{EPOLLOUT} : 0u) | EPOLLRDHUP | EPOLLET;
  if (want == sock->events) return;
  const Status s = loop_->Watch(sock->loop_id, sock->fd.get(), want);
  if (s.ok()) {
    sock->events = want;
  } else if (s.code() == Status::Code::kNotFound && retry) {
    // Connect's Add has not reached the loop thread yet; a task runs after it has.
    std::weak_ptr<TcpConnection> weak = weak_from_this();
    loop_->Post(sock->loop_id, [weak, sock] {
      if (auto conn = weak.lock()) {
        MutexLock lock(&conn->mu_);
        if (conn->socket_ == sock) conn->WatchFor(sock, false);
      }
    });
  } else if (s.code() != Status::Code::kNotFound) {
    // Not seen in practice (the fd is ours and open); the io timeout still ends a
    // slice that waits for an event that no longer comes.
    TE_LOG(Error) << "tcp: " << PeerText() << ": " << s.ToString();
  }
}

void TcpConnection::SpareLoopWakeUp(const std::shared_ptr<Socket>& sock) {
  {
    MutexLock lock(&mu_);
    if (!read_again_ || socket_ != sock || !in_flight_.empty() || pending_receive_.slice ||
        pending_receive_.buffered() > 0) {
      return;
    }
    read_again_ = false;  // first, so that input arriving from now on sets it again
  }
  char byte;
  const ssize_t n = ::recv(sock->fd.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  MutexLock lock(&mu_);
  read_again_ = true;  // input, a hang-up or an error: the loop deals with it
}

void TcpConnection::OnTick(const std::shared_ptr<Socket>& sock, Clock::time_point now) {
  const int64_t now_ns = SteadyNs(now);
  const int64_t io_timeout_ns = int64_t{options_.io_timeout_ms} * 1000000;
  const int64_t idle_ns = int64_t{options_.idle_timeout_ms} * 1000000;
  bool stalled = false;
  {
    MutexLock lock(&mu_);
    if (socket_ != sock) return;
    if (awaited_in_flight_ > 0 && reader_ == Reader::kNone) {
      // A waiter was expected and none has come by this tick: no response waits longer.
      awaited_in_flight_ = 0;
      WatchFor(sock, false);
    }
    const bool waiting = !in_flight_.empty() || pending_receive_.slice != nullptr;
    if (waiting) {
      stalled = now_ns - progress_ns_.load(std::memory_order_relaxed) > io_timeout_ns;
    } else if (idle_ns > 0 && !queue_head_ && !sending_ && pending_send_.empty() &&
               reader_ == Reader::kNone &&
               now_ns - used_ns_.load(std::memory_order_relaxed) > idle_ns) {
      TE_LOG(Debug) << "tcp: closing idle connection to " << PeerText();
      Detach(sock);
      pending_receive_ = PendingReceive{};
      return;
    }
  }
  if (!sock->rto_settled &&
      now_ns - used_ns_.load(std::memory_order_relaxed) < kRetransmitCheckNs) {
    sock->rto_settled = SetMinRtoOnceRetransmitted(sock->fd.get(), options_.tuning);
  }
  if (stalled) {
    Fail(sock, Status::Timeout("peer " + PeerText() + " made no progress for " +
                               std::to_string(options_.io_timeout_ms) + " ms"));
  }
}

void TcpConnection::Unattended() {
  MutexLock lock(&mu_);
  awaited_in_flight_ = 0;
  if (socket_) WatchFor(socket_, true);
}

bool TcpConnection::Idle() {
  MutexLock lock(&mu_);
  return queue_head_ == nullptr && in_flight_.empty() && !sending_ && reader_ != Reader::kWaiter &&
         pending_receive_.slice == nullptr;
}

void TcpConnection::Close() {
  Slice* queued;
  std::deque<Slice*> failed;
  {
    MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    queued = queue_head_;
    queue_head_ = queue_tail_ = nullptr;
    failed.swap(in_flight_);
    awaited_in_flight_ = 0;
    failure_ = Status::Cancelled("transport stopped");
    if (socket_) {
      if (!sending_) released_id_.store(next_request_id_ - 1, std::memory_order_release);
      if (reader_ == Reader::kNone && pending_receive_.slice) {
        failed.push_back(pending_receive_.slice);
        pending_receive_ = PendingReceive{};
      }
      Detach(socket_);
    }
  }
  Complete(queued, Status::Cancelled("transport stopped"));
  for (Slice* s : failed) {
    AwaitReleased(s);
    Done(s, Status::Cancelled("transport stopped"));
  }
}

}  // namespace te
