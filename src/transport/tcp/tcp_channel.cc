#include "transport/tcp/tcp_channel.h"

#include <sys/socket.h>

#include <vector>

#include "common/logging.h"
#include "rpc/wire.h"
#include "transport/tcp/payload_io.h"

namespace te {
namespace {
// Bounds one gathered send: enough to amortize the syscall, small enough to keep
// the receiver busy while the sender builds the next one.
constexpr size_t kMaxSlicesPerSend = 64;
constexpr uint64_t kMaxBytesPerSend = 8 << 20;
// What a submitting thread sends itself on an idle channel: READ requests (headers
// only) and small WRITEs, whose copy into the socket costs less than waking the
// sender thread. Larger payloads stay with the sender threads, which copy in parallel.
constexpr size_t kMaxInlineSlices = 16;
constexpr uint64_t kMaxInlineBytes = 16 << 10;
constexpr uint64_t kMaxErrorText = 4096;
// How long the receiver thread of a channel where waiters read leaves a lone slice
// to a waiter that may still come for it, and how often it looks at an idle channel
// before it goes back to reading (and sleeping in recv) itself.
constexpr auto kWaiterGrace = std::chrono::milliseconds(2);
constexpr int kIdleChecks = 50;
}  // namespace

TcpChannel::TcpChannel(TcpChannelOptions options)
    : options_(std::move(options)), inline_headers_(kMaxInlineSlices * wire::kHeaderSize) {
  inline_iov_.reserve(kMaxInlineSlices * 2);
  sender_ = std::thread([this] { SendLoop(); });
  receiver_ = std::thread([this] { ReceiveLoop(); });
}

TcpChannel::~TcpChannel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (current_) ::shutdown(current_->fd.get(), SHUT_RDWR);
  }
  queue_cv_.notify_all();
  conn_cv_.notify_all();
  sender_.join();
  receiver_.join();
  Slice* queued = queue_head_;
  queue_head_ = queue_tail_ = nullptr;
  Complete(queued, Status::Cancelled("transport stopped"));
  // The sender has exited, so no send still reads these slices.
  for (Slice* s : in_flight_) s->on_done(s, Status::Cancelled("transport stopped"));
  in_flight_.clear();
}

void TcpChannel::Complete(Slice* chain, const Status& status) {
  while (chain) {
    Slice* next = chain->next;
    chain->next = nullptr;
    chain->on_done(chain, status);
    chain = next;
  }
}

void TcpChannel::Enqueue(Slice* head, Slice* tail) {
  tail->next = nullptr;
  std::shared_ptr<Connection> conn;
  Slice* cancelled = nullptr;
  uint64_t last_id = 0;
  bool wake_receiver;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const bool idle = queue_head_ == nullptr && !sending_ && current_ != nullptr;
    if (queue_tail_) {
      queue_tail_->next = head;
    } else {
      queue_head_ = head;
    }
    queue_tail_ = tail;
    if (idle) {
      last_id = TakeRun(inline_headers_.data(), kMaxInlineSlices, kMaxInlineBytes, false,
                        &inline_iov_, &cancelled, nullptr);
      if (!inline_iov_.empty()) {
        sending_ = true;
        conn = current_;
      }
    }
    wake_receiver = ReceiverMustRead();
  }
  if (wake_receiver) conn_cv_.notify_one();
  Complete(cancelled, Status::Cancelled("batch freed before the slice was sent"));
  if (conn) {
    SendInline(conn, last_id);
  } else {
    queue_cv_.notify_one();
  }
}

void TcpChannel::SendInline(const std::shared_ptr<Connection>& conn, uint64_t last_id) {
  iovec* iov = inline_iov_.data();
  int count = static_cast<int>(inline_iov_.size());
  Status s = SendSome(conn->fd.get(), &iov, &count);
  if (s.ok() && count > 0) {
    // The socket is full: the sender thread finishes this send, still holding sending_.
    {
      std::lock_guard<std::mutex> lock(mu_);
      handoff_iov_ = iov;
      handoff_count_ = count;
      handoff_last_id_ = last_id;
      handoff_conn_ = conn;
    }
    queue_cv_.notify_one();
    return;
  }
  released_id_.store(last_id, std::memory_order_release);
  if (!s.ok()) Fail(conn, s);
  bool more;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sending_ = false;
    more = queue_head_ != nullptr;
  }
  if (more) queue_cv_.notify_one();
}

std::shared_ptr<TcpChannel::Connection> TcpChannel::EnsureConnected() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (current_) return current_;
  }
  auto conn = std::make_shared<Connection>();
  Status s = Connect(options_.host, options_.port, options_.connect_timeout_ms, &conn->fd);
  if (s.ok()) s = SetIoTimeout(conn->fd.get(), options_.io_timeout_ms);
  if (s.ok()) s = wire::ClientHello(conn->fd.get(), wire::kChannelTcpData, options_.self);
  if (s.ok()) {
    SetBulkBuffers(conn->fd.get());
    conn->counted = GaugeHold(options_.connections);
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return nullptr;
    current_ = conn;
    conn_cv_.notify_all();
    return conn;
  }
  TE_LOG(Info) << "tcp: " << options_.host << ":" << options_.port << ": " << s.ToString();
  // Nothing is on the wire; everything queued so far fails, later submissions retry.
  Slice* queued;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queued = queue_head_;
    queue_head_ = queue_tail_ = nullptr;
  }
  Complete(queued, Status(s.code(), "tcp data connection to " + options_.host + ":" +
                                        std::to_string(options_.port) + ": " + s.message()));
  return nullptr;
}

void TcpChannel::AwaitReleased(const Slice* slice) const {
  // Brief: the send either finished (a response can only follow it) or was cut short
  // by the shutdown in Fail().
  while (released_id_.load(std::memory_order_acquire) < slice->transport_tag) {
    std::this_thread::yield();
  }
}

void TcpChannel::Fail(const std::shared_ptr<Connection>& conn, const Status& status) {
  std::deque<Slice*> failed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (current_ != conn) return;
    current_.reset();
    ::shutdown(conn->fd.get(), SHUT_RDWR);
    failed.swap(in_flight_);
  }
  TE_LOG(Info) << "tcp: connection to " << options_.host << ":" << options_.port
               << " failed: " << status.ToString();
  for (Slice* s : failed) {
    AwaitReleased(s);
    s->on_done(s, status);
  }
}

uint64_t TcpChannel::TakeRun(uint8_t* headers, size_t max_slices, uint64_t max_payload,
                             bool first_always, std::vector<iovec>* iov, Slice** cancelled,
                             Slice** staged) {
  iov->clear();
  if (staged) *staged = nullptr;
  size_t count = 0;
  uint64_t bytes = 0;
  while (queue_head_ && count < max_slices) {
    Slice* s = queue_head_;
    const uint64_t payload = s->opcode == Request::WRITE ? s->length : 0;
    if (bytes + payload > max_payload && !(first_always && count == 0)) break;
    const bool device_payload = payload && s->local_device != kHostMemory;
    if (device_payload && (count > 0 || !staged)) break;
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
    uint8_t* hdr = headers + count * wire::kHeaderSize;
    wire::EncodeHeader(h, hdr);
    iov->push_back({hdr, wire::kHeaderSize});
    if (payload && !device_payload) iov->push_back({s->local, payload});
    bytes += payload;
    if (in_flight_.empty()) progress_ = std::chrono::steady_clock::now();
    in_flight_.push_back(s);
    ++count;
    if (device_payload) {
      *staged = s;
      break;
    }
  }
  return next_request_id_ - 1;
}

void TcpChannel::SendLoop() {
  std::vector<uint8_t> headers(kMaxSlicesPerSend * wire::kHeaderSize);
  std::vector<iovec> iov;
  iov.reserve(kMaxSlicesPerSend * 2);
  bool holding = false;  // this thread holds sending_
  for (;;) {
    std::shared_ptr<Connection> conn;
    iovec* handoff = nullptr;
    int handoff_count = 0;
    uint64_t last_id = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (holding) sending_ = false;
      queue_cv_.wait(lock, [this] {
        return stopping_ || handoff_count_ > 0 || (queue_head_ != nullptr && !sending_);
      });
      if (stopping_) return;
      sending_ = holding = true;
      if (handoff_count_ > 0) {
        std::swap(handoff, handoff_iov_);
        std::swap(handoff_count, handoff_count_);
        last_id = handoff_last_id_;
        conn = std::move(handoff_conn_);
      }
    }
    if (handoff_count > 0) {
      Status s = SendAll(conn->fd.get(), handoff, handoff_count);
      released_id_.store(last_id, std::memory_order_release);
      if (!s.ok()) Fail(conn, s);
      continue;
    }
    conn = EnsureConnected();
    if (!conn) continue;

    Slice* cancelled = nullptr;
    Slice* staged = nullptr;
    bool wake_receiver;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (current_ != conn) continue;  // failed meanwhile; queued slices stay queued
      last_id = TakeRun(headers.data(), kMaxSlicesPerSend, kMaxBytesPerSend, true, &iov, &cancelled,
                        &staged);
      wake_receiver = ReceiverMustRead();
    }
    if (wake_receiver) conn_cv_.notify_one();
    Complete(cancelled, Status::Cancelled("batch freed before the slice was sent"));
    if (iov.empty()) continue;
    Status s = SendAll(conn->fd.get(), iov.data(), static_cast<int>(iov.size()));
    if (s.ok() && staged) {
      s = SendPayload(conn->fd.get(), staged->local_device, staged->local, staged->length);
    }
    released_id_.store(last_id, std::memory_order_release);
    if (!s.ok()) Fail(conn, s);
  }
}

bool TcpChannel::Idle() {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_head_ == nullptr && in_flight_.empty() && !sending_ && reader_ != Reader::kWaiter;
}

bool TcpChannel::ReceiverMustRead() const {
  return waiter_mode_ && reader_ == Reader::kNone && current_ && in_flight_.size() >= 2;
}

void TcpChannel::ReceiveLoop() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (!current_) {
      conn_cv_.wait(lock);
      continue;
    }
    if (reader_ != Reader::kNone) {
      // A waiter reads. It wakes us when it leaves slices of others unread, but not
      // for slices sent after it left: look again after the grace period.
      conn_cv_.wait_for(lock, kWaiterGrace);
      continue;
    }
    if (waiter_mode_ && !read_now_ && in_flight_.size() <= 1) {
      // Waiters read here: leave the socket to them, but neither leave a slice unread
      // when no waiter comes for it, nor keep waking up on an idle channel.
      if (!in_flight_.empty()) {
        if (Clock::now() < progress_ + kWaiterGrace) {
          conn_cv_.wait_until(lock, progress_ + kWaiterGrace);
          continue;
        }
        waiter_mode_ = false;
      } else if (idle_checks_++ < kIdleChecks) {
        conn_cv_.wait_for(lock, kWaiterGrace);
        continue;
      } else {
        waiter_mode_ = false;
      }
    }
    read_now_ = false;
    reader_ = Reader::kThread;
    const std::shared_ptr<Connection> conn = current_;
    lock.unlock();
    for (;;) {
      bool idle = false;
      Status s = ReadOne(conn, -1, &idle);
      if (!s.ok()) {
        Fail(conn, s);
        break;
      }
      std::lock_guard<std::mutex> guard(mu_);
      if (current_ != conn || (waiter_mode_ && in_flight_.empty())) break;
    }
    lock.lock();
    reader_ = Reader::kNone;
  }
}

bool TcpChannel::ReceiveFor(const std::function<bool()>& done,
                            std::chrono::steady_clock::time_point deadline) {
  using Clock = std::chrono::steady_clock;
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || !current_ || in_flight_.empty()) return false;
    // Read now or not, waiters wait here: the receiver thread is to leave the socket
    // to them once nothing is in flight.
    waiter_mode_ = true;
    idle_checks_ = 0;
    if (reader_ != Reader::kNone) return false;
    reader_ = Reader::kWaiter;
    conn = current_;
  }
  const auto io_timeout = std::chrono::milliseconds(options_.io_timeout_ms);
  bool received = false;
  while (!done()) {
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) break;
    // Block in recv itself unless the caller's deadline comes before the socket's
    // receive timeout would.
    const int wait_ms =
        left >= io_timeout
            ? -1
            : static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
    bool idle = false;
    Status s = ReadOne(conn, wait_ms, &idle);
    if (!s.ok()) {
      Fail(conn, s);
      received = true;
      break;
    }
    received |= !idle;
    std::lock_guard<std::mutex> lock(mu_);
    if (current_ != conn || in_flight_.empty()) break;
  }
  bool others_left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    reader_ = Reader::kNone;
    others_left = read_now_ = current_ == conn && !in_flight_.empty();
  }
  if (others_left) conn_cv_.notify_one();
  return received;
}

Status TcpChannel::ReadOne(const std::shared_ptr<Connection>& conn, int wait_ms, bool* idle) {
  const int fd = conn->fd.get();
  Status s;
  *idle = wait_ms >= 0 && !WaitReadable(fd, wait_ms);
  if (!*idle) s = ReceiveOne(fd, idle);
  if (!*idle) return s;
  // An idle connection may stay silent forever; with slices on the wire, no progress
  // for the I/O timeout means the peer is gone or stuck.
  const auto timeout = std::chrono::milliseconds(options_.io_timeout_ms);
  std::lock_guard<std::mutex> lock(mu_);
  if (current_ != conn || in_flight_.empty() ||
      std::chrono::steady_clock::now() - progress_ < timeout) {
    return Status::OK();
  }
  return Status::Timeout("peer " + options_.host + ":" + std::to_string(options_.port) +
                         " made no progress for " + std::to_string(options_.io_timeout_ms) + " ms");
}

Status TcpChannel::ReceiveOne(int fd, bool* idle) {
  // Blocking in recv itself (bounded by the socket's receive timeout) rather than in
  // poll first saves a system call per response.
  uint8_t raw[wire::kHeaderSize];
  TE_RETURN_IF_ERROR(RecvAllOrIdle(fd, raw, sizeof(raw), idle));
  wire::FrameHeader h;
  TE_RETURN_IF_ERROR(wire::DecodeHeader(raw, &h));
  Slice* slice = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (in_flight_.empty() || !h.is_response() ||
        in_flight_.front()->transport_tag != h.request_id) {
      return Status::ProtocolError("unexpected response id " + std::to_string(h.request_id));
    }
    // Off the in-flight list before its bytes land, so a concurrent Fail() cannot
    // report the slice done while we still write into its destination.
    slice = in_flight_.front();
    in_flight_.pop_front();
    progress_ = std::chrono::steady_clock::now();
  }
  Status s, result;
  if (h.status != 0) {
    if (h.payload_len > kMaxErrorText) {
      s = Status::ProtocolError("oversized error text");
    } else {
      std::string text(h.payload_len, '\0');
      s = RecvAll(fd, text.data(), text.size());
      result = wire::ResponseStatus(h, text);
    }
  } else if (slice->opcode == Request::READ) {
    s = h.payload_len == slice->length
            ? RecvPayload(fd, slice->local_device, slice->local, slice->length)
            : Status::ProtocolError("READ response length differs from the request");
  } else if (h.payload_len != 0) {
    s = Status::ProtocolError("WRITE response with a payload");
  }
  // A READ request's send reads only its header, never the caller's buffer.
  if (slice->opcode == Request::WRITE) AwaitReleased(slice);
  slice->on_done(slice, s.ok() ? result : s);
  return s;
}

}  // namespace te
