// Config: everything an engine is built from. Load it from code, a JSON file or the
// environment; later sources override earlier ones field by field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "te/status.h"

namespace te {

struct Config {
  // Segment discovery: "p2p" (no server; the segment name is the RPC "host:port"),
  // "redis", "etcd" or "http".
  std::string metadata_type = "p2p";
  // Comma-separated servers for the central backends; unused by p2p.
  std::string metadata_servers;
  // Name peers open this engine's segment by. p2p: empty, "host" or "host:port"
  // (it then also sets rpc_host/rpc_port); the final name is always "host:port".
  std::string local_segment_name;
  // Address the RPC server binds and advertises. Empty: bind all interfaces and
  // advertise this host's first non-loopback IPv4 address (127.0.0.1 if none).
  std::string rpc_host;
  uint16_t rpc_port = 0;  // 0 picks a free port
  // Address the RPC server and TCP transport bind when it is not the advertised one
  // (e.g. "0.0.0.0" behind an advertised rpc_host). Empty: as described for rpc_host.
  std::string rpc_bind_host;
  // Transports this engine may use and serve, in order of preference: the engine
  // picks per request the first one that can serve it. The transport table
  // (src/transport/transport_registry.cc; Python: transfer_engine.transports()) lists:
  // "local" (same process), "cuda_ipc" (same host, GPU memory through CUDA IPC; CUDA
  // builds only), "shm" (same host, buffers in POSIX shared memory), "cma" (same host,
  // cross-memory attach), "ucx" (any host through UCX: RDMA verbs where the machine
  // has them; builds with UCX only; on by default only where UCX sees an RDMA
  // device), "tcp". A name this build lacks is NotSupported.
  std::vector<std::string> transports = DefaultTransports();
  // The table's built transports that are enabled by default, in its order.
  static std::vector<std::string> DefaultTransports();
  // "debug", "info", "warning", "error".
  std::string log_level = "warning";
  // Identity of the machine; empty reads /etc/machine-id. Tests override it to
  // simulate separate hosts.
  std::string machine_id;

  // Data path tuning.
  uint32_t tcp_connections_per_peer = 4;  // 1..64, each opened on first use
  // Threads that run every TCP socket, initiator and target side alike: those of the
  // process's loop for this setting, which every engine of the process with the same
  // tcp_io_threads and loop tick (transfer_timeout_ms / 10, at most 100 ms) shares.
  // Their number grows neither with peers or connections nor with engines, only with
  // distinct settings. 1..64.
  uint32_t tcp_io_threads = 2;
  // How long an I/O thread goes on polling for events (yielding the CPU between tries)
  // after its last ones before it sleeps, in microseconds: the next message of a busy
  // socket then finds it awake, with no wake-up to pay (a context switch, and on a
  // virtual machine often a halted CPU's wake-up: tens of microseconds). It costs CPU
  // only for that long after traffic; an idle engine sleeps. 0: sleep at once. Part of
  // the loop's setting (see tcp_io_threads). A thread that waits for its own response
  // (waitTransferStatus on a one-request batch) polls its socket as long after its
  // last input before it sleeps. At most 10000.
  uint32_t tcp_busy_poll_us = 50;
  // A TCP connection unused this long closes; it reopens on the next request. 0: never.
  uint32_t tcp_idle_timeout_ms = 60000;
  // Congestion control of the TCP data connections. "auto": the kernel's default,
  // except bbr, which is replaced with cubic (bbr halves request/response throughput on
  // a 1500-MTU link between busy hosts; docs/performance.md). "system": the kernel's
  // default always. Any other value names one (net.ipv4.tcp_allowed_congestion_control).
  std::string tcp_congestion = "auto";
  // Minimum retransmission timeout of the TCP data connections, in microseconds (Linux
  // >= 6.15; elsewhere the kernel's, 200 ms, applies). A request/response protocol
  // loses its tail packets where no later packet signals the loss, and each such loss
  // waits this long: 200 ms is made for the Internet, not for a cluster. Set on a
  // connection once it has retransmitted (below 200 ms Linux also shortens delayed
  // ACKs, which costs connections that lose nothing). The kernel rounds it up to its
  // timer ticks. 0: the kernel's. At most 200000.
  uint32_t tcp_rto_min_us = 5000;
  uint64_t slice_size = 1 << 20;        // requests above this are split
  uint32_t transfer_timeout_ms = 5000;  // a slice without progress this long fails
  uint32_t connect_timeout_ms = 3000;
  // Buffers registered at once; each takes a 32-byte pin slot (touched only once
  // used). Beyond it registering fails with kResourceExhausted. At most 16,777,216.
  uint32_t max_registered_buffers = 65536;

  // The ucx transport. What UCX calls UCX_TLS ("rc,ud" for verbs, "tcp",
  // "posix,sysv,cma" for shared memory; empty: UCX's own choice, or the UCX_TLS
  // environment variable) and UCX_NET_DEVICES (e.g. "mlx5_0:1"; empty: every device).
  std::string ucx_tls;
  std::string ucx_net_devices;
  // UCP workers, each progressed by one thread; peers are spread over them.
  uint32_t ucx_workers = 1;  // 1..16
  // After progress a worker thread goes on polling for this long (yielding between
  // tries) before it sleeps: a wake-up costs more than the gaps between UCX's
  // messages, which are longer than TCP's (emulated RMA waits on the far side's
  // worker). 0: sleep at once. At most 10000.
  uint32_t ucx_busy_poll_us = 1000;

  // Central metadata (redis, etcd, http). The published entry of a redis or etcd
  // engine lives this many seconds without a keep-alive, which the engine sends every
  // ttl/3, so a killed engine's entry disappears within it (docs/metadata.md). Every
  // metadata call is bounded by connect_timeout_ms per server tried.
  uint32_t metadata_ttl_s = 10;

  // Prometheus endpoint: an HTTP server on rpc_host (all interfaces when empty) at this
  // port serving /metrics (text format) and /health (200 "available" or 503 and why).
  // 0: off. While it is on, the engine also times slices and batches.
  uint16_t metrics_port = 0;

  // Shared by every engine of a cluster. When set, each connection (control and data)
  // starts with a mutual challenge-response proof of it; peers without it are refused
  // and move no byte. The secret itself never crosses the wire. Empty: any peer that
  // reaches the ports may use remote-visible buffers (docs/security.md).
  std::string cluster_secret;
  static constexpr size_t kMinClusterSecretLength = 16;

  // Parses a JSON object; keys are the field names above. Unknown keys are errors.
  static Status FromJson(const std::string& json_text, Config* config);
  static Status FromJsonFile(const std::string& path, Config* config);
  // Overrides fields from TE_METADATA_TYPE, TE_METADATA_SERVERS, TE_LOCAL_SEGMENT,
  // TE_RPC_HOST, TE_RPC_BIND_HOST, TE_RPC_PORT, TE_TRANSPORTS (comma-separated), TE_LOG_LEVEL,
  // TE_MACHINE_ID, TE_TCP_CONNECTIONS, TE_TCP_IO_THREADS, TE_TCP_IDLE_TIMEOUT_MS, TE_SLICE_SIZE,
  // TE_TRANSFER_TIMEOUT_MS, TE_METADATA_TTL_S, TE_MAX_REGISTERED_BUFFERS, TE_METRICS_PORT,
  // TE_CLUSTER_SECRET, TE_UCX_TLS, TE_UCX_NET_DEVICES, TE_UCX_WORKERS,
  // TE_UCX_BUSY_POLL_US; TE_CONFIG names a JSON file
  // applied first.
  static Status FromEnv(Config* config);
  // Checks ranges and names; the engine calls it before starting.
  Status Validate() const;
};

}  // namespace te
