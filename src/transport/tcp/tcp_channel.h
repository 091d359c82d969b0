// TcpChannel: one initiator-side connection to a peer's TCP data port. A sender thread
// writes queued slices (headers and WRITE payloads gathered into one sendmsg); a
// receiver thread reads responses in order and lands READ data straight in the
// destination. The connection opens lazily and reopens after a failure; a failure
// ends every slice on the wire with the error, while queued ones wait for the next
// connection.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/socket.h"
#include "rpc/handshake.h"
#include "transport/transport.h"

namespace te {

struct TcpChannelOptions {
  std::string host;
  uint16_t port = 0;
  wire::Credentials self;  // proven to the peer in each connection's HELLO
  uint32_t connect_timeout_ms = 3000;
  uint32_t io_timeout_ms = 5000;
};

class TcpChannel {
 public:
  explicit TcpChannel(TcpChannelOptions options);
  ~TcpChannel();  // fails queued and in-flight slices with kCancelled
  TcpChannel(const TcpChannel&) = delete;
  TcpChannel& operator=(const TcpChannel&) = delete;

  // Appends a chain of slices linked through Slice::next.
  void Enqueue(Slice* head, Slice* tail);

 private:
  struct Connection {
    UniqueFd fd;
  };

  void SendLoop();
  void ReceiveLoop();
  Status ReceiveOne(int fd);
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
  std::condition_variable conn_cv_;   // receiver: a connection is up or stopping
  Slice* queue_head_ = nullptr;       // guarded by mu_
  Slice* queue_tail_ = nullptr;
  std::deque<Slice*> in_flight_;  // guarded by mu_; sent, awaiting response
  // Guarded by mu_: when in_flight_ last became non-empty or last got a response.
  std::chrono::steady_clock::time_point progress_;
  std::shared_ptr<Connection> current_;  // guarded by mu_
  uint64_t next_request_id_ = 1;         // sender thread only
  // Highest request id whose bytes the sender no longer reads (sent, or its send
  // failed). A slice completes only once its id is covered, so the caller never gets
  // its buffer back while sendmsg may still read it.
  std::atomic<uint64_t> released_id_{0};
  bool stopping_ = false;
  std::thread sender_;
  std::thread receiver_;
};

}  // namespace te
