#include "bench_report.h"

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "transport/transport_registry.h"

namespace te::bench {
namespace {

constexpr uint64_t kKilo = 1000ULL;
constexpr uint64_t kMega = 1000ULL * kKilo;
constexpr uint64_t kGiga = 1000ULL * kMega;

// The --report_unit table: decimal bytes, binary bytes, and bits (1/8 byte each).
constexpr std::array<std::pair<std::string_view, uint64_t>, 9> kReportUnits = {{
    {"GB", kGiga},
    {"GiB", 1ULL << 30},
    {"Gb", kGiga / 8},
    {"MB", kMega},
    {"MiB", 1ULL << 20},
    {"Mb", kMega / 8},
    {"KB", kKilo},
    {"KiB", 1ULL << 10},
    {"Kb", kKilo / 8},
}};

std::string Quoted(const std::string& value) { return "'" + value + "'"; }

// --transport: auto, or one transport of the table that reaches another process
// (the bench's target is one); a known one this build lacks is NotSupported.
Status CheckTransportFlag(const std::string& transport) {
  if (transport == "auto") return Status::OK();
  const TransportEntry* entry = FindTransport(transport);
  if (!entry || entry->reach == TransportReach::kSameProcess) {
    std::string expected = "auto";
    for (const TransportEntry& e : TransportTable()) {
      if (e.built && e.reach != TransportReach::kSameProcess)
        expected += std::string(", ") + e.name;
    }
    return Status::InvalidArgument("unknown --transport " + Quoted(transport) + " (expected " +
                                   expected + ")");
  }
  return CheckTransportBuilt(transport);
}

// --initiators belongs to the target, --initiator_index to an initiator.
Status CheckInitiatorFlags(const BenchFlags& flags) {
  const bool target = flags.remote_segment.empty();
  if (flags.initiators < 1 || flags.initiators > kMaxInitiators) {
    return Status::InvalidArgument("--initiators must be between 1 and " +
                                   std::to_string(kMaxInitiators) + " (got " +
                                   std::to_string(flags.initiators) + ")");
  }
  if (!target && flags.initiators != 1) {
    return Status::InvalidArgument(
        "--initiators is a target flag; an initiator takes --initiator_index");
  }
  if (target && flags.initiator_index != 0) {
    return Status::InvalidArgument(
        "--initiator_index is an initiator flag (it needs "
        "--remote_segment); a target takes --initiators");
  }
  return Status::OK();
}

}  // namespace

bool ParseWorkload(const std::string& name, Workload* workload) {
  if (name == "read") {
    *workload = Workload::kRead;
  } else if (name == "write") {
    *workload = Workload::kWrite;
  } else if (name == "mix") {
    *workload = Workload::kMix;
  } else {
    return false;
  }
  return true;
}

bool ParseReportUnit(const std::string& name, uint64_t* bytes_per_unit) {
  for (const auto& [unit, bytes] : kReportUnits) {
    if (name == unit) {
      *bytes_per_unit = bytes;
      return true;
    }
  }
  return false;
}

Status ValidateBenchFlags(const BenchFlags& flags, std::vector<BenchCase>* cases) {
  if (flags.cuda_devices < 0) {
    if (flags.use_vram_set && flags.use_vram) {
      return Status::NotSupported("--use_vram needs a build with -DUSE_CUDA=ON");
    }
    if (!flags.use_dram) {
      return Status::InvalidArgument(
          "--use_dram=false leaves nothing to benchmark: VRAM needs a build with -DUSE_CUDA=ON");
    }
  } else {
    // --use_vram defaults to true in a CUDA build; only an explicit one needs a device.
    if (flags.use_vram_set && flags.use_vram && flags.cuda_devices == 0) {
      return Status::NotSupported("--use_vram: no CUDA device is available");
    }
    if (!flags.use_dram && !(flags.use_vram && flags.cuda_devices > 0)) {
      return Status::InvalidArgument(
          "--use_dram=false leaves nothing to benchmark: no CUDA device is used either");
    }
  }
  Workload workload;
  if (!ParseWorkload(flags.workload, &workload)) {
    return Status::InvalidArgument("unknown --workload " + Quoted(flags.workload) +
                                   " (expected read, write or mix)");
  }
  uint64_t bytes_per_unit;
  if (!ParseReportUnit(flags.report_unit, &bytes_per_unit)) {
    return Status::InvalidArgument("unknown --report_unit " + Quoted(flags.report_unit) +
                                   " (expected GB, GiB, Gb, MB, MiB, Mb, KB, KiB or Kb)");
  }
  std::vector<uint64_t> batches, sizes, threads;
  TE_RETURN_IF_ERROR(ParseSweep("batch", flags.batch, false, &batches));
  TE_RETURN_IF_ERROR(ParseSweep("size", flags.size, true, &sizes));
  TE_RETURN_IF_ERROR(ParseSweep("threads", flags.threads, false, &threads));
  if (batches.size() * sizes.size() * threads.size() > kMaxSweepCases) {
    return Status::InvalidArgument("--threads x --batch x --size make more than " +
                                   std::to_string(kMaxSweepCases) + " cases");
  }
  if (flags.duration < 1) {
    return Status::InvalidArgument("--duration must be at least 1 second (got " +
                                   std::to_string(flags.duration) + ")");
  }
  if (!(flags.warmup >= 0 && flags.warmup <= kMaxWarmupSeconds)) {
    char got[64];
    std::snprintf(got, sizeof(got), "%g", flags.warmup);
    return Status::InvalidArgument("--warmup must be between 0 and " +
                                   std::to_string(static_cast<int>(kMaxWarmupSeconds)) +
                                   " seconds (got " + got + ")");
  }
  if (flags.report_precision > kMaxReportPrecision) {
    return Status::InvalidArgument("--report_precision must be at most " +
                                   std::to_string(kMaxReportPrecision) + " (got " +
                                   std::to_string(flags.report_precision) + ")");
  }
  if (flags.metadata_type.empty()) {
    return Status::InvalidArgument("--metadata_type must not be empty");
  }
  if (flags.metadata_type != "p2p" && flags.metadata_servers.empty()) {
    return Status::InvalidArgument("--metadata_servers is required with --metadata_type=" +
                                   flags.metadata_type);
  }
  if (flags.integrity_check && workload != Workload::kMix) {
    return Status::InvalidArgument("--integrity_check needs --workload=mix (got " +
                                   Quoted(flags.workload) + ")");
  }
  TE_RETURN_IF_ERROR(CheckTransportFlag(flags.transport));
  TE_RETURN_IF_ERROR(CheckInitiatorFlags(flags));
  std::vector<BenchCase> expanded = ExpandCases(threads, batches, sizes);
  for (const BenchCase& c : expanded) {
    uint64_t working_set;
    if (!WorkingSetBytes(c.size, c.batch, c.threads, &working_set)) {
      return Status::InvalidArgument("--size x --batch x --threads does not fit in 64 bits (" +
                                     std::to_string(c.size) + " x " + std::to_string(c.batch) +
                                     " x " + std::to_string(c.threads) + ")");
    }
  }
  if (cases) *cases = std::move(expanded);
  return Status::OK();
}

double RateInUnit(uint64_t bytes, double seconds, const std::string& unit) {
  uint64_t bytes_per_unit = kGiga;
  ParseReportUnit(unit, &bytes_per_unit);
  if (!(seconds > 0)) return 0;
  return static_cast<double>(bytes) / seconds / static_cast<double>(bytes_per_unit);
}

std::string FormatRate(uint64_t bytes, double seconds, const std::string& unit,
                       uint64_t precision) {
  uint64_t ignored;
  const std::string shown = ParseReportUnit(unit, &ignored) ? unit : "GB";
  if (precision > kMaxReportPrecision) precision = kMaxReportPrecision;
  char text[128];
  std::snprintf(text, sizeof(text), "%.*f %s/s", static_cast<int>(precision),
                RateInUnit(bytes, seconds, shown), shown.c_str());
  return text;
}

bool WorkingSetBytes(uint64_t size, uint64_t batch, uint64_t threads, uint64_t* bytes) {
  uint64_t per_thread;
  if (__builtin_mul_overflow(size, batch, &per_thread)) return false;
  return !__builtin_mul_overflow(per_thread, threads, bytes);
}

std::string ShellQuote(const std::string& word) {
  constexpr std::string_view kSafe =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-";
  if (!word.empty() && word.find_first_not_of(kSafe) == std::string::npos) return word;
  std::string quoted = "'";
  for (char c : word) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

std::string InitiatorCommand(const std::string& program, const std::string& metadata_type,
                             const std::string& metadata_servers, const std::string& segment) {
  std::string command = ShellQuote(program);
  auto add = [&command](const std::string& flag, const std::string& value) {
    command += ' ';
    command += ShellQuote(flag + value);
  };
  if (metadata_type != "p2p") {
    add("--metadata_type=", metadata_type);
    add("--metadata_servers=", metadata_servers);
  }
  add("--remote_segment=", segment);
  return command;
}

std::string SummaryLine(const BenchResult& result) {
  char head[128];
  std::snprintf(head, sizeof(head), "Test completed: duration %.2fs, batch count %" PRIu64,
                result.seconds, result.batch_count);
  return std::string(head) + ", throughput " +
         FormatRate(result.bytes, result.seconds, result.unit, result.precision);
}

Status IntegrityVerdict(const std::vector<BenchResult>& results, std::string* line) {
  uint64_t verified = 0;
  for (const BenchResult& result : results) {
    if (result.verified_batches == 0) {
      return Status::Internal("integrity check verified no batch (" + result.workload + " " +
                              std::to_string(result.size) + " bytes x" +
                              std::to_string(result.batch) +
                              " t=" + std::to_string(result.threads) + "): nothing was checked");
    }
    verified += result.verified_batches;
  }
  if (results.empty()) return Status::Internal("integrity check ran no case");
  *line = "integrity check passed (" + std::to_string(verified) + " batches verified)";
  return Status::OK();
}

std::string JsonLine(const BenchResult& result) {
  nlohmann::json json = {
      {"workload", result.workload},
      {"transport", result.transport},
      {"threads", result.threads},
      {"batch", result.batch},
      {"size", result.size},
      {"duration_s", result.seconds},
      {"warmup_s", result.warmup_seconds},
      {"batch_count", result.batch_count},
      {"bytes", result.bytes},
      {"unit", result.unit},
      {"throughput", RateInUnit(result.bytes, result.seconds, result.unit)},
      {"bytes_per_second", result.seconds > 0 ? result.bytes / result.seconds : 0.0},
      {"latency_avg_us", result.latency_avg_us},
      {"latency_p50_us", result.latency_p50_us},
      {"latency_p99_us", result.latency_p99_us},
      {"latency_p999_us", result.latency_p999_us},
      {"latency_max_us", result.latency_max_us},
      {"cpu_seconds", result.cpu_seconds},
      {"integrity_check", result.integrity_check},
      {"verified_batches", result.verified_batches},
  };
  return json.dump();
}

namespace {
constexpr const char* kTableFormat = "%-8s %-9s %7s %5s %8s %7s %10s %10s %9s %9s %9s %9s %5s";
}  // namespace

std::string TableHeader(const std::string& unit) {
  char line[256];
  std::snprintf(line, sizeof(line), kTableFormat, "workload", "transport", "threads", "batch",
                "size", "seconds", "batches", (unit + "/s").c_str(), "avg_us", "p50_us", "p99_us",
                "p999_us", "cpu%");
  return line;
}

std::string TableRow(const BenchResult& result) {
  auto fixed = [](double value, int decimals) {
    char text[64];
    std::snprintf(text, sizeof(text), "%.*f", decimals, value);
    return std::string(text);
  };
  const int precision = static_cast<int>(std::min(result.precision, kMaxReportPrecision));
  const std::string rate = fixed(RateInUnit(result.bytes, result.seconds, result.unit), precision);
  const std::string cpu =
      fixed(result.seconds > 0 ? 100 * result.cpu_seconds / result.seconds : 0.0, 0);
  char line[512];
  std::snprintf(line, sizeof(line), kTableFormat, result.workload.c_str(), result.transport.c_str(),
                std::to_string(result.threads).c_str(), std::to_string(result.batch).c_str(),
                FormatSize(result.size).c_str(), fixed(result.seconds, 2).c_str(),
                std::to_string(result.batch_count).c_str(), rate.c_str(),
                fixed(result.latency_avg_us, 1).c_str(), fixed(result.latency_p50_us, 1).c_str(),
                fixed(result.latency_p99_us, 1).c_str(), fixed(result.latency_p999_us, 1).c_str(),
                cpu.c_str());
  return line;
}

std::string ProgressLine(const Progress& progress) {
  char line[256];
  std::snprintf(line, sizeof(line), "[%zu/%zu] %s %s x%" PRIu64 " t=%" PRIu64 ": %s %.1f/%.1f s",
                progress.case_index + 1, progress.case_count, progress.workload.c_str(),
                FormatSize(progress.bench_case.size).c_str(), progress.bench_case.batch,
                progress.bench_case.threads, progress.warming_up ? "warm-up" : "measuring",
                progress.elapsed_seconds, progress.phase_seconds);
  std::string text = line;
  if (!progress.warming_up && !progress.rate.empty()) text += ", " + progress.rate;
  return text;
}

}  // namespace te::bench
