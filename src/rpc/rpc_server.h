// The control-plane server every engine runs: answers GET_SEGMENT and NOTIFY (and,
// later, more opcodes) on connections that said HELLO for the "rpc" channel.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "common/connection_server.h"
#include "metrics/engine_metrics.h"
#include "rpc/handshake.h"
#include "rpc/wire.h"

namespace te {

class RpcServer {
 public:
  // Gets the request payload and the caller's segment name; fills the response.
  using Method = std::function<Status(const std::string& peer, const std::string& request,
                                      std::string* response)>;

  // Counts refused handshakes there (optional); before Start.
  void set_metrics(EngineMetrics* metrics) { metrics_ = metrics; }
  // Register every method before Start.
  void Register(wire::Opcode opcode, Method method) { methods_[opcode] = std::move(method); }
  // With a non-empty secret, only clients that prove it are served.
  Status Start(const std::string& host, uint16_t port, const std::string& secret);
  uint16_t port() const { return server_.port(); }
  void Stop() { server_.Stop(); }

 private:
  void Serve(int fd);

  std::map<wire::Opcode, Method> methods_;
  std::string secret_;
  EngineMetrics* metrics_ = nullptr;
  ConnectionServer server_;
};

}  // namespace te
