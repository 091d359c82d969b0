#include "info/host_probes.h"

#include <dirent.h>
#include <sys/statvfs.h>

#include <cctype>
#include <fstream>

#include "common/machine.h"
#include "memory/device_memory.h"
#include "transport/transport_registry.h"
#include "transport/ucx/ucx_context.h"

namespace te {

Probe ProbeCma() {
  Probe p{"cma", true, ""};
  std::ifstream yama("/proc/sys/kernel/yama/ptrace_scope");
  int scope = 0;
  if (!(yama >> scope)) {
    p.detail = "no Yama LSM: same-user processes may attach";
    return p;
  }
  p.detail = "Yama ptrace_scope=" + std::to_string(scope);
  if (scope >= 1) {
    // Scope 1 lets only ancestors attach; engines are rarely each other's parents.
    p.usable = false;
    p.detail += scope == 1 ? ": only a process's ancestors may attach to it"
                           : ": only CAP_SYS_PTRACE holders (scope 3: nobody) may attach";
    p.detail += "; the engine probes each peer and falls back to the next transport";
  }
  return p;
}

Probe ProbeShm() {
  struct statvfs fs;
  if (::statvfs("/dev/shm", &fs) != 0) return {"shm", false, "/dev/shm is not mounted"};
  const unsigned long long free_bytes = static_cast<unsigned long long>(fs.f_bavail) * fs.f_frsize;
  const unsigned long long size = static_cast<unsigned long long>(fs.f_blocks) * fs.f_frsize;
  return {"shm", free_bytes > 0,
          "/dev/shm " + std::to_string(size >> 20) + " MiB, " + std::to_string(free_bytes >> 20) +
              " MiB free"};
}

Probe ProbeCuda() {
  if (!DeviceMemoryBuilt()) return {"cuda", false, "this build has no CUDA (-DUSE_CUDA=ON)"};
  const int n = DeviceCount();
  return {"cuda", n > 0, std::to_string(n) + " device(s)"};
}

Probe ProbeUcx(const Config& config) {
  if (!UcxBuilt()) return {"ucx", false, "this build has no UCX (TE_WITH_UCX, libucx-dev)"};
  UcxOptions options;
  options.tls = config.ucx_tls;
  options.net_devices = config.ucx_net_devices;
  UcxInfo info;
  Status s = QueryUcx(options, &info);
  if (!s.ok()) return {"ucx", false, s.ToString()};
  std::string resources;
  for (const std::string& r : info.resources) resources += (resources.empty() ? "" : ", ") + r;
  return {"ucx", !info.resources.empty(),
          "UCX " + info.version + (info.rdma ? ", RDMA device found" : ", no RDMA device") + ": " +
              (resources.empty() ? "no transport/device" : resources)};
}

Probe ProbeNuma() {
  int nodes = 0;
  if (DIR* dir = ::opendir("/sys/devices/system/node")) {
    while (dirent* e = ::readdir(dir)) {
      const std::string name = e->d_name;
      if (name.rfind("node", 0) == 0 && name.size() > 4 && std::isdigit(name[4])) ++nodes;
    }
    ::closedir(dir);
  }
  return {"numa", nodes > 0, std::to_string(nodes) + " node(s)"};
}

Probe ProbeMachineId(const Config& config) {
  const std::string id = config.machine_id.empty() ? ReadMachineId() : config.machine_id;
  return {"machine_id", !id.empty(), id.empty() ? "none (/etc/machine-id unreadable)" : id};
}

Probe ProbeAdvertisedAddress(const Config& config) {
  const bool given = !config.rpc_host.empty() && config.rpc_host != "0.0.0.0";
  const std::string host = given ? config.rpc_host : DefaultAdvertiseAddress();
  return {"address", host != "127.0.0.1" || given,
          host + (given ? " (rpc_host)" : " (first non-loopback IPv4; set rpc_host to choose)")};
}

Probe ProbeClusterSecret(const Config& config) {
  if (config.cluster_secret.empty()) {
    return {"cluster_secret", false, "not set: any peer that reaches the ports is served"};
  }
  if (config.cluster_secret.size() < Config::kMinClusterSecretLength) {
    return {"cluster_secret", false,
            "too short (at least " + std::to_string(Config::kMinClusterSecretLength) + ")"};
  }
  return {"cluster_secret", true, "set"};
}

Probe ProbeMetadataBackends() { return {"metadata", true, "p2p, redis, etcd, http"}; }

std::vector<Probe> ProbeHost(const Config& config) {
  return {ProbeCma(),
          ProbeShm(),
          ProbeCuda(),
          ProbeUcx(config),
          ProbeNuma(),
          ProbeMachineId(config),
          ProbeAdvertisedAddress(config),
          ProbeClusterSecret(config),
          ProbeMetadataBackends()};
}

std::vector<TransportReport> ReportTransports(const std::vector<Probe>& probes) {
  std::vector<TransportReport> rows;
  for (const TransportEntry& e : TransportTable()) {
    TransportReport r{e.name,  TransportReachName(e.reach),
                      e.built, e.built && e.enabled_by_default,
                      e.built, e.built ? "" : "not built into this build"};
    // The feature each transport needs, where a probe judges it.
    const std::string feature = r.name == "cuda_ipc" ? "cuda" : r.name;
    for (const Probe& p : probes) {
      if (e.built && p.name == feature) {
        r.usable = p.usable;
        r.detail = p.detail;
      }
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace te
