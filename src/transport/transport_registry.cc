#include "transport/transport_registry.h"

#include "memory/device_memory.h"
#include "transport/cma/cma_transport.h"
#include "transport/cuda_ipc/cuda_ipc_transport.h"
#include "transport/local/local_transport.h"
#include "transport/shm/shm_transport.h"
#include "transport/tcp/tcp_transport.h"
#include "transport/ucx/ucx_transport.h"

namespace te {
namespace {

template <typename T>
std::unique_ptr<Transport> Make() {
  return std::make_unique<T>();
}

// Whether UCX lists a verbs transport on any device (UCX_NET_DEVICES in the
// environment still narrows what the engine later uses).
bool UcxSeesRdma() {
  UcxInfo info;
  return QueryUcx(UcxOptions{}, &info).ok() && info.rdma;
}

std::vector<TransportEntry> BuildTable() {
  const bool cuda = DeviceMemoryBuilt();
  const bool ucx = UcxBuilt();
  using R = TransportReach;
  return {
      // {name, reach, built, enabled by default, factory, legacy per-buffer key}
      {"local", R::kSameProcess, true, true, &Make<LocalTransport>, nullptr},
      {"cuda_ipc", R::kSameHost, cuda, true, cuda ? &Make<CudaIpcTransport> : nullptr,
       "device_handle"},
      {"shm", R::kSameHost, true, true, &Make<ShmTransport>, nullptr},
      {"cma", R::kSameHost, true, true, &Make<CmaTransport>, nullptr},
      // Before tcp: where UCX sees an RDMA device it is on by default and carries
      // traffic to other hosts (same-host peers keep the rows above). Elsewhere only
      // when asked for; a build without UCX knows the name and says NotSupported.
      {"ucx", R::kAnyHost, ucx, ucx && UcxSeesRdma(), ucx ? &Make<UcxTransport> : nullptr, nullptr},
      {"tcp", R::kAnyHost, true, true, &Make<TcpTransport>, nullptr},
  };
}

}  // namespace

const char* TransportReachName(TransportReach reach) {
  switch (reach) {
    case TransportReach::kSameProcess:
      return "same process";
    case TransportReach::kSameHost:
      return "same host";
    case TransportReach::kAnyHost:
      return "any host";
  }
  return "unknown";
}

const std::vector<TransportEntry>& TransportTable() {
  static const std::vector<TransportEntry> table = BuildTable();
  return table;
}

const TransportEntry* FindTransport(const std::string& name) {
  for (const TransportEntry& e : TransportTable()) {
    if (name == e.name) return &e;
  }
  return nullptr;
}

std::string BuiltTransportNames() {
  std::string names;
  for (const TransportEntry& e : TransportTable()) {
    if (!e.built) continue;
    if (!names.empty()) names += ", ";
    names += e.name;
  }
  return names;
}

Status CheckTransportBuilt(const std::string& name) {
  const TransportEntry* e = FindTransport(name);
  if (e && e->built) return Status::OK();
  return Status::NotSupported("transport '" + name + "' " +
                              (e ? "is not built into this build" : "is unknown") +
                              " (this build has " + BuiltTransportNames() + ")");
}

Status CreateTransport(const std::string& name, std::unique_ptr<Transport>* out) {
  TE_RETURN_IF_ERROR(CheckTransportBuilt(name));
  *out = FindTransport(name)->create();
  return Status::OK();
}

std::vector<LegacyBufferKey> LegacyBufferKeys() {
  std::vector<LegacyBufferKey> keys;
  for (const TransportEntry& e : TransportTable()) {
    if (e.legacy_buffer_key) keys.push_back({e.legacy_buffer_key, e.name});
  }
  return keys;
}

}  // namespace te
