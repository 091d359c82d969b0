#include "transport/tcp/tcp_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/logging.h"
#include "common/tsan_annotations.h"
#include "memory/memory.h"
#include "rpc/handshake.h"
#include "rpc/wire.h"
#include "transport/tcp/payload_io.h"

namespace te {
namespace {
using Clock = std::chrono::steady_clock;
// Requests one connection serves before the other sockets of its I/O thread go.
constexpr int kRequestsPerTurn = 64;

}  // namespace

struct TcpServer::Shared {
  TcpServerOptions options;
  IoLoop* loop = nullptr;
  uint64_t owner = 0;  // of every registration in loop
  HandshakePool* pool = nullptr;
  std::atomic<uint32_t> live{0};  // data connections served now
  std::atomic<bool> limit_logged{false};
};

namespace {

// One data connection: a request at a time, each in up to three phases (header,
// WRITE payload, reply), each resumed where the socket would block.
class DataConnection : public IoHandler, public std::enable_shared_from_this<DataConnection> {
 public:
  DataConnection(uint64_t id, UniqueFd fd, std::string peer,
                 std::shared_ptr<TcpServer::Shared> shared)
      : id_(id),
        fd_(std::move(fd)),
        peer_(std::move(peer)),
        shared_(std::move(shared)),
        reader_(shared_->options.registry),
        open_(shared_->options.metrics ? shared_->options.metrics->Connections("tcp", true)
                                       : nullptr) {
    progress_ns_ = SteadyNowNs();
  }
  ~DataConnection() override { shared_->live.fetch_sub(1, std::memory_order_relaxed); }

  void OnEvents(uint32_t events) override;
  void OnTick(Clock::time_point now) override;

 private:
  enum class Phase { kHeader, kPayload, kReply };

  // Serves until the socket would block (false) or the turn is used up (true).
  Status Serve(bool* more);
  // Moves the current phase on; *blocked when the socket would block, *answered once
  // a reply went out whole.
  Status Step(bool* blocked, bool* answered);
  // A request's header came: checks it and picks the next phase.
  Status StartRequest();
  // Fills in_ from the socket until it holds a whole header; *blocked when it would block.
  Status ReceiveHeader(bool* blocked);
  // Moves up to n received bytes of in_ to `to` (nullptr: drops them); how many.
  size_t TakeInput(char* to, uint64_t n);
  // Receives up to len bytes; none (*got 0) when the socket has no more.
  Status Receive(void* to, size_t len, size_t* got);
  // The same into two buffers in turn (the second may be empty).
  Status ReceiveInto(iovec (&iov)[2], size_t* got);
  Status ReceivePayload(bool* blocked);
  void PrepareReply(const Status& verdict);
  // The next request came with this one (its header, and a WRITE's whole payload):
  // its reply can follow this one's with nothing to wait for.
  bool NextReplyFollowsAtOnce() const;
  Status SendReply(bool* blocked);
  void Close(const Status& why);
  EngineMetrics* metrics() const { return shared_->options.metrics; }

  const uint64_t id_;
  UniqueFd fd_;
  const std::string peer_;
  const std::shared_ptr<TcpServer::Shared> shared_;
  BufferRegistry::Reader reader_;
  const GaugeHold open_;
  bool closed_ = false;
  int64_t progress_ns_ = 0;
  bool rto_settled_ = false;  // SetMinRtoOnceRetransmitted has nothing left to do
  // A receive came back short: the socket had nothing more then, and input arriving
  // since brings an event (edge-triggered), so the next receive waits for that rather
  // than asking the socket only to hear EAGAIN (a system call per request). Not once the
  // peer hung up: its end of stream came with that event and brings no other.
  bool input_drained_ = false;
  bool hung_up_ = false;

  Phase phase_ = Phase::kHeader;
  // Input read ahead, so that pipelined requests' headers come in one recv; a WRITE's
  // payload bytes read with them are moved out of it (TakeInput).
  char in_[64 * wire::kHeaderSize];
  size_t in_begin_ = 0, in_end_ = 0;
  wire::FrameHeader request_;
  BufferPin pin_;
  bool refused_ = false;  // the request was refused: its WRITE payload is discarded
  uint64_t done_ = 0;     // payload bytes received (or discarded)
  uint8_t reply_header_[wire::kHeaderSize];
  std::string reply_text_;
  iovec reply_iov_[2];
  int reply_at_ = 0;
  int reply_count_ = 0;
  bool reply_from_device_ = false;
  bool corked_ = false;  // TCP_CORK: replies that follow at once are going out (SendReply)
};

void DataConnection::OnEvents(uint32_t events) {
  // Every event means: go on reading, or writing, as far as it goes.
  if (closed_) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) input_drained_ = false;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) hung_up_ = true;
  bool more = false;
  Status s = Serve(&more);
  if (!s.ok()) {
    Close(s);
    return;
  }
  if (more) {
    std::weak_ptr<DataConnection> weak = weak_from_this();
    shared_->loop->Post(id_, [weak] {
      if (auto conn = weak.lock()) conn->OnEvents(0);
    });
  }
}

Status DataConnection::Serve(bool* more) {
  int answered = 0;
  for (;;) {
    bool blocked = false, replied = false;
    TE_RETURN_IF_ERROR(Step(&blocked, &replied));
    if (blocked) return Status::OK();
    if (replied && ++answered == kRequestsPerTurn) {
      *more = true;
      return Status::OK();
    }
  }
}

Status DataConnection::Step(bool* blocked, bool* answered) {
  if (phase_ == Phase::kHeader) {
    TE_RETURN_IF_ERROR(ReceiveHeader(blocked));
    return *blocked ? Status::OK() : StartRequest();
  }
  if (phase_ == Phase::kPayload) {
    TE_RETURN_IF_ERROR(ReceivePayload(blocked));
    if (*blocked) return Status::OK();
    if (!refused_) {
      pin_.Release();
      PrepareReply(Status::OK());
    }
    phase_ = Phase::kReply;
  }
  TE_RETURN_IF_ERROR(SendReply(blocked));
  *answered = !*blocked;
  return Status::OK();
}

Status DataConnection::ReceiveHeader(bool* blocked) {
  while (in_end_ - in_begin_ < wire::kHeaderSize) {
    if (in_begin_ > 0) {
      std::memmove(in_, in_ + in_begin_, in_end_ - in_begin_);
      in_end_ -= in_begin_;
      in_begin_ = 0;
    }
    size_t got = 0;
    TE_RETURN_IF_ERROR(Receive(in_ + in_end_, sizeof(in_) - in_end_, &got));
    if (got == 0) {
      *blocked = true;
      return Status::OK();
    }
    progress_ns_ = SteadyNowNs();
    in_end_ += got;
  }
  return Status::OK();
}

size_t DataConnection::TakeInput(char* to, uint64_t n) {
  const size_t take = std::min<uint64_t>(n, in_end_ - in_begin_);
  if (to != nullptr && take > 0) {
    TsanHiddenAccesses hidden;  // a WRITE's buffer: its order runs through the peer
    std::memcpy(to, in_ + in_begin_, take);
  }
  in_begin_ += take;
  return take;
}

Status DataConnection::Receive(void* to, size_t len, size_t* got) {
  iovec iov[2] = {{to, len}, {nullptr, 0}};
  return ReceiveInto(iov, got);
}

Status DataConnection::ReceiveInto(iovec (&iov)[2], size_t* got) {
  *got = 0;
  if (input_drained_ && !hung_up_) return Status::OK();
  const int count = iov[1].iov_len > 0 ? 2 : 1;
  TE_RETURN_IF_ERROR(RecvSome(fd_.get(), iov, count, got));
  input_drained_ = *got < iov[0].iov_len + iov[1].iov_len;
  return Status::OK();
}

Status DataConnection::StartRequest() {
  TE_RETURN_IF_ERROR(
      wire::DecodeHeader(reinterpret_cast<const uint8_t*>(in_ + in_begin_), &request_));
  in_begin_ += wire::kHeaderSize;
  const wire::FrameHeader& h = request_;
  if (h.is_response() || (h.opcode != wire::Opcode::kRead && h.opcode != wire::Opcode::kWrite)) {
    return Status::ProtocolError("unexpected frame on a data connection");
  }
  const bool is_read = h.opcode == wire::Opcode::kRead;
  // The wire allows a READ request a small control payload; a data connection has no
  // use for one, and it would be received at `addr`, into memory pinned only for reading.
  if (is_read && h.payload_len != 0) {
    return Status::ProtocolError("a READ request with a payload on a data connection");
  }
  const Status verdict =
      h.length == 0 ? Status::InvalidArgument("zero-length request")
                    : reader_.Pin(h.addr, h.length,
                                  is_read ? Access::kRemoteRead : Access::kRemoteWrite, &pin_);
  done_ = 0;
  refused_ = !verdict.ok();
  if (refused_) {
    // Still drains a refused WRITE's payload, so the connection stays in step.
    if (metrics()) metrics()->CountRefusal(verdict);
    PrepareReply(verdict);
  } else {
    if (metrics()) metrics()->CountServed(h.length);
    if (is_read) PrepareReply(Status::OK());
  }
  phase_ = h.payload_len > 0 ? Phase::kPayload : Phase::kReply;
  return Status::OK();
}

Status DataConnection::ReceivePayload(bool* blocked) {
  const int fd = fd_.get();
  char* into = reinterpret_cast<char*>(request_.addr);
  if (!refused_ && LocationDevice(pin_.info()->location) != kHostMemory) {
    // Staged through pinned host chunks, with blocking receives: what in_ holds first.
    TE_RETURN_IF_ERROR(StageToDevice(LocationDevice(pin_.info()->location), into, request_.length,
                                     [this, fd](char* chunk, size_t n) {
                                       const size_t had = TakeInput(chunk, n);
                                       return had == n ? Status::OK()
                                                       : RecvAll(fd, chunk + had, n - had);
                                     }));
    done_ = request_.payload_len;
  }
  char sink[16384];
  while (done_ < request_.payload_len) {
    const uint64_t left = request_.payload_len - done_;
    const size_t had = TakeInput(refused_ ? nullptr : into + done_, left);
    if (had > 0) {
      done_ += had;
      continue;
    }
    size_t got = 0;
    if (refused_) {
      TE_RETURN_IF_ERROR(Receive(sink, std::min<uint64_t>(left, sizeof(sink)), &got));
    } else {
      // With the rest of the payload, what follows it (the next request's header): its
      // reply then knows whether another follows (SendReply).
      TsanHiddenAccesses hidden;  // the buffer's order runs through the peer
      iovec iov[2] = {{into + done_, left}, {in_, sizeof(in_)}};
      TE_RETURN_IF_ERROR(ReceiveInto(iov, &got));
    }
    if (got == 0) {
      *blocked = true;
      return Status::OK();
    }
    if (got > left) {
      in_begin_ = 0;
      in_end_ = got - left;
      got = left;
    }
    done_ += got;
    progress_ns_ = SteadyNowNs();
  }
  return Status::OK();
}

void DataConnection::PrepareReply(const Status& verdict) {
  wire::FrameHeader reply;
  reply.opcode = request_.opcode;
  reply.flags = wire::kFlagResponse;
  reply.request_id = request_.request_id;
  reply.status = static_cast<uint16_t>(verdict.code());
  reply_count_ = 1;
  reply_from_device_ = false;
  if (!verdict.ok()) {
    reply_text_ = verdict.message().substr(0, wire::kMaxDataErrorText);
    reply.payload_len = reply_text_.size();
    reply_iov_[1] = {reply_text_.data(), reply_text_.size()};
    reply_count_ = reply_text_.empty() ? 1 : 2;
  } else {
    reply.length = request_.length;
    if (request_.opcode == wire::Opcode::kRead) {
      reply.payload_len = request_.length;
      reply_from_device_ = LocationDevice(pin_.info()->location) != kHostMemory;
      if (!reply_from_device_) {
        reply_iov_[1] = {reinterpret_cast<char*>(request_.addr), request_.length};
        reply_count_ = 2;
      }
    }
  }
  wire::EncodeHeader(reply, reply_header_);
  reply_iov_[0] = {reply_header_, sizeof(reply_header_)};
  reply_at_ = 0;
}

bool DataConnection::NextReplyFollowsAtOnce() const {
  const size_t buffered = in_end_ - in_begin_;
  wire::FrameHeader next;
  if (buffered < wire::kHeaderSize ||
      !wire::DecodeHeader(reinterpret_cast<const uint8_t*>(in_ + in_begin_), &next).ok() ||
      next.is_response()) {
    return false;
  }
  if (next.opcode == wire::Opcode::kRead) return true;
  // A WRITE's reply waits for its payload: only if all of it is here already.
  int queued = 0;
  return ::ioctl(fd_.get(), FIONREAD, &queued) == 0 &&
         buffered - wire::kHeaderSize + static_cast<uint64_t>(queued) >= next.payload_len;
}

Status DataConnection::SendReply(bool* blocked) {
  iovec* iov = reply_iov_ + reply_at_;
  int count = reply_count_ - reply_at_;
  // While replies follow one another at once (NextReplyFollowsAtOnce) the socket is
  // corked, so that the kernel holds each one's last partial segment for the next.
  // Else a 64 KiB READ reply with its header is a full segment and a tiny one
  // (TCP_NODELAY), and each WRITE's reply a tiny one: more packets, and receiver
  // wake-ups, than one stream. Not MSG_MORE: an ACK arriving while this thread is
  // preempted between two replies (a loaded machine) pushes a fragment held that way.
  const bool follows = NextReplyFollowsAtOnce();
  if (follows && !corked_) corked_ = SetCork(fd_.get(), true);
  {
    TsanHiddenAccesses hidden;  // a READ's buffer: its order runs through the peer
    TE_RETURN_IF_ERROR(SendSome(fd_.get(), &iov, &count));
  }
  reply_at_ = reply_count_ - count;
  progress_ns_ = SteadyNowNs();
  if (count > 0) {
    *blocked = true;  // an EPOLLOUT goes on
    return Status::OK();
  }
  if (reply_from_device_) {
    // Staged through pinned host chunks, with blocking sends (payload_io.h).
    TE_RETURN_IF_ERROR(SendPayload(fd_.get(), LocationDevice(pin_.info()->location),
                                   reinterpret_cast<char*>(request_.addr), request_.length));
  }
  if (corked_ && !follows) corked_ = !SetCork(fd_.get(), false);  // the last goes out now
  pin_.Release();
  phase_ = Phase::kHeader;
  return Status::OK();
}

void DataConnection::OnTick(Clock::time_point now) {
  if (closed_) return;
  const auto since = std::chrono::nanoseconds(SteadyNs(now) - progress_ns_);
  if (!rto_settled_ && since.count() < kRetransmitCheckNs) {
    rto_settled_ = SetMinRtoOnceRetransmitted(fd_.get(), shared_->options.tuning);
  }
  if (phase_ == Phase::kHeader && in_begin_ == in_end_) return;  // idle: may stay so
  if (since > std::chrono::milliseconds(shared_->options.io_timeout_ms)) {
    Close(Status::Timeout("no progress for " + std::to_string(shared_->options.io_timeout_ms) +
                          " ms"));
  }
}

void DataConnection::Close(const Status& why) {
  closed_ = true;
  if (why.code() != Status::Code::kUnavailable) {
    TE_LOG(Info) << "tcp: closing data connection from '" << peer_ << "': " << why.ToString();
  }
  pin_.Release();
  ::shutdown(fd_.get(), SHUT_RDWR);
  shared_->loop->Remove(id_);
}

// Accepts connections and hands each to the handshake pool.
class Listener : public IoHandler {
 public:
  Listener(UniqueFd fd, std::shared_ptr<TcpServer::Shared> shared)
      : fd_(std::move(fd)), shared_(std::move(shared)) {}
  void OnEvents(uint32_t events) override;
  void OnTick(Clock::time_point) override {}
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  const std::shared_ptr<TcpServer::Shared> shared_;
};

// In the handshake pool: the HELLO, then the connection goes to the I/O threads.
void Welcome(std::shared_ptr<UniqueFd> fd, const std::shared_ptr<TcpServer::Shared>& shared) {
  const TcpServerOptions& o = shared->options;
  SetIoTimeout(fd->get(), o.handshake_timeout_ms);
  const uint32_t live = shared->live.fetch_add(1, std::memory_order_relaxed) + 1;
  if (live > o.max_connections) {
    shared->live.fetch_sub(1, std::memory_order_relaxed);
    const Status why = Status::ResourceExhausted(
        "target serves at most " + std::to_string(o.max_connections) +
        " tcp data connections (its open-file limit); refused " + PeerAddress(fd->get()));
    if (!shared->limit_logged.exchange(true)) TE_LOG(Warning) << "tcp: " << why.message();
    if (o.metrics) o.metrics->CountRefusal(why);
    wire::RefuseHello(fd->get(), why);
    return;
  }
  std::string peer;
  Status s = wire::ServerHello(fd->get(), wire::kChannelTcpData, o.secret, &peer);
  if (s.ok()) s = SetIoTimeout(fd->get(), o.io_timeout_ms);
  if (!s.ok()) {
    shared->live.fetch_sub(1, std::memory_order_relaxed);
    if (o.metrics && s.code() == Status::Code::kPermissionDenied) {
      o.metrics->CountRefusal(Refusal::kAuthentication);
    }
    wire::LogRefusedHandshake("tcp", fd->get(), s);
    return;
  }
  const int raw = fd->get();  // tuned as the listener was (TcpServer::Start)
  const uint64_t id = shared->loop->NewId();
  auto conn = std::make_shared<DataConnection>(id, std::move(*fd), std::move(peer), shared);
  shared->loop->Add(shared->owner, id, raw, std::move(conn));  // dropped if the owner ended
}

void Listener::OnEvents(uint32_t events) {
  (void)events;
  for (;;) {
    const int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK && !shared_->limit_logged.exchange(true)) {
        TE_LOG(Warning) << "tcp: accept: " << std::strerror(errno);
      }
      return;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto owned = std::make_shared<UniqueFd>(fd);
    std::shared_ptr<TcpServer::Shared> shared = shared_;
    if (!shared_->pool->TryRun([owned, shared] { Welcome(owned, shared); })) {
      TE_LOG(Info) << "tcp: too many handshakes waiting; closed " << PeerAddress(fd);
    }
  }
}

}  // namespace

uint32_t TcpServer::ConnectionLimit() {
  // Room for the engine's other files, its own initiator sockets among them.
  constexpr rlim_t kReserve = 256;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 1 << 20;
  return static_cast<uint32_t>(std::clamp<rlim_t>(
      limit.rlim_cur > 2 * kReserve ? limit.rlim_cur - kReserve : limit.rlim_cur / 2, 16, 1 << 20));
}

Status TcpServer::Start(const std::string& host, TcpServerOptions options, IoLoop* loop,
                        uint64_t owner, HandshakePool* pool) {
  UniqueFd fd;
  TE_RETURN_IF_ERROR(
      Listen(host, 0, &fd, &port_, [&options](int raw) { TuneDataSocket(raw, options.tuning); }));
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
  shared_ = std::make_shared<Shared>();
  shared_->options = std::move(options);
  shared_->loop = loop;
  shared_->owner = owner;
  shared_->pool = pool;
  const int raw = fd.get();
  listener_id_ = loop->NewId();
  return loop->Add(owner, listener_id_, raw, std::make_shared<Listener>(std::move(fd), shared_));
}

void TcpServer::Stop() {
  if (!shared_) return;
  shared_->loop->Remove(listener_id_);
  shared_.reset();
}

}  // namespace te
