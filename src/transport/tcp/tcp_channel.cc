#include "transport/tcp/tcp_channel.h"

#include <sys/socket.h>

#include <vector>

#include "common/logging.h"
#include "rpc/wire.h"

namespace te {
namespace {
// Bounds one gathered send: enough to amortize the syscall, small enough to keep
// the receiver busy while the sender builds the next one.
constexpr size_t kMaxSlicesPerSend = 64;
constexpr uint64_t kMaxBytesPerSend = 8 << 20;
constexpr uint64_t kMaxErrorText = 4096;
}  // namespace

TcpChannel::TcpChannel(TcpChannelOptions options) : options_(std::move(options)) {
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_tail_) {
      queue_tail_->next = head;
    } else {
      queue_head_ = head;
    }
    queue_tail_ = tail;
  }
  queue_cv_.notify_one();
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

void TcpChannel::SendLoop() {
  std::vector<uint8_t> headers(kMaxSlicesPerSend * wire::kHeaderSize);
  std::vector<iovec> iov;
  iov.reserve(kMaxSlicesPerSend * 2);
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      queue_cv_.wait(lock, [this] { return stopping_ || queue_head_ != nullptr; });
      if (stopping_) return;
    }
    std::shared_ptr<Connection> conn = EnsureConnected();
    if (!conn) continue;

    // Take a run of slices off the queue and record them as in flight, in wire order.
    iov.clear();
    size_t count = 0;
    uint64_t bytes = 0;
    Slice* cancelled = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (current_ != conn) continue;  // failed meanwhile; queued slices stay queued
      while (queue_head_ && count < kMaxSlicesPerSend && bytes < kMaxBytesPerSend) {
        Slice* s = queue_head_;
        queue_head_ = s->next;
        if (!queue_head_) queue_tail_ = nullptr;
        s->next = nullptr;
        if (s->IsCancelled()) {
          s->next = cancelled;
          cancelled = s;
          continue;
        }
        wire::FrameHeader h;
        h.opcode = s->opcode == Request::READ ? wire::Opcode::kRead : wire::Opcode::kWrite;
        h.request_id = s->transport_tag = next_request_id_++;
        h.addr = s->remote;
        h.length = s->length;
        h.payload_len = s->opcode == Request::WRITE ? s->length : 0;
        uint8_t* hdr = headers.data() + count * wire::kHeaderSize;
        wire::EncodeHeader(h, hdr);
        iov.push_back({hdr, wire::kHeaderSize});
        if (s->opcode == Request::WRITE) {
          iov.push_back({s->local, s->length});
          bytes += s->length;
        }
        if (in_flight_.empty()) progress_ = std::chrono::steady_clock::now();
        in_flight_.push_back(s);
        ++count;
      }
    }
    Complete(cancelled, Status::Cancelled("batch freed before the slice was sent"));
    if (iov.empty()) continue;
    Status s = SendAll(conn->fd.get(), iov.data(), static_cast<int>(iov.size()));
    released_id_.store(next_request_id_ - 1, std::memory_order_release);
    if (!s.ok()) Fail(conn, s);
  }
}

void TcpChannel::ReceiveLoop() {
  const auto timeout = std::chrono::milliseconds(options_.io_timeout_ms);
  for (;;) {
    std::shared_ptr<Connection> conn;
    {
      std::unique_lock<std::mutex> lock(mu_);
      conn_cv_.wait(lock, [this] { return stopping_ || current_ != nullptr; });
      if (stopping_) return;
      conn = current_;
    }
    const int fd = conn->fd.get();
    for (;;) {
      // An idle connection may stay silent forever; with slices on the wire, no
      // progress for the I/O timeout means the peer is gone or stuck.
      if (!WaitReadable(fd, static_cast<int>(options_.io_timeout_ms))) {
        std::lock_guard<std::mutex> lock(mu_);
        if (current_ != conn) break;
        if (in_flight_.empty() || std::chrono::steady_clock::now() - progress_ < timeout) continue;
      }
      Status s = ReceiveOne(fd);
      if (!s.ok()) {
        if (s.code() == Status::Code::kTimeout) {
          s = Status::Timeout("peer " + options_.host + ":" + std::to_string(options_.port) +
                              " made no progress for " + std::to_string(options_.io_timeout_ms) +
                              " ms");
        }
        Fail(conn, s);
        break;
      }
    }
  }
}

Status TcpChannel::ReceiveOne(int fd) {
  uint8_t raw[wire::kHeaderSize];
  Status s = WaitReadable(fd, 0) ? RecvAll(fd, raw, sizeof(raw)) : Status::Timeout("no response");
  if (!s.ok()) return s;
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
  Status result;
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
            ? RecvAll(fd, slice->local, slice->length)
            : Status::ProtocolError("READ response length differs from the request");
  } else if (h.payload_len != 0) {
    s = Status::ProtocolError("WRITE response with a payload");
  }
  AwaitReleased(slice);
  slice->on_done(slice, s.ok() ? result : s);
  return s;
}

}  // namespace te
