#include "fan_common.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <new>
#include <set>
#include <sstream>

#include "bench_pattern.h"

namespace te::fan {
namespace {

constexpr uint64_t kMaxPeers = 4096;
constexpr uint64_t kMaxRegionBytes = 1ULL << 30;
// The fan-in target holds every initiator's region at once.
constexpr uint64_t kMaxTargetBytes = 32ULL << 30;
// How long one waitTransferStatus call waits; the engine fails a stuck transfer
// within its own transfer_timeout_ms anyway.
constexpr uint32_t kWaitSliceMs = 60000;

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, separator);) parts.push_back(part);
  if (!text.empty() && text.back() == separator) parts.emplace_back();
  return parts;
}

// A whole number in [low, high], with an optional K, M or G (x1024) when `scaled`.
Status ParseNumber(const std::string& flag, const std::string& text, uint64_t low, uint64_t high,
                   bool scaled, uint64_t* value) {
  const std::string bad = "--" + flag + ": '" + text + "' is not a whole number in [" +
                          std::to_string(low) + ", " + std::to_string(high) + "]";
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) {
    return Status::InvalidArgument(bad);
  }
  char* end = nullptr;
  errno = 0;
  unsigned long long number = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0) return Status::InvalidArgument(bad);
  std::string suffix(end);
  const std::map<std::string, int> shifts = {{"", 0}, {"K", 10}, {"M", 20}, {"G", 30}};
  auto shift = shifts.find(suffix);
  if (shift == shifts.end() || (!scaled && !suffix.empty()) || number > (high >> shift->second)) {
    return Status::InvalidArgument(bad);
  }
  *value = static_cast<uint64_t>(number) << shift->second;
  if (*value < low || *value > high) return Status::InvalidArgument(bad);
  return Status::OK();
}

Status ParseList(const std::string& flag, const std::string& text,
                 const std::vector<std::string>& allowed, std::vector<std::string>* values) {
  values->clear();
  for (const std::string& item : Split(text, ',')) {
    if (std::find(allowed.begin(), allowed.end(), item) == allowed.end() ||
        std::find(values->begin(), values->end(), item) != values->end()) {
      std::string expected;
      for (const std::string& a : allowed) expected += (expected.empty() ? "" : ", ") + a;
      return Status::InvalidArgument("--" + flag + ": '" + text +
                                     "' must list distinct values of " + expected);
    }
    values->push_back(item);
  }
  if (values->empty()) return Status::InvalidArgument("--" + flag + " must not be empty");
  return Status::OK();
}

Status ParseBool(const std::string& flag, const std::string& text, bool* value) {
  if (text == "true" || text == "1") {
    *value = true;
  } else if (text == "false" || text == "0") {
    *value = false;
  } else {
    return Status::InvalidArgument("--" + flag + ": '" + text + "' is not true or false");
  }
  return Status::OK();
}

// Ranges that depend on more than one flag.
Status CheckCombination(const Options& o) {
  if (o.RegionBytes() > kMaxRegionBytes) {
    return Status::InvalidArgument("--threads x --batch x --size (" +
                                   std::to_string(o.RegionBytes()) + " bytes) exceeds " +
                                   std::to_string(kMaxRegionBytes) + " bytes per engine");
  }
  const uint64_t most = *std::max_element(o.peers.begin(), o.peers.end());
  if (std::find(o.modes.begin(), o.modes.end(), "in") != o.modes.end() &&
      most * o.RegionBytes() > kMaxTargetBytes) {
    return Status::InvalidArgument("fan-in with " + std::to_string(most) +
                                   " peers needs a target buffer of " +
                                   std::to_string(most * o.RegionBytes()) + " bytes (at most " +
                                   std::to_string(kMaxTargetBytes) + ")");
  }
  if (o.host.empty()) return Status::InvalidArgument("--host must not be empty");
  if (o.transport.empty()) return Status::InvalidArgument("--transport must not be empty");
  if (o.workload != "read" && o.workload != "write") {
    return Status::InvalidArgument("--workload: '" + o.workload + "' is not read or write");
  }
  if (!(o.warmup >= 0 && o.warmup <= 600)) {
    return Status::InvalidArgument("--warmup must be between 0 and 600 seconds");
  }
  return Status::OK();
}

}  // namespace

const char* UsageText() {
  return "usage: te_fan_bench [--peers=1,4,16,64,256] [--modes=out,in] [--duration=5]\n"
         "       [--warmup=1] [--threads=2] [--batch=16] [--size=64K] [--workload=write|read]\n"
         "       [--procs=8] [--host=127.0.0.1] [--peer_host=H] [--peer_wrapper='ip netns exec "
         "B']\n"
         "       [--transport=tcp] [--json]\n"
         "fan-out: one initiator engine (this process) against N target engines; fan-in: N\n"
         "initiator engines against one target engine (this process). The N peer engines live\n"
         "in min(N, --procs) child processes. One row per mode and N. Modes: out (a batch's\n"
         "requests go to successive peers), out-batch (fan-out with each batch to one peer,\n"
         "the next batch to the next), in.\n";
}

namespace {

const std::set<std::string> kFlagNames = {
    "peers",
    "modes",
    "host",
    "peer_host",
    "peer_wrapper",
    "transport",
    "workload",
    "threads",
    "batch",
    "size",
    "duration",
    "warmup",
    "procs",
    "json",
    "peer_role",
    "peer_first",
    "peer_count",
    "control_fd",
#ifdef TE_FAN_TEST_HOOKS
    "TEST_corrupt_peer",
#endif
};

// Every --name=value of argv by name (a bare --json is --json=true); unknown names and
// other words are errors.
Status CollectFlags(int argc, char** argv, std::map<std::string, std::string>* values, bool* help) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      *help = true;
      return Status::OK();
    }
    if (arg == "--json") arg = "--json=true";
    const size_t equals = arg.find('=');
    const std::string name =
        arg.rfind("--", 0) == 0 && equals != std::string::npos ? arg.substr(2, equals - 2) : "";
    if (!kFlagNames.count(name)) return Status::InvalidArgument("unknown argument '" + arg + "'");
    (*values)[name] = arg.substr(equals + 1);
  }
  return Status::OK();
}

}  // namespace

Status ParseOptions(int argc, char** argv, Options* o, bool* help) {
  *help = false;
  std::map<std::string, std::string> v;
  TE_RETURN_IF_ERROR(CollectFlags(argc, argv, &v, help));
  if (*help) return Status::OK();
  auto number = [&v](const std::string& flag, uint64_t low, uint64_t high, bool scaled,
                     uint64_t* value) {
    return v.count(flag) ? ParseNumber(flag, v[flag], low, high, scaled, value) : Status::OK();
  };
  for (auto [name, field] : {std::pair{"host", &o->host},
                             {"peer_host", &o->peer_host},
                             {"transport", &o->transport},
                             {"workload", &o->workload},
                             {"peer_role", &o->peer_role}}) {
    if (v.count(name)) *field = v[name];
  }
  if (v.count("peers")) TE_RETURN_IF_ERROR(ParsePeers(v["peers"], &o->peers));
  if (v.count("modes"))
    TE_RETURN_IF_ERROR(ParseList("modes", v["modes"], {"out", "out-batch", "in"}, &o->modes));
  if (v.count("json")) TE_RETURN_IF_ERROR(ParseBool("json", v["json"], &o->json));
  TE_RETURN_IF_ERROR(number("threads", 1, 64, false, &o->threads));
  TE_RETURN_IF_ERROR(number("batch", 1, 1024, false, &o->batch));
  TE_RETURN_IF_ERROR(number("size", 1, 64ULL << 20, true, &o->size));
  TE_RETURN_IF_ERROR(number("duration", 1, 3600, false, &o->duration));
  TE_RETURN_IF_ERROR(number("procs", 1, 64, false, &o->procs));
  TE_RETURN_IF_ERROR(number("peer_first", 0, kMaxPeers, false, &o->peer_first));
  TE_RETURN_IF_ERROR(number("peer_count", 1, kMaxPeers, false, &o->peer_count));
  uint64_t control_fd = 0;
  TE_RETURN_IF_ERROR(number("control_fd", 0, 1 << 20, false, &control_fd));
  if (v.count("control_fd")) o->control_fd = static_cast<int>(control_fd);
#ifdef TE_FAN_TEST_HOOKS
  uint64_t corrupt = 0;
  TE_RETURN_IF_ERROR(number("TEST_corrupt_peer", 0, kMaxPeers, false, &corrupt));
  if (v.count("TEST_corrupt_peer")) o->test_corrupt_peer = static_cast<int64_t>(corrupt);
#endif
  if (v.count("warmup")) {
    char* end = nullptr;
    o->warmup = std::strtod(v["warmup"].c_str(), &end);
    if (v["warmup"].empty() || *end != '\0') {
      return Status::InvalidArgument("--warmup: '" + v["warmup"] + "' is no number");
    }
  }
  for (const std::string& word : Split(v["peer_wrapper"], ' ')) {
    if (!word.empty()) o->peer_wrapper.push_back(word);
  }
  if (!o->peer_role.empty() && o->peer_role != "target" && o->peer_role != "initiator") {
    return Status::InvalidArgument("--peer_role: '" + o->peer_role +
                                   "' is not target or initiator");
  }
  return CheckCombination(*o);
}

std::vector<std::string> PeerFlags(const Options& o) {
  return {
      "--host=" + o.PeerHost(),
      "--transport=" + o.transport,
      "--workload=" + o.workload,
      "--threads=" + std::to_string(o.threads),
      "--batch=" + std::to_string(o.batch),
      "--size=" + std::to_string(o.size),
      // Only the fan-in target holds every peer's region; a peer checks none.
      "--modes=out",
      "--peers=1",
#ifdef TE_FAN_TEST_HOOKS
      "--TEST_corrupt_peer=" + std::to_string(o.test_corrupt_peer),
#endif
  };
}

Status MakeEngine(const std::string& host, const std::string& transport,
                  std::unique_ptr<te::TransferEngine>* engine) {
  te::Config config;
  config.log_level = "error";
  TE_RETURN_IF_ERROR(te::Config::FromEnv(&config));
  // Settings that must differ per engine, or that the benchmark fixes.
  config.metadata_type = "p2p";
  config.local_segment_name.clear();
  config.rpc_host = host;
  config.rpc_port = 0;
  config.metrics_port = 0;
  config.transports = {transport};
  *engine = std::make_unique<te::TransferEngine>(config);
  if (!(*engine)->available()) return (*engine)->status();
  return Status::OK();
}

Status AllocateRegistered(te::TransferEngine* engine, uint64_t bytes, bool shm, uint8_t** addr) {
  te::MemoryOptions options;
  options.shm = shm;
  void* memory = nullptr;
  TE_RETURN_IF_ERROR(engine->allocateLocalMemory(&memory, bytes, options));
  *addr = static_cast<uint8_t*>(memory);
  return engine->registerLocalMemory(memory, bytes, options);  // the engine frees it on destruction
}

Status ParsePeers(const std::string& text, std::vector<uint64_t>* peers) {
  peers->clear();
  for (const std::string& item : Split(text, ',')) {
    uint64_t n = 0;
    TE_RETURN_IF_ERROR(ParseNumber("peers", item, 1, kMaxPeers, false, &n));
    peers->push_back(n);
  }
  if (peers->empty()) return Status::InvalidArgument("--peers must not be empty");
  return Status::OK();
}

Status CreateControl(Control** control, int* fd) {
  *fd = memfd_create("te_fan_bench_control", 0);  // inherited by the peer processes
  if (*fd < 0) return Status::FromErrno("memfd_create", errno);
  if (ftruncate(*fd, sizeof(Control)) != 0) return Status::FromErrno("ftruncate", errno);
  TE_RETURN_IF_ERROR(MapControl(*fd, control));
  new (*control) Control();
  if (sem_init(&(*control)->tokens, /*pshared=*/1, 0) != 0) {
    return Status::FromErrno("sem_init", errno);
  }
  ResetControl(*control);
  return Status::OK();
}

Status MapControl(int fd, Control** control) {
  void* memory = mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (memory == MAP_FAILED) return Status::FromErrno("mmap of the control block", errno);
  *control = static_cast<Control*>(memory);
  return Status::OK();
}

void ResetControl(Control* control) {
  control->phase.store(kIdle);
  control->failed.store(0);
  control->bytes.store(0);
  control->batches.store(0);
  while (sem_trywait(&control->tokens) == 0) {
  }
}

Status TransferSync(te::TransferEngine* engine, const std::vector<te::Request>& requests,
                    uint64_t* nanoseconds) {
  te::BatchID batch = 0;
  TE_RETURN_IF_ERROR(engine->allocateBatch(requests.size(), &batch));
  te::TransferStatus overall;
  const auto start = std::chrono::steady_clock::now();
  Status status = engine->submitTransfer(batch, requests);
  while (status.ok() && (status = engine->waitTransferStatus(batch, &overall, kWaitSliceMs)).ok() &&
         overall.state == te::TransferState::kPending) {
  }
  *nanoseconds = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
  Status freed = engine->freeBatch(batch);
  TE_RETURN_IF_ERROR(status);
  if (overall.state == te::TransferState::kFailed) return Status::Internal(overall.error);
  return freed;
}

namespace {

// Takes a token, waking every 100 ms to see whether the run is over. False: stop.
bool TakeToken(Control* control) {
  for (;;) {
    if (control->phase.load() == kStop) return false;
    timespec deadline{};
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 100 * 1000 * 1000;
    if (deadline.tv_nsec >= 1000000000) {
      deadline.tv_sec += 1;
      deadline.tv_nsec -= 1000000000;
    }
    if (sem_timedwait(&control->tokens, &deadline) == 0) return true;
  }
}

}  // namespace

void RunWorker(const WorkerSpec& spec, std::vector<uint64_t>* latencies, std::string* error) {
  Control* control = spec.control;
  const uint64_t routes = spec.routes.size();
  std::vector<te::Request> requests(spec.batch);
  uint64_t cursor = spec.spread_requests ? spec.thread * spec.batch : spec.thread;
  while (control->phase.load(std::memory_order_relaxed) != kStop) {
    const Route& first = spec.routes[cursor % routes];
    for (uint64_t j = 0; j < spec.batch; ++j) {
      const Route& route = spec.spread_requests ? spec.routes[(cursor + j) % routes] : first;
      const uint64_t offset = (spec.thread * spec.batch + j) * spec.size;
      requests[j] = {spec.opcode, route.local + offset, route.segment, route.remote + offset,
                     spec.size};
    }
    cursor += spec.spread_requests ? spec.batch : 1;
    if (spec.use_tokens && !TakeToken(control)) break;
    const bool measured = control->phase.load(std::memory_order_relaxed) == kMeasure;
    uint64_t nanoseconds = 0;
    Status status = TransferSync(first.engine, requests, &nanoseconds);
    if (spec.use_tokens) sem_post(&control->tokens);
    if (!status.ok()) {
      *error = "thread " + std::to_string(spec.thread) + ": " + status.ToString();
      control->failed.store(1);
      return;
    }
    if (measured) {
      latencies->push_back(nanoseconds);
      control->bytes.fetch_add(spec.batch * spec.size, std::memory_order_relaxed);
      control->batches.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

#ifdef TE_FAN_TEST_HOOKS
// Makes the remote region hold one wrong byte (at offset 5000, or its last), through
// the engine like any other WRITE.
Status TEST_CorruptOneByte(const Route& route, uint64_t bytes, uint64_t seed) {
  const uint64_t offset = std::min<uint64_t>(5000, bytes - 1);
  route.local[offset] = static_cast<uint8_t>(~te::bench::PatternByte(seed, offset));
  uint64_t nanoseconds = 0;
  return TransferSync(
      route.engine,
      {{te::Request::WRITE, route.local + offset, route.segment, route.remote + offset, 1}},
      &nanoseconds);
}
#endif

Status VerifyRegion(const Options& options, const Route& route, uint64_t bytes, uint64_t peer,
                    uint64_t* mismatches, uint64_t* first) {
  const uint64_t block = options.size;
  const uint64_t seed = te::bench::PatternSeed(peer, 0xfa2);
  te::bench::FillPattern(route.local, bytes, seed);
  std::vector<te::Request> requests;
  for (uint64_t offset = 0; offset < bytes; offset += block) {
    requests.push_back({te::Request::WRITE, route.local + offset, route.segment,
                        route.remote + offset, std::min(block, bytes - offset)});
  }
  uint64_t nanoseconds = 0;
  TE_RETURN_IF_ERROR(TransferSync(route.engine, requests, &nanoseconds));
#ifdef TE_FAN_TEST_HOOKS
  if (options.test_corrupt_peer == static_cast<int64_t>(peer)) {
    TE_RETURN_IF_ERROR(TEST_CorruptOneByte(route, bytes, seed));
  }
#endif
  std::memset(route.local, 0, bytes);
  for (te::Request& request : requests) request.opcode = te::Request::READ;
  TE_RETURN_IF_ERROR(TransferSync(route.engine, requests, &nanoseconds));
  *mismatches = 0;
  *first = te::bench::FindPatternMismatch(route.local, bytes, seed);
  for (uint64_t offset = *first; offset < bytes; ++offset) {
    *mismatches += route.local[offset] != te::bench::PatternByte(seed, offset);
  }
  return Status::OK();
}

ProcessSample SampleProcess() {
  ProcessSample sample;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Threads:", 0) == 0)
      sample.threads = std::strtoull(line.c_str() + 8, nullptr, 10);
    if (line.rfind("VmRSS:", 0) == 0) sample.rss_kib = std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (const dirent* entry = readdir(dir)) sample.fds += entry->d_name[0] != '.';
    closedir(dir);
    sample.fds -= 1;  // the directory's own descriptor
  }
  return sample;
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace te::fan
