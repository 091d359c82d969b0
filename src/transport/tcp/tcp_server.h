// The serving side of the TCP transport, on the transport's I/O threads: a listener
// that accepts data connections (HELLO in the handshake pool), and per connection a
// handler that reads requests in order, checks each against the registered buffers
// before any byte moves, and answers. WRITE payloads are received straight into the
// destination and READ data is sent straight from the source; neither blocks an I/O
// thread on a slow peer (device memory is the exception: its bytes are staged through
// pinned chunks with blocking, timeout-bounded sends and receives).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/socket.h"
#include "memory/buffer_registry.h"
#include "metrics/engine_metrics.h"
#include "transport/tcp/handshake_pool.h"
#include "transport/tcp/io_loop.h"

namespace te {

struct TcpServerOptions {
  BufferRegistry* registry = nullptr;
  std::string secret;  // non-empty: only clients that prove it are served
  uint32_t handshake_timeout_ms = 3000;
  uint32_t io_timeout_ms = 5000;  // a request stuck this long closes its connection
  // Beyond this many data connections, new ones are refused with a reason.
  uint32_t max_connections = 0;
  EngineMetrics* metrics = nullptr;  // served requests, refusals, connections; may be null
  DataSocketTuning tuning;           // of data connections (ResolveDataSocketTuning)
};

class TcpServer {
 public:
  TcpServer() = default;
  ~TcpServer() { Stop(); }
  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;

  // Binds host (port 0: any) and serves on loop, the listener and every connection
  // registered as owner's; handshakes run in pool.
  Status Start(const std::string& host, TcpServerOptions options, IoLoop* loop, uint64_t owner,
               HandshakePool* pool);
  uint16_t port() const { return port_; }
  // Stops accepting. Connections end with their owner (IoLoop::RemoveAll), after the
  // pool's last HELLO (HandshakePool::Stop), as that may add one.
  void Stop();
  // What a target may serve: the open-file limit, less room for everything else.
  static uint32_t ConnectionLimit();

  struct Shared;  // what the listener and the connections use

 private:
  std::shared_ptr<Shared> shared_;
  uint64_t listener_id_ = 0;
  uint16_t port_ = 0;
};

}  // namespace te
