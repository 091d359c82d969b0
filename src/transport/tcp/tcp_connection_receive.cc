// TcpConnection's receive side: the reader role (an I/O thread's, or a waiter's in
// ReceiveFor), responses matched to requests in order, payloads received in place.
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>

#include "common/logging.h"
#include "transport/tcp/payload_io.h"
#include "transport/tcp/tcp_connection.h"
#include "transport/tcp/tcp_connection_socket.h"

namespace te {
namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

void TcpConnection::ReadFromLoop() {
  for (;;) {
    std::shared_ptr<Socket> sock;
    {
      MutexLock lock(&mu_);
      if (reader_ != Reader::kNone) {
        read_again_ = true;  // for the waiter that reads, when it leaves
        return;
      }
      if (!socket_) return;
      sock = socket_;
      reader_ = Reader::kLoop;
      read_again_ = false;
    }
    ReadAvailable(sock, nullptr);
    if (!ReleaseReader(sock)) return;
  }
}

bool TcpConnection::ReleaseReader(const std::shared_ptr<Socket>& sock) {
  Slice* orphan = nullptr;
  Status why;
  bool read_more;
  {
    MutexLock lock(&mu_);
    reader_ = Reader::kNone;
    awaited_in_flight_ = 0;  // a waiter leaving leaves what is on the wire to the loop
    if (socket_ == sock) {
      WatchFor(sock, true);  // input again, if a waiter read
    } else {
      // The socket failed while this reader held a response half received.
      orphan = pending_receive_.slice;
      pending_receive_ = PendingReceive{};
      why = failure_;
    }
    // A whole header read with the last payload: no event tells anyone of it.
    read_more = socket_ == sock && (read_again_ || HeaderBuffered());
    read_again_ = false;
  }
  if (orphan) {
    AwaitReleased(orphan);
    Done(orphan, why);
  }
  return read_more;
}

TcpConnection::ReadResult TcpConnection::ReadAvailable(const std::shared_ptr<Socket>& sock,
                                                       const std::function<bool()>& stop,
                                                       bool wait_for_header) {
  PendingReceive& r = pending_receive_;
  // A receive came back short: the socket has no more now, and input arriving later
  // brings an event (or the waiter's next wait), so asking again would only hear EAGAIN.
  bool drained = false;
  for (;;) {
    Status s;
    if (!r.slice) {
      if (r.buffered() < wire::kHeaderSize) {  // else it came with earlier bytes
        if (drained && !sock->hung_up.load()) return ReadResult::kWouldBlock;
        std::memmove(r.input, r.input + r.at, r.buffered());
        r.end -= r.at;
        r.at = 0;
        size_t got = 0;
        uint8_t* to = r.input + r.end;
        const size_t room = sizeof(r.input) - r.end;
        s = wait_for_header ? RecvWaiting(sock->fd.get(), to, room, &got)
                            : RecvSome(sock->fd.get(), to, room, &got);
        wait_for_header = false;
        if (s.ok() && got == 0) return ReadResult::kWouldBlock;
        drained = got < room;
        r.end += got;
        if (s.ok() && r.buffered() < wire::kHeaderSize) continue;
      }
      if (s.ok()) {
        s = wire::DecodeHeader(r.input + r.at, &r.frame);
        r.at += wire::kHeaderSize;
      }
      if (s.ok()) {
        MutexLock lock(&mu_);
        s = TakeResponse();
      }
    }
    bool complete = false;
    Status outcome;
    if (s.ok()) s = ReadPayload(sock, &complete, &outcome, &drained);
    if (!s.ok()) {
      Fail(sock, s);
      return ReadResult::kFailed;
    }
    if (!complete) return ReadResult::kWouldBlock;
    FinishResponse(outcome);
    if (stop && stop()) return ReadResult::kStopped;
  }
}

Status TcpConnection::TakeResponse() {
  PendingReceive& r = pending_receive_;
  if (in_flight_.empty() || !r.frame.is_response() ||
      in_flight_.front()->transport_tag != r.frame.request_id) {
    return Status::ProtocolError("unexpected response id " + std::to_string(r.frame.request_id));
  }
  // Off the in-flight list before its bytes land, so that a concurrent Fail() cannot
  // report the slice done while this reader still writes into its destination.
  r.slice = in_flight_.front();
  in_flight_.pop_front();
  if (r.slice->awaited.load(std::memory_order_relaxed) && awaited_in_flight_ > 0) {
    --awaited_in_flight_;
  }
  progress_ns_.store(SteadyNowNs(), std::memory_order_relaxed);
  return Status::OK();
}

Status TcpConnection::ReadPayload(const std::shared_ptr<Socket>& sock, bool* complete,
                                  Status* outcome, bool* drained) {
  PendingReceive& r = pending_receive_;
  const wire::FrameHeader& h = r.frame;
  Slice* slice = r.slice;
  const int fd = sock->fd.get();
  char* into = nullptr;
  if (h.status != 0) {
    if (h.payload_len > wire::kMaxDataErrorText)
      return Status::ProtocolError("oversized error text");
    r.text.resize(h.payload_len);
    into = r.text.data();
  } else if (slice->opcode == Request::READ) {
    if (h.payload_len != slice->length) {
      return Status::ProtocolError("READ response length differs from the request");
    }
    into = slice->local;
  } else if (h.payload_len != 0) {
    return Status::ProtocolError("WRITE response with a payload");
  }
  const bool device = into == slice->local && slice->local_device != kHostMemory;
  if (r.done < h.payload_len && r.buffered() > 0) {  // what came with the header
    const size_t n = std::min<uint64_t>(r.buffered(), h.payload_len - r.done);
    if (device) {
      TE_RETURN_IF_ERROR(CopyMemory(into + r.done, r.input + r.at, n));
    } else {
      std::memcpy(into + r.done, r.input + r.at, n);
    }
    r.at += n;
    r.done += n;
  }
  if (device && r.done < h.payload_len) {
    // Staged through pinned host chunks, with blocking receives (payload_io.h).
    TE_RETURN_IF_ERROR(RecvPayload(fd, slice->local_device, into + r.done, h.payload_len - r.done));
    r.done = h.payload_len;
  }
  if (r.done < h.payload_len) r.at = r.end = 0;  // all of it went into the payload
  while (r.done < h.payload_len) {
    // With the rest of the payload, the next response's header: one recv a response.
    const uint64_t left = h.payload_len - r.done;
    iovec iov[2] = {{into + r.done, left}, {r.input, wire::kHeaderSize}};
    size_t got = 0;
    TE_RETURN_IF_ERROR(RecvSome(fd, iov, 2, &got));
    if (got == 0) return Status::OK();  // would block: *complete stays false
    *drained = got < left + wire::kHeaderSize;
    if (got > left) {
      r.end = got - left;
      got = left;
    }
    r.done += got;
    progress_ns_.store(SteadyNowNs(), std::memory_order_relaxed);
    if (*drained && !sock->hung_up.load() && r.done < h.payload_len) return Status::OK();
  }
  *complete = true;
  if (h.status != 0) *outcome = wire::ResponseStatus(h, r.text);
  return Status::OK();
}

void TcpConnection::FinishResponse(const Status& status) {
  PendingReceive& r = pending_receive_;
  Slice* slice = r.slice;
  r.done = 0;
  r.text.clear();
  {
    // Under mu_, since the tick and Idle() read .slice to tell whether a response is due.
    MutexLock lock(&mu_);
    r.slice = nullptr;
  }
  // A READ request's send reads only its header, never the caller's buffer.
  if (slice->opcode == Request::WRITE) AwaitReleased(slice);
  Done(slice, status);
}

bool TcpConnection::ReceiveFor(const std::function<bool()>& done, Clock::time_point deadline) {
  std::shared_ptr<Socket> sock;
  {
    MutexLock lock(&mu_);
    if (closed_ || !socket_ || reader_ != Reader::kNone) return false;
    if (in_flight_.empty() && !pending_receive_.slice) return false;
    reader_ = Reader::kWaiter;
    sock = socket_;
    WatchFor(sock, true);
  }
  bool received = false;
  const auto receive_timeout = std::chrono::milliseconds(options_.io_timeout_ms);
  auto poll_until = Clock::now() + options_.busy_poll;
  while (!done()) {
    const auto now = Clock::now();
    const auto left = deadline - now;
    if (left <= Clock::duration::zero()) break;
    const bool polling = now < poll_until;
    // Between responses, with the deadline past the socket's receive timeout, the
    // header's recv itself waits: a system call less than poll and then recv.
    const bool wait_in_recv = !polling && options_.io_timeout_ms > 0 && left >= receive_timeout &&
                              !pending_receive_.slice && !HeaderBuffered();
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    if (!wait_in_recv && !HeaderBuffered() &&
        !WaitReadable(sock->fd.get(), polling ? 0 : std::min<int64_t>(ms, 1000000))) {
      if (polling) sched_yield();  // the sender may need this very CPU
      continue;
    }
    const ReadResult result = ReadAvailable(sock, done, wait_in_recv);
    received = true;
    poll_until = Clock::now() + options_.busy_poll;
    if (result == ReadResult::kFailed) break;
    MutexLock lock(&mu_);
    if (socket_ != sock || (in_flight_.empty() && !pending_receive_.slice)) break;
  }
  SpareLoopWakeUp(sock);
  if (ReleaseReader(sock)) PostToLoop(sock->loop_id, &TcpConnection::ReadFromLoop);
  return received;
}

}  // namespace te
