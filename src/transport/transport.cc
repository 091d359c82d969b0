#include "transport/transport.h"

#include "transport/local/local_transport.h"
#include "transport/tcp/tcp_transport.h"

namespace te {

std::unique_ptr<Transport> CreateTransport(const std::string& name) {
  if (name == "local") return std::make_unique<LocalTransport>();
  if (name == "tcp") return std::make_unique<TcpTransport>();
  return nullptr;
}

}  // namespace te
