// engine_overhead_bench: what the engine costs per request outside the copy itself.
// Each iteration is one batch through the public API, as an application runs it:
// allocateBatch, submitTransfer of `batch` READs of `size` bytes, getTransferStatus
// until done, freeBatch. The requests target the engine's own segment, so the "local"
// transport copies them inline and nothing waits on a network or another thread: the
// time is the engine's bookkeeping plus the memcpy.
//
//   BM_RequestRoundTrip  the whole batch; per_request = CPU time / batch
//   BM_RequestOverhead   the same, and the engine's cost alone: overhead_ns is the CPU
//                        time per request minus copy_ns, what the same memcpys take
//                        on their own (calibrated before the run)
//   BM_SubmitOnly        one request per submitTransfer into a batch allocated once
//                        for 4096 of them, and its task's status until done: the
//                        cost of a request without allocateBatch/freeBatch
//
// Each runs with metrics=0 and metrics=1: the second engine has its Prometheus
// endpoint on (metrics_port), so it also times every slice and batch for the latency
// histograms. The difference between the two is what metrics cost per request.
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "te/transfer_engine.h"

namespace {

constexpr size_t kMaxBatch = 64;
constexpr size_t kMaxSize = 64 * 1024;

[[noreturn]] void Die(const char* what, const te::Status& status) {
  std::fprintf(stderr, "error: %s: %s\n", what, status.ToString().c_str());
  std::exit(1);
}

// A loopback port free now (the kernel's pick, released again) for the endpoint.
uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("picking a port for the metrics endpoint", te::Status::FromErrno("bind", errno));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// One engine per metrics setting for the whole run, with a registered source and
// destination and a handle to its own segment.
struct Fixture {
  std::unique_ptr<te::TransferEngine> engine;
  char* source = nullptr;
  char* destination = nullptr;
  te::SegmentHandle self = 0;

  explicit Fixture(bool metrics) {
    te::Config config;
    config.rpc_host = "127.0.0.1";
    config.transports = {"local"};
    config.log_level = "error";
    if (metrics) config.metrics_port = FreePort();
    engine = std::make_unique<te::TransferEngine>(config);
    if (!engine->available()) Die("engine", engine->status());
    te::MemoryOptions options;
    options.permission = te::Permission::kRemoteReadWrite;
    for (char** buffer : {&source, &destination}) {
      void* addr = nullptr;
      te::Status s = engine->allocateLocalMemory(&addr, kMaxBatch * kMaxSize, options);
      if (!s.ok()) Die("allocateLocalMemory", s);
      s = engine->registerLocalMemory(addr, kMaxBatch * kMaxSize, options);
      if (!s.ok()) Die("registerLocalMemory", s);
      std::memset(addr, 1, kMaxBatch * kMaxSize);
      *buffer = static_cast<char*>(addr);
    }
    te::Status s = engine->openSegment(&self, engine->getSegmentName());
    if (!s.ok()) Die("openSegment", s);
  }

  std::vector<te::Request> Requests(size_t batch, size_t size) const {
    std::vector<te::Request> requests(batch);
    for (size_t i = 0; i < batch; ++i) {
      requests[i].opcode = te::Request::READ;
      requests[i].source = destination + i * size;
      requests[i].target_id = self;
      requests[i].target_offset = reinterpret_cast<uint64_t>(source + i * size);
      requests[i].length = size;
    }
    return requests;
  }

  void RoundTrip(const std::vector<te::Request>& requests) const {
    te::BatchID batch = 0;
    te::Status s = engine->allocateBatch(requests.size(), &batch);
    if (!s.ok()) Die("allocateBatch", s);
    s = engine->submitTransfer(batch, requests);
    if (!s.ok()) Die("submitTransfer", s);
    te::TransferStatus overall;
    do {
      s = engine->getTransferStatus(batch, &overall);
      if (!s.ok()) Die("getTransferStatus", s);
    } while (overall.state == te::TransferState::kPending);
    if (overall.state != te::TransferState::kCompleted) {
      Die("transfer", te::Status::IoError(overall.error));
    }
    s = engine->freeBatch(batch);
    if (!s.ok()) Die("freeBatch", s);
  }

  void Copies(size_t batch, size_t size) const {
    for (size_t i = 0; i < batch; ++i) {
      std::memmove(destination + i * size, source + i * size, size);
    }
    benchmark::ClobberMemory();
  }
};

const Fixture& TheFixture(int64_t metrics) {
  if (metrics) {
    static const Fixture with_metrics(true);
    return with_metrics;
  }
  static const Fixture without(false);
  return without;
}

void CountRequests(benchmark::State& state, size_t batch) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  state.counters["per_request"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
}

void BM_RequestRoundTrip(benchmark::State& state) {
  const Fixture& f = TheFixture(state.range(2));
  const size_t batch = static_cast<size_t>(state.range(0));
  const std::vector<te::Request> requests = f.Requests(batch, static_cast<size_t>(state.range(1)));
  for (auto _ : state) f.RoundTrip(requests);
  CountRequests(state, batch);
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void BM_RequestOverhead(benchmark::State& state) {
  const Fixture& f = TheFixture(state.range(2));
  const size_t batch = static_cast<size_t>(state.range(0));
  const size_t size = static_cast<size_t>(state.range(1));
  const std::vector<te::Request> requests = f.Requests(batch, size);
  // The copies' own CPU time, with caches as warm as in the timed loop; the least of a
  // few rounds, as a round can only be slowed down, never sped up.
  double copy_seconds = 1e9;
  for (int round = 0; round < 5; ++round) {
    constexpr int kCalibration = 2000;
    const double start = ThreadCpuSeconds();
    for (int i = 0; i < kCalibration; ++i) f.Copies(batch, size);
    copy_seconds = std::min(copy_seconds, (ThreadCpuSeconds() - start) / kCalibration);
  }
  const double start = ThreadCpuSeconds();
  for (auto _ : state) f.RoundTrip(requests);
  const double per_request =
      (ThreadCpuSeconds() - start) / static_cast<double>(state.iterations() * batch);
  const double copy_per_request = copy_seconds / static_cast<double>(batch);
  CountRequests(state, batch);
  state.counters["copy_ns"] = copy_per_request * 1e9;
  state.counters["overhead_ns"] = (per_request - copy_per_request) * 1e9;
}

void BM_SubmitOnly(benchmark::State& state) {
  constexpr size_t kTasks = 4096;
  const Fixture& f = TheFixture(state.range(1));
  const std::vector<te::Request> request = f.Requests(1, static_cast<size_t>(state.range(0)));
  te::BatchID batch = 0;
  size_t task = kTasks;
  for (auto _ : state) {
    if (task == kTasks) {  // a fresh batch: 1/4096 of its cost per request
      if (batch != 0 && !f.engine->freeBatch(batch).ok()) std::exit(1);
      if (!f.engine->allocateBatch(kTasks, &batch).ok()) std::exit(1);
      task = 0;
    }
    te::Status s = f.engine->submitTransfer(batch, request);
    if (!s.ok()) Die("submitTransfer", s);
    te::TransferStatus st;
    do {
      s = f.engine->getTransferStatus(batch, task, &st);
      if (!s.ok()) Die("getTransferStatus", s);
    } while (st.state == te::TransferState::kPending);
    ++task;
  }
  f.engine->freeBatch(batch);
  CountRequests(state, 1);
}

void Sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "size", "metrics"});
  for (int64_t batch : {1, 16, 64}) {
    for (int64_t size : {8, 64, 4096}) {
      for (int64_t metrics : {0, 1}) b->Args({batch, size, metrics});
    }
  }
}

BENCHMARK(BM_RequestRoundTrip)->Apply(Sizes);
BENCHMARK(BM_RequestOverhead)->Apply(Sizes);
BENCHMARK(BM_SubmitOnly)->ArgNames({"size", "metrics"})->ArgsProduct({{8, 64, 4096}, {0, 1}});

}  // namespace

BENCHMARK_MAIN();
