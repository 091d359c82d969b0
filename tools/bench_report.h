// Pieces of transfer_engine_bench that need no engine: flag validation, the
// throughput units and their formatting, the initiator command the target prints,
// the result table and JSON lines. Kept apart so they can be unit tested.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench_sweep.h"
#include "te/status.h"

namespace te::bench {

enum class Workload { kRead, kWrite, kMix };

// The benchmark flags that ValidateBenchFlags checks, as parsed by gflags.
struct BenchFlags {
  std::string metadata_type = "p2p";
  std::string metadata_servers;
  std::string workload = "read";
  std::string remote_segment;
  bool integrity_check = false;  // --integrity_check or --check
  bool shmfs = false;
  // One value as in the spec, or a sweep (see ParseSweep).
  std::string batch = "16";
  std::string size = "65536";
  std::string threads = "4";
  int64_t duration = 10;
  double warmup = 1;
  std::string report_unit = "GB";
  uint64_t report_precision = 2;
  bool use_dram = true;
  bool use_vram = true;
  bool use_vram_set = false;  // --use_vram was given on the command line
  // CUDA devices this run may use; -1 in a build without CUDA.
  int cuda_devices = -1;
  std::string transport = "auto";
  // Target: room for this many initiators, each in its own slice of every buffer.
  uint64_t initiators = 1;
  // Initiator: the slice of the target's buffers it uses (0 <= index < the target's
  // --initiators), so that several initiators never touch the same remote bytes.
  uint64_t initiator_index = 0;
};

// The most digits --report_precision may ask for.
inline constexpr uint64_t kMaxReportPrecision = 12;
inline constexpr double kMaxWarmupSeconds = 3600;
inline constexpr uint64_t kMaxInitiators = 1024;

// Checks every flag before anything is started. InvalidArgument for bad values,
// NotSupported for what this build cannot do (VRAM). *cases (if given) receives the
// combinations of the --threads, --batch and --size sweeps, in the order they run.
Status ValidateBenchFlags(const BenchFlags& flags, std::vector<BenchCase>* cases = nullptr);

// "read", "write" or "mix"; false for anything else.
bool ParseWorkload(const std::string& name, Workload* workload);

// Bytes in one `name`: GB, GiB, Gb, MB, MiB, Mb, KB, KiB, Kb (case-sensitive; the
// lower-case b units are bits: Gb is 1e9/8 bytes). False for anything else.
bool ParseReportUnit(const std::string& name, uint64_t* bytes_per_unit);

// bytes/seconds in `unit` with `precision` decimals, e.g. "2.34 GB/s". An unknown
// unit counts as GB; a non-positive duration gives a rate of 0.
double RateInUnit(uint64_t bytes, double seconds, const std::string& unit);
std::string FormatRate(uint64_t bytes, double seconds, const std::string& unit, uint64_t precision);

// size * batch * threads: the bytes the workers use at once. False on overflow.
bool WorkingSetBytes(uint64_t size, uint64_t batch, uint64_t threads, uint64_t* bytes);

// `word` when it needs no quoting in a POSIX shell, else `word` in single quotes.
std::string ShellQuote(const std::string& word);

// The command a target prints for starting an initiator against it:
// "<program> --remote_segment=<segment>", with --metadata_type and
// --metadata_servers when they are not p2p.
std::string InitiatorCommand(const std::string& program, const std::string& metadata_type,
                             const std::string& metadata_servers, const std::string& segment);

// What an initiator measured in one case.
struct BenchResult {
  std::string workload;
  std::string transport;  // engine.primaryTransport()
  uint64_t threads = 0;
  uint64_t batch = 0;
  uint64_t size = 0;
  double seconds = 0;
  uint64_t batch_count = 0;
  uint64_t bytes = 0;
  bool integrity_check = false;
  uint64_t verified_batches = 0;
  std::string unit;
  uint64_t precision = 2;
  double warmup_seconds = 0;
  // Per batch, from submitTransfer until every task completed, in microseconds.
  double latency_avg_us = 0;
  double latency_p50_us = 0;
  double latency_p99_us = 0;
  double latency_p999_us = 0;
  double latency_max_us = 0;
  // User plus system CPU time of the initiator process while measuring.
  double cpu_seconds = 0;
};

// "Test completed: duration 10.00s, batch count 1234, throughput 2.34 GB/s"
std::string SummaryLine(const BenchResult& result);
// The same, with latency and CPU, as one JSON object on one line.
std::string JsonLine(const BenchResult& result);
// The integrity verdict of a run with --integrity_check: OK, with *line
// "integrity check passed (N batches verified)", only when every case verified at
// least one batch; a case that verified none checked nothing, so it is an error
// naming that case.
Status IntegrityVerdict(const std::vector<BenchResult>& results, std::string* line);
// The result table: a header naming the columns (throughput in `unit`/s), then one
// row per case, columns aligned.
std::string TableHeader(const std::string& unit);
std::string TableRow(const BenchResult& result);

// The live progress line of a case, e.g.
// "[2/6] read 64KiB x16 t=2: measuring 3/10 s, 2.34 GB/s"; a warm-up shows no rate.
struct Progress {
  size_t case_index = 0;  // from 0
  size_t case_count = 1;
  std::string workload;
  BenchCase bench_case;
  bool warming_up = false;
  double elapsed_seconds = 0;  // in the current phase
  double phase_seconds = 0;
  std::string rate;  // e.g. "2.34 GB/s" over the last update; empty for none
};
std::string ProgressLine(const Progress& progress);

}  // namespace te::bench
