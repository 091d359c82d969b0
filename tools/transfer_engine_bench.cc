// transfer_engine_bench: throughput benchmark of the transfer engine.
//
// Target mode (no --remote_segment): allocates and registers one buffer per NUMA
// node, prints the command that starts an initiator against it and serves until
// SIGINT or SIGTERM.
//
// Initiator mode: opens --remote_segment and runs --threads workers for --duration
// seconds, each submitting batches of --batch requests of --size bytes (READ, WRITE,
// or both in turn with --workload=mix), then prints the throughput and the latency
// of a batch (submitTransfer until every task completed: average and percentiles
// from a histogram). --size, --batch and --threads may be sweeps (lists, ranges):
// each combination is a case, warmed up for --warmup seconds, then measured, and
// printed as one table row (and with --json one JSON line). On a terminal a progress
// line on stderr shows how far a case is.
//
// Several initiators against one target each take their own slice of its buffers:
// the target makes room for --initiators of them, initiator K uses slice
// --initiator_index=K (so --integrity_check runs do not see each other's writes).
//
// Errors are one line on stderr starting with "error: "; the exit code is then 1.
#include <gflags/gflags.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#ifdef TE_BENCH_HAVE_NUMA
#include <numa.h>
#endif

#include "bench_pattern.h"
#include "bench_report.h"
#include "latency_histogram.h"
#include "memory/device_memory.h"
#include "memory/memory.h"
#include "te/transfer_engine.h"

DEFINE_string(metadata_type, "p2p", "Metadata backend: p2p | etcd | redis | http");
DEFINE_string(metadata_servers, "", "Comma-separated metadata servers (required unless p2p)");
DEFINE_string(workload, "read", "Test pattern: read | write | mix");
DEFINE_string(local_segment, "", "Local segment name (p2p: host or host:port; optional)");
DEFINE_string(remote_segment, "",
              "Segment of the target to benchmark against; empty starts a target");
DEFINE_bool(integrity_check, false, "Verify the data read back (--workload=mix only)");
DEFINE_bool(check, false, "Same as --integrity_check");
DEFINE_bool(shmfs, false, "Allocate buffers in POSIX shared memory");
DEFINE_string(batch, "16", "Requests per batch; a sweep as for --size");
DEFINE_string(size, "65536",
              "Bytes per request, with optional K, M or G (x1024). A sweep runs one case per "
              "value: a list 4K,64K,1M, a range 4K:1M (doubling), 1:8:+1 (step) or 1K:1M:*4 "
              "(factor); lists may hold ranges");
DEFINE_int32(duration, 10, "Seconds each case is measured");
DEFINE_string(threads, "4", "Concurrent worker threads; a sweep as for --size");
DEFINE_double(warmup, 1,
              "Seconds each case runs before it is measured, left out of its figures; 0: none");
DEFINE_string(report_unit, "GB", "Throughput unit: GB | GiB | Gb | MB | MiB | Mb | KB | KiB | Kb");
DEFINE_uint32(report_precision, 2, "Decimals in the reported throughput (at most 12)");
DEFINE_bool(use_dram, true, "Allocate buffers from CPU DRAM");
DEFINE_bool(use_vram, true, "Allocate buffers from GPU VRAM (needs a build with -DUSE_CUDA=ON)");
DEFINE_string(transport, "auto",
              "Transport: auto (per request, the first of the engine's default transports "
              "that can serve it) or one transport of this build that reaches other processes "
              "(an unknown value lists them); give the same value to target and initiator");
DEFINE_uint64(initiators, 1,
              "Target: initiators it makes room for, each in its own slice of every buffer "
              "(the buffers grow by this factor)");
DEFINE_uint64(initiator_index, 0,
              "Initiator: the slice of the target's buffers to use, 0 .. the target's "
              "--initiators - 1 (give every initiator the same --size, --batch and --threads)");
DEFINE_bool(json, false, "Also print one JSON line per case, after the table");
DEFINE_uint32(metrics_port, 0,
              "Serve Prometheus /metrics and /health on this port (0: off; default: "
              "$TE_METRICS_PORT)");
DEFINE_string(cluster_secret, "",
              "Cluster secret both sides must prove (default: $TE_CLUSTER_SECRET; the "
              "variable keeps it out of the process list)");

namespace {

using te::bench::BenchCase;
using te::bench::BenchFlags;
using te::bench::LatencyHistogram;
using te::bench::Workload;

constexpr uint64_t kTargetMinCapacity = 1ULL << 30;
// How long one waitTransferStatus call may wait. Long: the engine fails a stuck
// transfer within its own timeout anyway, and a waiter that reads its response itself
// blocks in recv directly only when its deadline is further than the socket's
// receive timeout (otherwise it polls first, one more system call per round trip).
constexpr uint32_t kWaitSliceMs = 60000;

// Prints `message` as the one error line and gives the exit code for it.
int Error(std::string message) {
  std::replace(message.begin(), message.end(), '\n', ' ');
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

int NumaNodes() {
#ifdef TE_BENCH_HAVE_NUMA
  if (numa_available() >= 0) return std::max(1, numa_num_configured_nodes());
#endif
  return 1;
}

void RunOnNode(int node) {
#ifdef TE_BENCH_HAVE_NUMA
  if (numa_available() >= 0) numa_run_on_node(node);  // best effort
#else
  (void)node;
#endif
}

// The bytes the largest case uses at once: what target and initiator allocate.
uint64_t LargestWorkingSet(const std::vector<BenchCase>& cases) {
  uint64_t largest = 0;
  for (const BenchCase& c : cases) largest = std::max(largest, c.size * c.batch * c.threads);
  return largest;
}

// One initiator's slice of each target buffer: what a target started with the same
// flags gives each of its --initiators.
uint64_t InitiatorSliceBytes(const std::vector<BenchCase>& cases) {
  return std::max(kTargetMinCapacity, LargestWorkingSet(cases));
}

bool FlagGiven(const char* name) {
  gflags::CommandLineFlagInfo info;
  return gflags::GetCommandLineFlagInfo(name, &info) && !info.is_default;
}

BenchFlags FlagsFromCommandLine(const te::Config& config) {
  BenchFlags flags;
  flags.metadata_type = config.metadata_type;
  flags.metadata_servers = config.metadata_servers;
  flags.workload = FLAGS_workload;
  flags.remote_segment = FLAGS_remote_segment;
  flags.integrity_check = FLAGS_integrity_check || FLAGS_check;
  flags.shmfs = FLAGS_shmfs;
  flags.batch = FLAGS_batch;
  flags.size = FLAGS_size;
  flags.duration = FLAGS_duration;
  flags.threads = FLAGS_threads;
  flags.warmup = FLAGS_warmup;
  flags.report_unit = FLAGS_report_unit;
  flags.report_precision = FLAGS_report_precision;
  flags.use_dram = FLAGS_use_dram;
  flags.use_vram = FLAGS_use_vram;
  flags.use_vram_set = FlagGiven("use_vram");
  flags.cuda_devices = te::DeviceMemoryBuilt() ? te::DeviceCount() : -1;
  flags.transport = FLAGS_transport;
  flags.initiators = FLAGS_initiators;
  flags.initiator_index = FLAGS_initiator_index;
  return flags;
}

// The engine's configuration: TE_* environment variables (see te::Config::FromEnv),
// then the metadata and segment flags where given on the command line.
te::Status BuildConfig(te::Config* config) {
  TE_RETURN_IF_ERROR(te::Config::FromEnv(config));
  if (FlagGiven("metadata_type")) config->metadata_type = FLAGS_metadata_type;
  if (FlagGiven("metadata_servers")) config->metadata_servers = FLAGS_metadata_servers;
  if (FlagGiven("local_segment")) config->local_segment_name = FLAGS_local_segment;
  if (FlagGiven("cluster_secret")) config->cluster_secret = FLAGS_cluster_secret;
  if (FlagGiven("metrics_port")) {
    if (FLAGS_metrics_port > 65535)
      return te::Status::InvalidArgument("--metrics_port must be <= 65535");
    config->metrics_port = static_cast<uint16_t>(FLAGS_metrics_port);
  }
  // Pinning one transport on both sides measures it alone; "local" stays so a target
  // opened by its own name still works.
  if (FLAGS_transport != "auto") config->transports = {FLAGS_transport};
  return te::Status::OK();
}

// Buffers this process allocated: one per NUMA node (--use_dram) and one per CUDA
// device (--use_vram), as the spec's benchmark has them.
class LocalBuffers {
 public:
  explicit LocalBuffers(te::TransferEngine* engine) : engine_(engine) {}
  ~LocalBuffers() { Release(); }
  LocalBuffers(const LocalBuffers&) = delete;
  LocalBuffers& operator=(const LocalBuffers&) = delete;

  te::Status Allocate(const BenchFlags& flags, uint64_t capacity) {
    const int nodes = NumaNodes();
    for (int node = 0; flags.use_dram && node < nodes; ++node) {
      TE_RETURN_IF_ERROR(
          Add("cpu:" + std::to_string(node), capacity, flags.shmfs, nodes > 1 ? node : -1));
    }
    for (int device = 0; flags.use_vram && device < flags.cuda_devices; ++device) {
      TE_RETURN_IF_ERROR(Add("cuda:" + std::to_string(device), capacity, false, -1));
    }
    return te::Status::OK();
  }

  // Unregisters and frees everything; errors are reported, not fatal.
  void Release() {
    for (const Buffer& buffer : buffers_) {
      if (buffer.registered) {
        te::Status status = engine_->unregisterLocalMemory(buffer.addr);
        if (!status.ok()) std::fprintf(stderr, "warning: %s\n", status.ToString().c_str());
      }
      te::Status status = engine_->freeLocalMemory(buffer.addr);
      if (!status.ok()) std::fprintf(stderr, "warning: %s\n", status.ToString().c_str());
    }
    buffers_.clear();
  }

  size_t count() const { return buffers_.size(); }
  uint8_t* at(size_t i) const { return static_cast<uint8_t*>(buffers_[i].addr); }
  bool on_device(size_t i) const { return buffers_[i].on_device; }
  // The NUMA node to run a thread using buffer i on; -1: do not pin.
  int numa_node(size_t i) const { return buffers_[i].numa_node; }

 private:
  struct Buffer {
    void* addr;
    bool registered;
    bool on_device;
    int numa_node;
  };

  te::Status Add(const std::string& location, uint64_t capacity, bool shm, int numa_node) {
    te::MemoryOptions options;
    options.location = location;
    options.shm = shm;
    options.permission = te::Permission::kRemoteReadWrite;
    void* addr = nullptr;
    te::Status status = engine_->allocateLocalMemory(&addr, capacity, options);
    if (!status.ok()) {
      return te::Status(status.code(), "cannot allocate " + std::to_string(capacity) +
                                           " bytes on " + location + ": " + status.message());
    }
    buffers_.push_back({addr, false, te::IsDeviceLocation(location), numa_node});
    status = engine_->registerLocalMemory(addr, capacity, options);
    if (!status.ok()) {
      return te::Status(status.code(),
                        "cannot register the buffer on " + location + ": " + status.message());
    }
    buffers_.back().registered = true;
    return te::Status::OK();
  }

  te::TransferEngine* engine_;
  std::vector<Buffer> buffers_;
};

// ---------------------------------------------------------------------------
// Target

int RunTarget(te::TransferEngine& engine, const te::Config& config, const BenchFlags& flags,
              const std::vector<BenchCase>& cases, const sigset_t& stop_signals,
              const char* program) {
  // An initiator started with the same flags always fits, in each of its slices.
  uint64_t capacity = 0;
  if (__builtin_mul_overflow(InitiatorSliceBytes(cases), flags.initiators, &capacity)) {
    return Error("--initiators=" + std::to_string(flags.initiators) +
                 " x the working set does not fit in 64 bits");
  }
  LocalBuffers buffers(&engine);
  te::Status status = buffers.Allocate(flags, capacity);
  if (!status.ok()) return Error(status.ToString());

  std::printf("Target server has been started.\n%s\n",
              te::bench::InitiatorCommand(program, config.metadata_type, config.metadata_servers,
                                          engine.getSegmentName())
                  .c_str());
  std::fflush(stdout);

  int signal_number = 0;
  while (sigwait(&stop_signals, &signal_number) != 0) {
  }
  return 0;  // `buffers` unregisters and frees on the way out
}

// ---------------------------------------------------------------------------
// Initiator

// State the workers of one case share with the main thread.
struct RunState {
  std::atomic<bool> running{true};
  // Set once the warm-up is over: only batches submitted after it count.
  std::atomic<bool> measuring{false};
  std::atomic<uint64_t> batch_count{0};
  std::atomic<uint64_t> verified_batches{0};

  std::mutex mutex;
  std::condition_variable stopped;
  bool failed = false;
  std::string error;

  // Records the first failure and stops everyone.
  void Fail(const std::string& message) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!failed) {
        failed = true;
        error = message;
      }
    }
    running.store(false);
    stopped.notify_all();
  }
};

struct WorkerArgs {
  te::TransferEngine* engine;
  te::SegmentHandle segment;
  int thread_id;
  uint8_t* local;  // this thread's region of its local buffer
  bool local_on_device;
  uint64_t remote;  // the matching region of the target's buffer
  uint64_t batch;
  uint64_t size;
  Workload workload;
  bool integrity_check;
  int numa_node;                // -1: do not pin
  LatencyHistogram* histogram;  // this thread's; nanoseconds per measured batch
};

const char* OpName(te::Request::OpCode opcode) {
  return opcode == te::Request::WRITE ? "WRITE" : "READ";
}

// The requests of one batch: request j moves `size` bytes at offset j * size of the
// thread's local and remote regions.
std::vector<te::Request> BatchRequests(const WorkerArgs& args) {
  std::vector<te::Request> requests(args.batch);
  for (uint64_t j = 0; j < args.batch; ++j) {
    requests[j].source = args.local + j * args.size;
    requests[j].target_id = args.segment;
    requests[j].target_offset = args.remote + j * args.size;
    requests[j].length = args.size;
  }
  return requests;
}

// One batch from allocateBatch to freeBatch, every request as `opcode`. False with
// *error set when it failed; *nanoseconds receives submitTransfer-to-complete.
bool SubmitRequestSync(const WorkerArgs& args, te::Request::OpCode opcode,
                       std::vector<te::Request>* requests, uint64_t* nanoseconds,
                       std::string* error) {
  te::TransferEngine& engine = *args.engine;
  te::BatchID batch_id = 0;
  te::Status status = engine.allocateBatch(requests->size(), &batch_id);
  if (!status.ok()) {
    *error = "allocateBatch: " + status.ToString();
    return false;
  }
  for (te::Request& request : *requests) request.opcode = opcode;
  te::TransferStatus overall;
  const auto submitted = std::chrono::steady_clock::now();
  status = engine.submitTransfer(batch_id, *requests);
  // The spec's benchmark polls getTransferStatus in a loop; waitTransferStatus gives the
  // same answer, but sleeps while a long transfer is in flight instead of burning the
  // core the engine's own threads need.
  while (status.ok() &&
         (status = engine.waitTransferStatus(batch_id, &overall, kWaitSliceMs)).ok() &&
         overall.state == te::TransferState::kPending) {
  }
  *nanoseconds = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                           std::chrono::steady_clock::now() - submitted)
                                           .count());
  te::Status freed = engine.freeBatch(batch_id);
  if (!status.ok()) {
    *error = std::string(OpName(opcode)) + " batch: " + status.ToString();
    return false;
  }
  if (overall.state == te::TransferState::kFailed) {
    *error = std::string(OpName(opcode)) + " batch failed: " + overall.error;
    return false;
  }
  if (!freed.ok()) {
    *error = "freeBatch: " + freed.ToString();
    return false;
  }
  return true;
}

#ifdef TE_BENCH_TEST_HOOKS
// Test-only: compiled into transfer_engine_bench_TEST_hooks, which tests build and
// nothing installs, so the installed bench has neither the flag nor the code.
DEFINE_int64(TEST_corrupt_offset, -1,
             "Test only: thread 0 overwrites this byte of its remote region with a wrong "
             "value between the integrity check's WRITE and READ");

// Makes the target hold (and so serve to the next READ) one wrong byte, through the
// engine like any other WRITE: the check must then fail naming that offset.
bool TEST_CorruptRemoteByte(const WorkerArgs& args, uint64_t seed, std::string* error) {
  const int64_t offset = FLAGS_TEST_corrupt_offset;
  if (offset < 0 || args.thread_id != 0 || args.local_on_device ||
      static_cast<uint64_t>(offset) >= args.batch * args.size) {
    return true;
  }
  args.local[offset] = static_cast<uint8_t>(~te::bench::PatternByte(seed, offset));
  std::vector<te::Request> one(1);
  one[0].source = args.local + offset;
  one[0].target_id = args.segment;
  one[0].target_offset = args.remote + offset;
  one[0].length = 1;
  uint64_t nanoseconds = 0;
  return SubmitRequestSync(args, te::Request::WRITE, &one, &nanoseconds, error);
}
#endif

void InitiatorWorker(const WorkerArgs& args, RunState* state) {
  if (args.numa_node >= 0) RunOnNode(args.numa_node);
  const uint64_t region = args.batch * args.size;
  std::vector<te::Request> requests = BatchRequests(args);
  std::string error;
  // Integrity data is made and checked in host memory; a device buffer gets it and
  // gives it back by copies.
  std::vector<uint8_t> staging(args.local_on_device && args.integrity_check ? region : 0);
  uint8_t* host = args.local_on_device ? staging.data() : args.local;
  auto sync = [&](bool to_local) {
    if (!args.local_on_device) return true;
    te::Status s = to_local ? te::CopyMemory(args.local, host, region)
                            : te::CopyMemory(host, args.local, region);
    if (!s.ok()) state->Fail("thread " + std::to_string(args.thread_id) + ": " + s.ToString());
    return s.ok();
  };
  auto run = [&](te::Request::OpCode opcode) {
    const bool measured = state->measuring.load(std::memory_order_relaxed);
    uint64_t nanoseconds = 0;
    if (!SubmitRequestSync(args, opcode, &requests, &nanoseconds, &error)) {
      state->Fail("thread " + std::to_string(args.thread_id) + ": " + error);
      return false;
    }
    if (measured) {
      args.histogram->Record(nanoseconds);
      state->batch_count.fetch_add(1, std::memory_order_relaxed);
    }
    return true;
  };
  for (uint64_t iteration = 0; state->running.load(std::memory_order_relaxed); ++iteration) {
    switch (args.workload) {
      case Workload::kRead:
        if (!run(te::Request::READ)) return;
        break;
      case Workload::kWrite:
        if (!run(te::Request::WRITE)) return;
        break;
      case Workload::kMix:
        if (!args.integrity_check) {
          if (!run(iteration % 2 == 0 ? te::Request::WRITE : te::Request::READ)) return;
          break;
        }
        {
          const uint64_t seed = te::bench::PatternSeed(args.thread_id, iteration);
          te::bench::FillPattern(host, region, seed);
          if (!sync(true) || !run(te::Request::WRITE)) return;
#ifdef TE_BENCH_TEST_HOOKS
          if (!TEST_CorruptRemoteByte(args, seed, &error)) {
            state->Fail("thread " + std::to_string(args.thread_id) + ": " + error);
            return;
          }
#endif
          std::memset(host, 0, region);
          if (!sync(true) || !run(te::Request::READ) || !sync(false)) return;
          size_t bad = te::bench::FindPatternMismatch(host, region, seed);
          if (bad != region) {
            char detail[96];
            std::snprintf(detail, sizeof(detail), ": expected 0x%02x, read 0x%02x",
                          te::bench::PatternByte(seed, bad), host[bad]);
            state->Fail("integrity check failed at offset " + std::to_string(bad) + " (thread " +
                        std::to_string(args.thread_id) + ")" + detail);
            return;
          }
          state->verified_batches.fetch_add(1, std::memory_order_relaxed);
        }
        break;
    }
  }
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// What every case of a run shares.
struct Setup {
  te::TransferEngine* engine;
  te::SegmentHandle segment;
  const te::SegmentInfo* info;
  const BenchFlags* flags;
  Workload workload;
  LocalBuffers* buffers;
  uint64_t remote_offset;  // of this initiator's slice in every target buffer
  size_t case_count;
  bool show_progress;  // stderr is a terminal
};

// Waits `seconds` while the workers run, updating the progress line about once a
// second. False when a worker failed.
bool RunPhase(const Setup& setup, RunState* state, te::bench::Progress* progress, double seconds,
              uint64_t region) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  auto last = start;
  uint64_t last_count = state->batch_count.load();
  std::unique_lock<std::mutex> lock(state->mutex);
  for (auto now = start; now < end; now = Clock::now()) {
    if (state->stopped.wait_for(lock, std::min<Clock::duration>(end - now, std::chrono::seconds(1)),
                                [&] { return state->failed; })) {
      return false;
    }
    if (!setup.show_progress) continue;
    const auto at = Clock::now();
    const uint64_t count = state->batch_count.load();
    progress->elapsed_seconds = std::chrono::duration<double>(at - start).count();
    progress->phase_seconds = seconds;
    progress->rate = te::bench::FormatRate((count - last_count) * region,
                                           std::chrono::duration<double>(at - last).count(),
                                           setup.flags->report_unit, setup.flags->report_precision);
    last = at;
    last_count = count;
    std::fprintf(stderr, "\r%s\033[K", te::bench::ProgressLine(*progress).c_str());
  }
  return !state->failed;
}

// Runs one case. False with *error set when it failed.
bool RunCase(const Setup& setup, const BenchCase& c, size_t index, te::bench::BenchResult* result,
             std::string* error) {
  const BenchFlags& flags = *setup.flags;
  const uint64_t region = c.size * c.batch;
  RunState state;
  std::vector<LatencyHistogram> histograms(c.threads);
  std::vector<std::thread> workers;
  workers.reserve(c.threads);
  const bool warm_up = flags.warmup > 0;
  state.measuring.store(!warm_up);
  auto start = std::chrono::steady_clock::now();
  double cpu_start = CpuSeconds();
  for (uint64_t i = 0; i < c.threads; ++i) {
    // Thread i works at offset i * region of the target's buffer i % n.
    const te::BufferInfo& remote = setup.info->buffers[i % setup.info->buffers.size()];
    WorkerArgs args;
    args.engine = setup.engine;
    args.segment = setup.segment;
    args.thread_id = static_cast<int>(i);
    args.local = setup.buffers->at(i % setup.buffers->count()) + i * region;
    args.remote = remote.base + setup.remote_offset + i * region;
    args.batch = c.batch;
    args.size = c.size;
    args.workload = setup.workload;
    args.integrity_check = flags.integrity_check;
    args.local_on_device = setup.buffers->on_device(i % setup.buffers->count());
    args.numa_node = setup.buffers->numa_node(i % setup.buffers->count());
    args.histogram = &histograms[i];
    try {
      workers.emplace_back(InitiatorWorker, args, &state);
    } catch (const std::system_error& e) {
      state.Fail("cannot start worker thread " + std::to_string(i) + ": " + e.what());
      break;
    }
  }
  te::bench::Progress progress;
  progress.case_index = index;
  progress.case_count = setup.case_count;
  progress.workload = flags.workload;
  progress.bench_case = c;
  progress.warming_up = warm_up;
  bool ok = !warm_up || RunPhase(setup, &state, &progress, flags.warmup, region);
  if (ok && warm_up) {
    start = std::chrono::steady_clock::now();
    cpu_start = CpuSeconds();
    state.measuring.store(true);
    progress.warming_up = false;
  }
  ok = ok && RunPhase(setup, &state, &progress, static_cast<double>(flags.duration), region);
  state.running.store(false);
  for (std::thread& worker : workers) worker.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu_seconds = CpuSeconds() - cpu_start;
  if (setup.show_progress) std::fprintf(stderr, "\r\033[K");
  if (state.failed) {
    *error = state.error;
    return false;
  }

  LatencyHistogram latency;
  for (const LatencyHistogram& h : histograms) latency.Merge(h);
  result->workload = flags.workload;
  result->transport = setup.engine->primaryTransport();
  result->threads = c.threads;
  result->batch = c.batch;
  result->size = c.size;
  result->seconds = seconds;
  result->warmup_seconds = flags.warmup;
  result->batch_count = state.batch_count.load();
  result->bytes = result->batch_count * region;
  result->integrity_check = flags.integrity_check;
  result->verified_batches = state.verified_batches.load();
  result->unit = flags.report_unit;
  result->precision = flags.report_precision;
  result->latency_avg_us = latency.mean() / 1e3;
  result->latency_p50_us = static_cast<double>(latency.Percentile(50)) / 1e3;
  result->latency_p99_us = static_cast<double>(latency.Percentile(99)) / 1e3;
  result->latency_p999_us = static_cast<double>(latency.Percentile(99.9)) / 1e3;
  result->latency_max_us = static_cast<double>(latency.max()) / 1e3;
  result->cpu_seconds = cpu_seconds;
  return true;
}

// Every case must fit in the target's buffers before the first starts (a sweep fails
// now, not after an hour), in this initiator's slice: *offset receives where it starts.
te::Status CheckRemoteFits(const BenchFlags& flags, Workload workload, const te::SegmentInfo& info,
                           const std::vector<BenchCase>& cases, uint64_t* offset) {
  const uint64_t slice = InitiatorSliceBytes(cases);
  const uint64_t index = flags.initiator_index;
  const bool sliced = index > 0;
  if (__builtin_mul_overflow(index, slice, offset)) *offset = UINT64_MAX;
  const te::Permission needed =
      workload == Workload::kRead ? te::Permission::kRemoteRead : te::Permission::kRemoteReadWrite;
  for (const BenchCase& c : cases) {
    const uint64_t region = c.size * c.batch;
    for (uint64_t i = 0; i < std::min<uint64_t>(c.threads, info.buffers.size()); ++i) {
      const te::BufferInfo& buffer = info.buffers[i];
      // The last thread on this buffer ends highest in it.
      const uint64_t last = i + (c.threads - 1 - i) / info.buffers.size() * info.buffers.size();
      if (sliced && (*offset >= buffer.length || (last + 1) * region > buffer.length - *offset)) {
        return te::Status::OutOfRange(
            "--initiator_index=" + std::to_string(index) + " is out of range: the target's " +
            "buffer (" + std::to_string(buffer.length) + " bytes) holds " +
            std::to_string(buffer.length / slice) + " initiator slice(s) of " +
            std::to_string(slice) + " bytes; start the target with --initiators=" +
            std::to_string(index + 1) + " or more and the same --size, --batch and --threads");
      }
      if ((last + 1) * region > buffer.length) {
        return te::Status::OutOfRange(
            "size x batch x threads (" + std::to_string(region * c.threads) +
            " bytes) exceeds remote buffer (" + std::to_string(buffer.length) + " bytes)");
      }
      if (static_cast<int>(buffer.permission) < static_cast<int>(needed)) {
        return te::Status::PermissionDenied(
            "remote buffer " + std::to_string(i) + " is " + te::PermissionName(buffer.permission) +
            " but --workload=" + flags.workload + " needs " + te::PermissionName(needed));
      }
    }
  }
  return te::Status::OK();
}

int RunInitiator(te::TransferEngine& engine, const BenchFlags& flags,
                 const std::vector<BenchCase>& cases) {
  Setup setup;
  setup.engine = &engine;
  setup.flags = &flags;
  setup.case_count = cases.size();
  setup.show_progress = isatty(STDERR_FILENO);
  te::bench::ParseWorkload(flags.workload, &setup.workload);

  te::Status status = engine.openSegment(&setup.segment, flags.remote_segment);
  if (!status.ok()) {
    return Error("cannot open the remote segment: " + status.ToString());
  }
  te::SegmentInfo info;
  status = engine.getSegmentInfo(setup.segment, &info);
  if (!status.ok()) return Error("cannot describe segment: " + status.ToString());
  if (info.buffers.empty()) {
    return Error("segment '" + flags.remote_segment + "' has no registered buffers");
  }
  setup.info = &info;
  status = CheckRemoteFits(flags, setup.workload, info, cases, &setup.remote_offset);
  if (!status.ok()) return Error(status.message());

  LocalBuffers buffers(&engine);
  status = buffers.Allocate(flags, LargestWorkingSet(cases));
  if (!status.ok()) return Error(status.ToString());
  setup.buffers = &buffers;

  std::printf("%s\n", te::bench::TableHeader(flags.report_unit).c_str());
  std::fflush(stdout);
  std::vector<te::bench::BenchResult> results(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string error;
    if (!RunCase(setup, cases[i], i, &results[i], &error)) {
      engine.closeSegment(setup.segment);
      return Error(error);
    }
    std::printf("%s\n", te::bench::TableRow(results[i]).c_str());
    std::fflush(stdout);
  }
  engine.closeSegment(setup.segment);

  if (cases.size() == 1) {
    std::printf("%s\n", te::bench::SummaryLine(results[0]).c_str());
    std::printf("transport: %s\n", results[0].transport.c_str());
  }
  if (flags.integrity_check) {
    std::string verdict;
    status = te::bench::IntegrityVerdict(results, &verdict);
    if (!status.ok()) return Error(status.message());
    std::printf("%s\n", verdict.c_str());
  }
  if (FLAGS_json) {
    for (const te::bench::BenchResult& result : results) {
      std::printf("%s\n", te::bench::JsonLine(result).c_str());
    }
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "transfer engine benchmark: throughput and batch latency.\n"
      "  target:    transfer_engine_bench [--local_segment=host[:port]]\n"
      "  initiator: transfer_engine_bench --remote_segment=NAME [--workload=read|write|mix]\n"
      "  sweep:     ... --size=4K:4M --threads=1,2 [--json]: a table row (and a JSON\n"
      "             line) per combination of --size, --batch and --threads\n"
      "Latency is per batch, from submitTransfer until every request completed; each\n"
      "case runs --warmup seconds before it is measured. Other engine settings come\n"
      "from TE_* environment variables (see te::Config::FromEnv).");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (argc > 1) return Error(std::string("unexpected argument '") + argv[1] + "'");

  te::Config config;
  te::Status status = BuildConfig(&config);
  if (!status.ok()) return Error("bad configuration: " + status.ToString());
  const BenchFlags flags = FlagsFromCommandLine(config);
  std::vector<BenchCase> cases;
  status = te::bench::ValidateBenchFlags(flags, &cases);
  if (!status.ok()) return Error(status.message());

  const bool target = flags.remote_segment.empty();
  // A target waits for these in sigwait; block them before the engine starts its
  // threads, which inherit the mask, so that none of them takes the signal.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (target) {
    // A shell starting us in the background may have set SIGINT to be ignored, and an
    // ignored signal never reaches sigwait.
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  }

  int exit_code;
  {
    te::TransferEngine engine(config);
    if (!engine.available()) {
      return Error("cannot start the transfer engine: " + engine.status().ToString());
    }
    exit_code = target ? RunTarget(engine, config, flags, cases, stop_signals, argv[0])
                       : RunInitiator(engine, flags, cases);
  }
  gflags::ShutDownCommandLineFlags();
  return exit_code;
}
