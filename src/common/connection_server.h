// Accepts TCP connections and runs a handler for each in its own thread. Used by the
// RPC server and by the TCP transport's serving side.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/socket.h"
#include "te/status.h"

namespace te {

class ConnectionServer {
 public:
  // Runs until the peer leaves or Stop() shuts the socket down; the server closes fd.
  using Handler = std::function<void(int fd)>;

  ConnectionServer() = default;
  ~ConnectionServer() { Stop(); }
  ConnectionServer(const ConnectionServer&) = delete;
  ConnectionServer& operator=(const ConnectionServer&) = delete;

  // Binds host:port (port 0: any) and starts accepting. Beyond max_connections live
  // connections, new ones are closed at once.
  Status Start(const std::string& host, uint16_t port, uint32_t max_connections, Handler handler);
  uint16_t port() const { return port_; }
  // Stops accepting, shuts every connection down and waits for handlers to return.
  void Stop();

 private:
  void AcceptLoop();

  UniqueFd listener_;
  uint16_t port_ = 0;
  uint32_t max_connections_ = 0;
  Handler handler_;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable drained_;
  std::set<int> live_fds_;  // guarded by mu_
};

}  // namespace te
