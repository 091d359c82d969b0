// What this host offers the engine, probe by probe, for transfer_engine_info. Each
// probe says whether its feature is usable here and, when not, why. They are plain
// functions so that a table of transports can call them by name later.
#pragma once

#include <string>
#include <vector>

#include "te/config.h"

namespace te {

struct Probe {
  std::string name;  // "cma", "shm", "cuda", "numa", ...
  bool usable = false;
  std::string detail;  // what was found, or why it is not usable
};

// Cross-memory attach: the kernel's Yama ptrace scope decides whether one process
// may process_vm_readv another of the same user.
Probe ProbeCma();
// POSIX shared memory: /dev/shm mounted and its free space.
Probe ProbeShm();
// CUDA devices (a build without CUDA says so).
Probe ProbeCuda();
// UCX: its version and transports/devices, and which of them are RDMA (verbs); a
// build without UCX says so. Uses config's ucx_tls and ucx_net_devices.
Probe ProbeUcx(const Config& config);
Probe ProbeNuma();
Probe ProbeMachineId(const Config& config);
// The address peers would be told (rpc_host, or this host's default).
Probe ProbeAdvertisedAddress(const Config& config);
Probe ProbeClusterSecret(const Config& config);
// The metadata backends this build has.
Probe ProbeMetadataBackends();

// Every probe above, in that order.
std::vector<Probe> ProbeHost(const Config& config);

// One row of the transport table as this host sees it: built into this build, on by
// default, and usable here (from the probe of the same feature: cma, shm, ucx, cuda).
struct TransportReport {
  std::string name;
  std::string reach;  // "same process", "same host", "any host"
  bool built = false;
  bool on_by_default = false;
  bool usable = false;
  std::string detail;  // why not, or what was found
};

// Every row of the transport table, in its order, judged by `probes` (ProbeHost).
std::vector<TransportReport> ReportTransports(const std::vector<Probe>& probes);

}  // namespace te
