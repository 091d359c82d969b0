// EngineMetrics: the engine's counters, cheap enough for the data path. Every figure
// is a slot in a per-shard block of relaxed atomics; a thread always writes the shard
// it was given on first use, so threads on different shards share no cache line and
// nothing takes a lock. Readers (getStatistics, a Prometheus scrape) sum the shards.
// Latency histograms need a clock read per slice and so are kept only when asked
// (the metrics endpoint is on): counters cost an add, a histogram a clock read too.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "te/status.h"
#include "te/types.h"

namespace te {

// Why the serving side refused a peer's request.
enum class Refusal : uint8_t { kOutOfRange = 0, kPermission = 1, kAuthentication = 2 };
constexpr size_t kRefusalCount = 3;
const char* RefusalName(Refusal r);  // "out_of_range", "permission", "authentication"

enum class MetadataOperation : uint8_t { kPublish = 0, kUnpublish = 1, kLookup = 2 };
constexpr size_t kMetadataOperationCount = 3;
const char* MetadataOperationName(MetadataOperation op);

// "timeout" for Status::Code::kTimeout: a Prometheus label value.
std::string StatusReasonName(Status::Code code);

// Holds one unit of a gauge while alive (e.g. an open connection).
class GaugeHold {
 public:
  GaugeHold() = default;
  explicit GaugeHold(std::atomic<int64_t>* gauge) : gauge_(gauge) {
    if (gauge_) gauge_->fetch_add(1, std::memory_order_relaxed);
  }
  ~GaugeHold() {
    if (gauge_) gauge_->fetch_sub(1, std::memory_order_relaxed);
  }
  GaugeHold(GaugeHold&& o) noexcept : gauge_(o.gauge_) { o.gauge_ = nullptr; }
  GaugeHold& operator=(GaugeHold&& o) noexcept {
    std::swap(gauge_, o.gauge_);
    return *this;
  }

 private:
  std::atomic<int64_t>* gauge_ = nullptr;
};

class EngineMetrics {
 public:
  static constexpr size_t kShards = 16;
  // Upper bounds of the latency buckets, in seconds (a last, unbounded one follows).
  static const std::vector<double>& LatencyBounds();

  // transports: the engine's transport names, indexed as the engine indexes them.
  EngineMetrics(std::vector<std::string> transports, std::string metadata_backend,
                bool time_latency);
  EngineMetrics(const EngineMetrics&) = delete;
  EngineMetrics& operator=(const EngineMetrics&) = delete;

  // ---- initiator side (transport = index into the names given) ----
  void CountRequest(size_t transport, Request::OpCode op, uint64_t bytes) {
    Add(Slot(transport, kRequests + op), 1);
    Add(Slot(transport, kBytes + op), bytes);
  }
  // A failed slice resubmitted on `transport`: its bytes count there too.
  void CountRetry(size_t transport, Request::OpCode op, uint64_t bytes) {
    Add(global_base_ + kRetried, 1);
    Add(Slot(transport, kBytes + op), bytes);
  }
  // A slice that failed for good.
  void CountFailure(size_t transport, Status::Code code) {
    Add(Slot(transport, kFailures + static_cast<size_t>(code)), 1);
  }
  void AddInFlight(int64_t slices) { Add(global_base_ + kInFlight, static_cast<uint64_t>(slices)); }
  bool timing() const { return time_latency_; }
  // Monotonic nanoseconds; what the latencies are measured with.
  static uint64_t NowNs();
  void ObserveSlice(size_t transport, uint64_t ns) { Observe(Slot(transport, kSliceHist), ns); }
  void ObserveBatch(size_t transport, uint64_t ns) { Observe(Slot(transport, kBatchHist), ns); }
  // Open connections of a transport (by name; null for an unknown one).
  std::atomic<int64_t>* Connections(const std::string& transport, bool inbound);

  // ---- serving side ----
  void CountServed(uint64_t bytes) {
    Add(global_base_ + kServedRequests, 1);
    Add(global_base_ + kServedBytes, bytes);
  }
  void CountRefusal(Refusal r) { Add(global_base_ + kRefusals + static_cast<size_t>(r), 1); }
  // Counts a refusal for a failed registry check (OutOfRange, PermissionDenied).
  void CountRefusal(const Status& verdict);

  void CountMetadata(MetadataOperation op, Status::Code code) {
    metadata_[static_cast<size_t>(op) * kCodes + static_cast<size_t>(code)].fetch_add(
        1, std::memory_order_relaxed);
  }

  // Everything counted so far, summed over shards, into the statistics' fields
  // (gauges the engine keeps itself, such as open segments, are left alone).
  void Fill(EngineStatistics* stats) const;

 private:
  static constexpr size_t kCodes = static_cast<size_t>(Status::Code::kInternal) + 1;
  static constexpr size_t kBuckets = 15;  // LatencyBounds().size() + 1
  // Per-transport slots: bytes[2], requests[2], failures[codes], two histograms of
  // buckets plus a sum of nanoseconds each.
  static constexpr size_t kBytes = 0, kRequests = 2, kFailures = 4, kSliceHist = kFailures + kCodes,
                          kBatchHist = kSliceHist + kBuckets + 1,
                          kPerTransport = kBatchHist + kBuckets + 1;
  // Global slots after the transports'.
  static constexpr size_t kRetried = 0, kInFlight = 1, kServedRequests = 2, kServedBytes = 3,
                          kRefusals = 4, kGlobals = kRefusals + kRefusalCount;

  size_t Slot(size_t transport, size_t what) const { return transport * kPerTransport + what; }
  static size_t ThreadShard();
  struct alignas(64) CacheLine {
    std::atomic<uint64_t> v[8];
  };
  std::atomic<uint64_t>& At(size_t shard, size_t slot) const {
    const size_t i = shard * stride_ + slot;
    return lines_[i / 8].v[i % 8];
  }
  void Add(size_t slot, uint64_t v) {
    At(ThreadShard(), slot).fetch_add(v, std::memory_order_relaxed);
  }
  void Observe(size_t hist_slot, uint64_t ns);
  uint64_t Sum(size_t slot) const;
  LatencyHistogram Histogram(size_t hist_slot) const;

  const std::vector<std::string> transports_;
  const std::string metadata_backend_;
  const bool time_latency_;
  const size_t global_base_;
  const size_t stride_;  // slots per shard, a whole number of cache lines
  std::unique_ptr<CacheLine[]> lines_;
  std::unique_ptr<std::atomic<int64_t>[]> connections_;  // [transport][outbound, inbound]
  std::atomic<uint64_t> metadata_[kMetadataOperationCount * kCodes] = {};
};

}  // namespace te
