// Pieces of transfer_engine_bench that need no engine: flag validation, the
// throughput units and their formatting, the initiator command the target prints
// and the JSON result line. Kept apart so they can be unit tested.
#pragma once

#include <cstdint>
#include <string>

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
  int64_t batch = 16;
  uint64_t size = 65536;
  int64_t duration = 10;
  int64_t threads = 4;
  std::string report_unit = "GB";
  uint64_t report_precision = 2;
  bool use_dram = true;
  bool use_vram = true;
  bool use_vram_set = false;  // --use_vram was given on the command line
  std::string transport = "auto";
};

// The most digits --report_precision may ask for.
inline constexpr uint64_t kMaxReportPrecision = 12;

// Checks every flag before anything is started. InvalidArgument for bad values,
// NotSupported for what this build cannot do (VRAM, the shm and cma transports).
Status ValidateBenchFlags(const BenchFlags& flags);

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

// What an initiator measured.
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
};

// "Test completed: duration 10.00s, batch count 1234, throughput 2.34 GB/s"
std::string SummaryLine(const BenchResult& result);
// The same as one JSON object on one line.
std::string JsonLine(const BenchResult& result);

}  // namespace te::bench
