#include "transport/transport.h"

#include "memory/device_memory.h"
#include "transport/cma/cma_transport.h"
#include "transport/cuda_ipc/cuda_ipc_transport.h"
#include "transport/local/local_transport.h"
#include "transport/shm/shm_transport.h"
#include "transport/tcp/tcp_transport.h"

namespace te {

std::unique_ptr<Transport> CreateTransport(const std::string& name) {
  if (name == "local") return std::make_unique<LocalTransport>();
  if (name == "cuda_ipc" && DeviceMemoryBuilt()) return std::make_unique<CudaIpcTransport>();
  if (name == "shm") return std::make_unique<ShmTransport>();
  if (name == "cma") return std::make_unique<CmaTransport>();
  if (name == "tcp") return std::make_unique<TcpTransport>();
  return nullptr;
}

// Beside CreateTransport, so that a new transport is one edit of this file.
std::vector<std::string> Config::BuiltTransports() {
  std::vector<std::string> names{"local", "shm", "cma", "tcp"};
  if (DeviceMemoryBuilt()) names.insert(names.begin() + 1, "cuda_ipc");
  return names;
}

}  // namespace te
