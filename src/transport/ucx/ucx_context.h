// The UCX layer the ucx transport is built on: one UCP context, a bounded pool of
// workers (each progressed by one thread that sleeps in epoll when idle), endpoints
// opened lazily from a peer's worker address, memory mapped with ucp_mem_map and
// published as packed rkeys, and one-sided PUT/GET with a completion called exactly
// once. No UCX header leaks out of this folder: a build without UCX links
// ucx_none.cc, where Create and QueryUcx answer NotSupported.
//
// Threads: every call here is thread-safe and none waits on the network. UCX objects
// (worker, endpoints, unpacked rkeys, requests) are touched only by their worker's
// thread; callers hand it work through a briefly-locked queue and an eventfd.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "te/status.h"

namespace te {

constexpr uint32_t kMaxUcxWorkers = 16;

struct UcxOptions {
  // What UCX calls UCX_TLS, e.g. "tcp" or "posix,sysv,cma"; empty: UCX's default.
  std::string tls;
  // What UCX calls UCX_NET_DEVICES, e.g. "mlx5_0:1" or "lo"; empty: all devices.
  std::string net_devices;
  // Workers, each with its own progress thread; endpoints are spread over them.
  uint32_t workers = 1;
  // An endpoint whose oldest operation was posted this long ago, and on which
  // nothing completed for as long, fails (Timeout) with all it carries: UCX cannot
  // cancel one RMA operation, only close the endpoint carrying it.
  uint32_t transfer_timeout_ms = 5000;
  // How long a worker thread polls after progress before it sleeps.
  uint32_t busy_poll_us = 0;
};

// What UCX offers on this machine.
struct UcxInfo {
  std::string version;                 // e.g. "1.13.1"
  std::vector<std::string> resources;  // "transport/device", e.g. "rc_mlx5/mlx5_0:1"
  bool rdma = false;  // a verbs transport (rc, dc, ud) on a device net_devices allows
};

// Whether this build has UCX (TE_WITH_UCX).
bool UcxBuilt();
// Lists UCX's transports and devices (through UCT, so nothing is opened for
// traffic). NotSupported in a build without UCX.
Status QueryUcx(const UcxOptions& options, UcxInfo* info);

// One one-sided operation. The caller owns it and keeps it, `local` and the bytes of
// `rkey` valid until `done` runs; `done` runs exactly once, on a worker thread or
// inside Post, and may free the op.
struct UcxOp {
  enum Kind : uint8_t { kPut, kGet };  // PUT: local -> remote (WRITE); GET: READ
  Kind kind = kGet;
  void* local = nullptr;
  uint64_t remote = 0;  // the address in the peer's process
  uint64_t length = 0;
  std::string_view rkey;  // the peer's packed rkey of the buffer holding `remote`
  void (*done)(UcxOp* op, const Status& status) = nullptr;
  void* owner = nullptr;  // the caller's
  // Private to the UCX layer.
  UcxOp* prev = nullptr;
  UcxOp* next = nullptr;
  void* endpoint = nullptr;
  void* request = nullptr;
  int64_t deadline_ns = 0;
};

// A local buffer mapped for remote access; unmapped when destroyed. The owner must
// stop publishing packed_rkey() before (peers' later operations then fail).
class UcxMemory {
 public:
  virtual ~UcxMemory() = default;
  // Bytes to publish to peers, who pass them as UcxOp::rkey.
  virtual const std::string& packed_rkey() const = 0;
};

// One peer worker, reached from one of our workers. Dropping the last handle closes
// it once its operations are done.
class UcxEndpoint {
 public:
  virtual ~UcxEndpoint() = default;
  // Hands the ops to the worker thread; never waits on the network. Once the
  // endpoint failed (peer gone, timeout), ops fail with its error.
  virtual void Post(UcxOp* const* ops, size_t count) = 0;
  // False once the endpoint failed; a new Connect opens a fresh one.
  virtual bool failed() const = 0;
};

class UcxContext {
 public:
  // ucp_init (RMA, wakeup) with options' TLS and devices, and options.workers
  // workers with their threads. NotSupported in a build without UCX.
  static Status Create(const UcxOptions& options, std::unique_ptr<UcxContext>* out);
  // Fails what is in flight (Cancelled), closes the endpoints, stops the threads.
  virtual ~UcxContext() = default;

  virtual size_t worker_count() const = 0;
  // Worker `i`'s address, for peers to Connect to (i < worker_count()).
  virtual const std::string& worker_address(size_t i) const = 0;
  // Maps [base, base + length) of existing memory: remote-readable, and
  // remote-writable only when remote_write (where UCX can enforce it: verbs).
  virtual Status Map(void* base, size_t length, bool remote_write,
                     std::unique_ptr<UcxMemory>* out) = 0;
  // An endpoint to the peer worker with `peer_address`, on one of our workers
  // (round-robin); UCX opens it on that worker's thread.
  virtual Status Connect(std::string_view peer_address, std::shared_ptr<UcxEndpoint>* out) = 0;
};

}  // namespace te
