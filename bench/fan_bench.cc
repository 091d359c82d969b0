// te_fan_bench: one engine against many. For each N of --peers:
//
//   fan-out  the engine under test (this process) is the initiator, against N target
//            engines. Its --threads workers submit batches of --batch requests of
//            --size bytes; request j of a batch goes to the peer after request j-1's
//            (round-robin per request), so a batch reaches min(N, batch) peers.
//   fan-out-batch  the same with each batch to one target, the next batch to the next
//            (round-robin per batch, as fan-in): what N open peers cost when each
//            transfer has one destination (one request's KV cache to one decode node).
//   fan-in   the engine under test (this process) is the target of N initiator
//            engines. Each peer process runs --threads workers that take its engines
//            in turn, one batch per engine (round-robin per batch: a batch belongs to
//            one engine); a semaphore the processes share keeps at most --threads
//            batches in flight across all N engines, the load fan-out offers.
//
// The N peer engines live in P = min(N, --procs) peer processes (this binary again,
// with --peer_role), N/P each, so this process hosts the engine under test alone.
// Engines use p2p metadata on --host (the peers on --peer_host), and only
// --transport (default tcp, so no same-host shortcut is taken).
//
// One row per mode and N: aggregate throughput, batch latency p50/p99 (submit to
// completion), and for the engine under test's process, sampled halfway through the
// measured time: threads, open descriptors, RSS, RSS per peer over the same engine
// idle (buffers registered, no peer yet), and CPU seconds (getrusage) per GB moved.
// Threads count the whole process (fan-out: with the bench's main thread and its
// --threads workers); descriptors leave out the bench's own pipes to its peers.
// After each case every peer region is checked: its own pattern written, read back
// and compared (fan-in: each initiator engine's whole region of the target's buffer;
// fan-out: one block of each target); a mismatch fails the run naming the peer and
// the offset.
//
// Exit codes: 0 done, 1 a failure (one "error: " line), 2 bad flags, 128+signal after
// SIGINT/SIGTERM/SIGHUP. Peer processes are killed and reaped on any error or one of
// those signals, and die with this one.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fan_common.h"
#include "fan_peers.h"
#include "latency_histogram.h"

namespace {

using te::Status;
using namespace te::fan;
using Clock = std::chrono::steady_clock;

constexpr int kStartTimeoutMs = 300000;  // hundreds of engines on a busy 2-CPU machine
constexpr int kFinishTimeoutMs = 60000;

struct CaseResult {
  std::string mode;
  uint64_t peers = 0, procs = 0;
  double seconds = 0, cpu_seconds = 0;
  uint64_t bytes = 0, batches = 0;
  te::bench::LatencyHistogram latency;
  ProcessSample idle, busy;
  uint64_t verified = 0, mismatches = 0, first_peer = 0, first_offset = 0;
};

std::string SelfPath() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  return n > 0 ? std::string(path, static_cast<size_t>(n)) : "te_fan_bench";
}

// Starts P peer processes with `role` hosting n engines between them, and waits for
// each one's "ready" line; *ready receives the lines' words after "ready".
Status StartPeers(const Options& o, uint64_t n, const char* role, int control_fd,
                  std::vector<PeerProcess>* peers, std::vector<std::string>* ready) {
  const uint64_t procs = peers->size();
  for (uint64_t c = 0; c < procs; ++c) {
    const uint64_t first = c * n / procs, count = (c + 1) * n / procs - first;
    Options peer = o;
    peer.peer_count = count;
    std::vector<std::string> argv = o.peer_wrapper;
    argv.push_back(SelfPath());
    for (const std::string& flag : PeerFlags(peer)) argv.push_back(flag);
    argv.push_back(std::string("--peer_role=") + role);
    argv.push_back("--peer_first=" + std::to_string(first));
    argv.push_back("--peer_count=" + std::to_string(count));
    argv.push_back("--control_fd=" + std::to_string(control_fd));
    (*peers)[c].set_name(std::string(role) + " process " + std::to_string(c) + " (engines " +
                         std::to_string(first) + ".." + std::to_string(first + count - 1) + ")");
    TE_RETURN_IF_ERROR((*peers)[c].Start(argv, control_fd));
  }
  for (PeerProcess& peer : *peers) {
    std::string line;
    TE_RETURN_IF_ERROR(peer.ReadLine(&line, kStartTimeoutMs));
    std::istringstream words(line);
    std::string word;
    words >> word;
    if (word != "ready") return Status::ProtocolError(peer.name() + " said '" + line + "'");
    while (words >> word) ready->push_back(word);
  }
  return Status::OK();
}

Status FinishPeers(std::vector<PeerProcess>* peers) {
  Status first;
  for (PeerProcess& peer : *peers) {
    Status status = peer.Finish(kFinishTimeoutMs);
    if (first.ok()) first = status;
  }
  return first;
}

// The engine's process, less what the bench itself holds open there: the stdin and
// stdout pipes of each peer process and the control block's memfd.
ProcessSample SampleEngineProcess(const CaseResult& result) {
  ProcessSample sample = SampleProcess();
  sample.fds -= std::min(sample.fds, 2 * result.procs + 1);
  return sample;
}

int Milliseconds(double seconds) { return static_cast<int>(seconds * 1000); }

// Warm-up, then the measured time with the resource sample halfway; always ends in
// kStop. The phase is kWarmup and the workers are running when it is called.
Status Measure(const Options& o, std::vector<PeerProcess>* peers, Control* control,
               CaseResult* result) {
  Status status = WatchPeers(peers, control, Milliseconds(o.warmup));
  const auto start = Clock::now();
  const double cpu_start = CpuSeconds();
  control->phase.store(kMeasure);
  const int half = Milliseconds(o.duration / 2.0);
  if (status.ok()) status = WatchPeers(peers, control, half);
  result->busy = SampleEngineProcess(*result);
  if (status.ok()) status = WatchPeers(peers, control, Milliseconds(o.duration) - half);
  control->phase.store(kStop);
  result->seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result->cpu_seconds = CpuSeconds() - cpu_start;
  result->bytes = control->bytes.load();
  result->batches = control->batches.load();
  return status;
}

// Fan-out: this process's engine against n targets in the peer processes.
// Each batch to one target when !spread_requests.
Status RunFanOut(const Options& o, uint64_t n, bool spread_requests, Control* control,
                 int control_fd, CaseResult* result) {
  std::vector<PeerProcess> peers(result->procs);
  std::vector<std::string> segments;
  TE_RETURN_IF_ERROR(StartPeers(o, n, "target", control_fd, &peers, &segments));
  if (segments.size() != n)
    return Status::ProtocolError("the targets named a wrong count of segments");
  std::unique_ptr<te::TransferEngine> engine;
  TE_RETURN_IF_ERROR(MakeEngine(o.host, o.transport, &engine));
  uint8_t* local = nullptr;
  TE_RETURN_IF_ERROR(AllocateRegistered(engine.get(), o.RegionBytes(), o.ShmBuffers(), &local));
  result->idle = SampleEngineProcess(*result);
  std::vector<Route> routes(n);
  for (uint64_t p = 0; p < n; ++p) {
    Route& route = routes[p];
    route = {engine.get(), 0, local, 0};
    TE_RETURN_IF_ERROR(engine->openSegment(&route.segment, segments[p]));
    te::SegmentInfo info;
    TE_RETURN_IF_ERROR(engine->getSegmentInfo(route.segment, &info));
    if (info.buffers.empty() || info.buffers[0].length < o.RegionBytes()) {
      return Status::OutOfRange("target " + std::to_string(p) +
                                " has no buffer of the region's size");
    }
    route.remote = info.buffers[0].base;
  }
  ResetControl(control);
  control->phase.store(kWarmup);
  std::vector<std::vector<uint64_t>> latencies(o.threads);
  std::vector<std::string> errors(o.threads);
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < o.threads; ++t) {
    WorkerSpec spec{routes, t, o.batch, o.size, o.Opcode(), spread_requests, false, control};
    threads.emplace_back(RunWorker, spec, &latencies[t], &errors[t]);
  }
  Status status = Measure(o, &peers, control, result);
  for (std::thread& thread : threads) thread.join();
  for (const std::string& error : errors) {
    if (!error.empty()) return Status::Internal(error);
  }
  TE_RETURN_IF_ERROR(status);
  for (const std::vector<uint64_t>& samples : latencies) {
    for (uint64_t ns : samples) result->latency.Record(ns);
  }
  for (uint64_t p = 0; p < n; ++p) {
    uint64_t bad = 0, first = 0;
    TE_RETURN_IF_ERROR(VerifyRegion(o, routes[p], o.size, p, &bad, &first));
    if (bad > 0 && result->mismatches == 0) {
      result->first_peer = p;
      result->first_offset = first;
    }
    result->mismatches += bad;
    result->verified += 1;
    TE_RETURN_IF_ERROR(engine->closeSegment(routes[p].segment));
  }
  engine.reset();
  return FinishPeers(&peers);
}

// The latencies and the check's verdict a fan-in peer process sends after the run.
Status CollectInitiatorResults(PeerProcess* peer, CaseResult* result) {
  for (;;) {
    std::string line;
    TE_RETURN_IF_ERROR(peer->ReadLine(&line, kStartTimeoutMs));
    std::istringstream words(line);
    std::string word;
    words >> word;
    if (word == "latency") {
      for (uint64_t ns; words >> ns;) result->latency.Record(ns);
      continue;
    }
    uint64_t mismatches = 0, engine = 0, offset = 0;
    if (word != "done" || !(words >> mismatches >> engine >> offset)) {
      return Status::ProtocolError(peer->name() + " said '" + line + "'");
    }
    if (mismatches > 0 && result->mismatches == 0) {
      result->first_peer = engine;
      result->first_offset = offset;
    }
    result->mismatches += mismatches;
    return Status::OK();
  }
}

// Fan-in: n initiators in the peer processes against this process's engine.
Status RunFanIn(const Options& o, uint64_t n, Control* control, int control_fd,
                CaseResult* result) {
  std::vector<PeerProcess> peers(result->procs);
  std::vector<std::string> unused;
  ResetControl(control);
  TE_RETURN_IF_ERROR(StartPeers(o, n, "initiator", control_fd, &peers, &unused));
  std::unique_ptr<te::TransferEngine> engine;
  TE_RETURN_IF_ERROR(MakeEngine(o.host, o.transport, &engine));
  uint8_t* buffer = nullptr;
  TE_RETURN_IF_ERROR(
      AllocateRegistered(engine.get(), n * o.RegionBytes(), o.ShmBuffers(), &buffer));
  result->idle = SampleEngineProcess(*result);
  for (PeerProcess& peer : peers)
    TE_RETURN_IF_ERROR(peer.SendLine("target " + engine->getSegmentName()));
  for (PeerProcess& peer : peers) {
    std::string line;
    TE_RETURN_IF_ERROR(peer.ReadLine(&line, kStartTimeoutMs));
    if (line != "opened") return Status::ProtocolError(peer.name() + " said '" + line + "'");
  }
  control->phase.store(kWarmup);
  for (PeerProcess& peer : peers) TE_RETURN_IF_ERROR(peer.SendLine("go"));
  for (uint64_t t = 0; t < o.threads; ++t) sem_post(&control->tokens);
  TE_RETURN_IF_ERROR(Measure(o, &peers, control, result));
  for (PeerProcess& peer : peers) TE_RETURN_IF_ERROR(CollectInitiatorResults(&peer, result));
  result->verified = n;
  TE_RETURN_IF_ERROR(FinishPeers(&peers));
  engine.reset();
  return Status::OK();
}

double GigabytesPerSecond(const CaseResult& r) {
  return r.seconds > 0 ? r.bytes / r.seconds / 1e9 : 0;
}
double RssPerPeerKib(const CaseResult& r) {
  return (static_cast<double>(r.busy.rss_kib) - static_cast<double>(r.idle.rss_kib)) / r.peers;
}
double CpuSecondsPerGb(const CaseResult& r) {
  return r.bytes ? r.cpu_seconds / (r.bytes / 1e9) : 0;
}

void PrintHeader() {
  std::printf("%-13s %6s %5s %8s %9s %9s %7s %6s %8s %12s %8s %8s\n", "mode", "peers", "procs",
              "GB/s", "p50_us", "p99_us", "threads", "fds", "rss_MiB", "rss/peer_KiB", "cpu_s/GB",
              "verified");
  std::fflush(stdout);
}

void PrintRow(const Options& o, const CaseResult& r) {
  std::printf("%-13s %6llu %5llu %8.2f %9.1f %9.1f %7llu %6llu %8.1f %12.1f %8.3f %8llu\n",
              r.mode.c_str(), static_cast<unsigned long long>(r.peers),
              static_cast<unsigned long long>(r.procs), GigabytesPerSecond(r),
              r.latency.Percentile(50) / 1e3, r.latency.Percentile(99) / 1e3,
              static_cast<unsigned long long>(r.busy.threads),
              static_cast<unsigned long long>(r.busy.fds), r.busy.rss_kib / 1024.0,
              RssPerPeerKib(r), CpuSecondsPerGb(r), static_cast<unsigned long long>(r.verified));
  if (o.json) {
    nlohmann::json json = {
        {"mode", r.mode},
        {"peers", r.peers},
        {"procs", r.procs},
        {"transport", o.transport},
        {"workload", o.workload},
        {"threads", o.threads},
        {"batch", o.batch},
        {"size", o.size},
        {"duration_s", r.seconds},
        {"warmup_s", o.warmup},
        {"batch_count", r.batches},
        {"bytes", r.bytes},
        {"throughput", GigabytesPerSecond(r)},
        {"bytes_per_second", r.seconds > 0 ? r.bytes / r.seconds : 0.0},
        {"latency_p50_us", r.latency.Percentile(50) / 1e3},
        {"latency_p99_us", r.latency.Percentile(99) / 1e3},
        {"engine_threads", r.busy.threads},
        {"engine_fds", r.busy.fds},
        {"engine_rss_kib", r.busy.rss_kib},
        {"idle_threads", r.idle.threads},
        {"idle_fds", r.idle.fds},
        {"idle_rss_kib", r.idle.rss_kib},
        {"rss_per_peer_kib", RssPerPeerKib(r)},
        {"cpu_seconds", r.cpu_seconds},
        {"cpu_seconds_per_gb", CpuSecondsPerGb(r)},
        {"verified_regions", r.verified},
        {"mismatches", r.mismatches},
    };
    std::printf("%s\n", json.dump().c_str());
  }
  std::fflush(stdout);
}

// A run that a signal ended reports the signal, not the errors it caused.
int Fail(const std::string& message) {
  KillAllPeers();
  if (const int signal_number = CaughtSignal()) {
    std::fprintf(stderr, "error: interrupted by %s\n", strsignal(signal_number));
    return 128 + signal_number;
  }
  std::string line = message;
  std::replace(line.begin(), line.end(), '\n', ' ');
  std::fprintf(stderr, "error: %s\n", line.c_str());
  return 1;
}

int RunCases(const Options& o) {
  InstallCleanupHandlers();
  Control* control = nullptr;
  int control_fd = -1;
  Status status = CreateControl(&control, &control_fd);
  if (!status.ok()) return Fail(status.ToString());
  PrintHeader();
  for (const std::string& mode : o.modes) {
    for (uint64_t n : o.peers) {
      CaseResult result;
      const bool out = mode != "in";
      result.mode = "fan-" + mode;
      result.peers = n;
      result.procs = std::min(n, o.procs);
      status = out ? RunFanOut(o, n, mode == "out", control, control_fd, &result)
                   : RunFanIn(o, n, control, control_fd, &result);
      const std::string where = result.mode + " with " + std::to_string(n) + " peers: ";
      if (!status.ok() || CaughtSignal() != 0) return Fail(where + status.ToString());
      if (result.mismatches > 0) {
        return Fail(where + (out ? "target " : "initiator ") + std::to_string(result.first_peer) +
                    "'s region read back " + std::to_string(result.mismatches) +
                    " wrong byte(s), the first at offset " + std::to_string(result.first_offset));
      }
      PrintRow(o, result);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  bool help = false;
  Status status = ParseOptions(argc, argv, &options, &help);
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", status.message().c_str());
    return kBadFlagsExit;
  }
  if (help) {
    std::printf("%s", UsageText());
    return 0;
  }
  if (!options.peer_role.empty()) return RunPeerProcess(options);
  return RunCases(options);
}
