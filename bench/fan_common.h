// Pieces of te_fan_bench (bench/fan_bench.cc) that its main process and its peer
// processes share: the options, engines and their buffers, the phase control block
// the processes share, the submitting worker, the data check and the resource
// figures of a process. Only the public API (include/te/) touches the engine.
#pragma once

#include <semaphore.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "te/transfer_engine.h"

namespace te::fan {

// Exit code for bad flags (runtime errors exit 1).
inline constexpr int kBadFlagsExit = 2;

struct Options {
  std::vector<uint64_t> peers = {1, 4, 16, 64, 256};
  std::vector<std::string> modes = {"out", "in"};
  std::string host = "127.0.0.1";  // the engine under test's address
  std::string peer_host;           // the peer engines' address; empty: host
  // Words put before the peer processes' command line (e.g. "ip netns exec peers").
  std::vector<std::string> peer_wrapper;
  std::string transport = "tcp";
  std::string workload = "write";
  uint64_t threads = 2;  // submitting threads (fan-in: batches in flight in all)
  uint64_t batch = 16;
  uint64_t size = 65536;
  uint64_t duration = 5;  // seconds measured per case
  double warmup = 1;      // seconds run before measuring
  uint64_t procs = 8;     // peer processes at most
  bool json = false;

  // Peer-process mode (set only on the command lines the main process builds).
  std::string peer_role;  // "target" or "initiator"; empty: main process
  uint64_t peer_first = 0;
  uint64_t peer_count = 0;
  int control_fd = -1;
#ifdef TE_FAN_TEST_HOOKS
  // Test builds only (te_fan_bench_TEST_hooks): this peer's region gets one wrong
  // byte between the check's WRITE and its READ, so the check must fail.
  int64_t test_corrupt_peer = -1;
#endif

  const std::string& PeerHost() const { return peer_host.empty() ? host : peer_host; }
  // Bytes one engine's threads use at once: threads x batch x size.
  uint64_t RegionBytes() const { return threads * batch * size; }
  // The shm transport reaches only buffers in shared memory.
  bool ShmBuffers() const { return transport == "shm"; }
  te::Request::OpCode Opcode() const {
    return workload == "read" ? te::Request::READ : te::Request::WRITE;
  }
};

// Parses argv[1..]; InvalidArgument (one line) for anything wrong. *help is set for
// --help (then nothing else is checked).
te::Status ParseOptions(int argc, char** argv, Options* options, bool* help);
const char* UsageText();
// The command line flags that give a peer process the same traffic settings.
std::vector<std::string> PeerFlags(const Options& options);

// An engine on `host` with p2p metadata and only `transport`; other settings from
// the TE_* environment (log level "error" unless TE_LOG_LEVEL says otherwise).
te::Status MakeEngine(const std::string& host, const std::string& transport,
                      std::unique_ptr<te::TransferEngine>* engine);
// Allocates (in POSIX shared memory with `shm`) and registers (remote read/write)
// `bytes` of the engine's memory.
te::Status AllocateRegistered(te::TransferEngine* engine, uint64_t bytes, bool shm, uint8_t** addr);
// --peers: a comma-separated list of peer counts, each in [1, 4096].
te::Status ParsePeers(const std::string& text, std::vector<uint64_t>* peers);

enum Phase : int { kIdle = 0, kWarmup = 1, kMeasure = 2, kStop = 3 };

// Shared by the main process and the peer processes (memory of a memfd they all map).
struct Control {
  std::atomic<int> phase;
  std::atomic<int> failed;
  std::atomic<uint64_t> bytes;    // moved by batches submitted while measuring
  std::atomic<uint64_t> batches;  // those batches
  // Fan-in: the batches that may be in flight across all initiator engines.
  sem_t tokens;
};
// A fresh control block in a memfd; *fd stays open (not close-on-exec) for peers.
te::Status CreateControl(Control** control, int* fd);
te::Status MapControl(int fd, Control** control);
// Back to kIdle with zero counters and no tokens.
void ResetControl(Control* control);

// Where a worker's batch may go: an engine, a segment opened by it, the local buffer
// and the remote address of this route's region (threads x batch x size bytes; worker
// t uses its t-th part, request j the j-th block of that).
struct Route {
  te::TransferEngine* engine = nullptr;
  te::SegmentHandle segment = 0;
  uint8_t* local = nullptr;
  uint64_t remote = 0;
};

struct WorkerSpec {
  std::vector<Route> routes;
  uint64_t thread = 0;
  uint64_t batch = 0;
  uint64_t size = 0;
  te::Request::OpCode opcode = te::Request::WRITE;
  // True (fan-out): request j of a batch goes to the next route after request j-1's,
  // so one batch reaches up to `batch` peers. False (fan-in): a batch goes to one
  // route (one engine), the next batch to the next route.
  bool spread_requests = false;
  bool use_tokens = false;  // take a token of Control::tokens per batch
  Control* control = nullptr;
};

// Submits batches until the phase is kStop. Latencies (submit to completion, ns) of
// the batches submitted while measuring go to *latencies; a failure sets *error and
// Control::failed.
void RunWorker(const WorkerSpec& spec, std::vector<uint64_t>* latencies, std::string* error);

// One batch, submitted and waited for; *nanoseconds from submit to completion.
te::Status TransferSync(te::TransferEngine* engine, const std::vector<te::Request>& requests,
                        uint64_t* nanoseconds);

// Writes peer's own pattern from [local, local + bytes) of the route to its remote
// region in requests of --size bytes, clears the local bytes, reads them back and
// counts the bytes that differ (*first: the offset of the first, when any).
te::Status VerifyRegion(const Options& options, const Route& route, uint64_t bytes, uint64_t peer,
                        uint64_t* mismatches, uint64_t* first);

// The process's threads, open descriptors and resident memory.
struct ProcessSample {
  uint64_t threads = 0;
  uint64_t fds = 0;
  uint64_t rss_kib = 0;
};
ProcessSample SampleProcess();
// User plus system CPU seconds of this process so far.
double CpuSeconds();

}  // namespace te::fan
