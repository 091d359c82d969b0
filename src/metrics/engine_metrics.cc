#include "metrics/engine_metrics.h"

#include <algorithm>
#include <cctype>
#include <chrono>

namespace te {

const char* RefusalName(Refusal r) {
  switch (r) {
    case Refusal::kOutOfRange:
      return "out_of_range";
    case Refusal::kPermission:
      return "permission";
    case Refusal::kAuthentication:
      return "authentication";
  }
  return "unknown";
}

const char* MetadataOperationName(MetadataOperation op) {
  switch (op) {
    case MetadataOperation::kPublish:
      return "publish";
    case MetadataOperation::kUnpublish:
      return "unpublish";
    case MetadataOperation::kLookup:
      return "lookup";
  }
  return "unknown";
}

std::string StatusReasonName(Status::Code code) {
  // "OutOfRange" -> "out_of_range"
  std::string out;
  for (const char* p = Status::CodeName(code); *p; ++p) {
    if (std::isupper(static_cast<unsigned char>(*p)) && !out.empty()) out += '_';
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
  }
  return out;
}

const std::vector<double>& EngineMetrics::LatencyBounds() {
  static const std::vector<double> bounds = {1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3,
                                             5e-3, 1e-2, 5e-2, 0.1,  0.5,  1,    5};
  return bounds;
}

EngineMetrics::EngineMetrics(std::vector<std::string> transports, std::string metadata_backend,
                             bool time_latency)
    : transports_(std::move(transports)),
      metadata_backend_(std::move(metadata_backend)),
      time_latency_(time_latency),
      global_base_(transports_.size() * kPerTransport),
      stride_((global_base_ + kGlobals + 7) / 8 * 8),
      lines_(new CacheLine[kShards * stride_ / 8]()),
      connections_(new std::atomic<int64_t>[transports_.size() * 2]()) {
  static_assert(kBuckets == 15, "kBuckets must be LatencyBounds().size() + 1");
}

size_t EngineMetrics::ThreadShard() {
  static std::atomic<size_t> next{0};
  thread_local const size_t shard = next.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shard;
}

uint64_t EngineMetrics::NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

void EngineMetrics::Observe(size_t hist_slot, uint64_t ns) {
  static const std::vector<uint64_t> bounds_ns = [] {
    std::vector<uint64_t> v;
    for (double b : LatencyBounds()) v.push_back(static_cast<uint64_t>(b * 1e9));
    return v;
  }();
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(bounds_ns.begin(), bounds_ns.end(), ns) - bounds_ns.begin());
  const size_t shard = ThreadShard();
  At(shard, hist_slot + bucket).fetch_add(1, std::memory_order_relaxed);
  At(shard, hist_slot + kBuckets).fetch_add(ns, std::memory_order_relaxed);
}

std::atomic<int64_t>* EngineMetrics::Connections(const std::string& transport, bool inbound) {
  auto it = std::find(transports_.begin(), transports_.end(), transport);
  if (it == transports_.end()) return nullptr;
  return &connections_[static_cast<size_t>(it - transports_.begin()) * 2 + (inbound ? 1 : 0)];
}

void EngineMetrics::CountRefusal(const Status& verdict) {
  if (verdict.code() == Status::Code::kOutOfRange) CountRefusal(Refusal::kOutOfRange);
  if (verdict.code() == Status::Code::kPermissionDenied) CountRefusal(Refusal::kPermission);
}

uint64_t EngineMetrics::Sum(size_t slot) const {
  uint64_t total = 0;
  for (size_t s = 0; s < kShards; ++s) total += At(s, slot).load(std::memory_order_relaxed);
  return total;
}

LatencyHistogram EngineMetrics::Histogram(size_t hist_slot) const {
  LatencyHistogram h;
  h.upper_bounds_seconds = LatencyBounds();
  for (size_t b = 0; b < kBuckets; ++b) {
    h.counts.push_back(Sum(hist_slot + b));
    h.count += h.counts.back();
  }
  h.sum_seconds = static_cast<double>(Sum(hist_slot + kBuckets)) / 1e9;
  return h;
}

void EngineMetrics::Fill(EngineStatistics* stats) const {
  for (size_t t = 0; t < transports_.size(); ++t) {
    TransportStatistics& ts = stats->transports[transports_[t]];
    ts.read_bytes = Sum(Slot(t, kBytes + Request::READ));
    ts.write_bytes = Sum(Slot(t, kBytes + Request::WRITE));
    ts.read_requests = Sum(Slot(t, kRequests + Request::READ));
    ts.write_requests = Sum(Slot(t, kRequests + Request::WRITE));
    for (size_t c = 0; c < kCodes; ++c) {
      if (uint64_t n = Sum(Slot(t, kFailures + c))) {
        ts.failures_by_reason[StatusReasonName(static_cast<Status::Code>(c))] = n;
      }
    }
    ts.outbound_connections = connections_[t * 2].load(std::memory_order_relaxed);
    ts.inbound_connections = connections_[t * 2 + 1].load(std::memory_order_relaxed);
    ts.slice_latency = Histogram(Slot(t, kSliceHist));
    ts.batch_latency = Histogram(Slot(t, kBatchHist));
    stats->bytes_by_transport[transports_[t]] = ts.read_bytes + ts.write_bytes;
  }
  stats->retried_slices = Sum(global_base_ + kRetried);
  stats->slices_in_flight = static_cast<int64_t>(Sum(global_base_ + kInFlight));
  stats->served_requests = Sum(global_base_ + kServedRequests);
  stats->served_bytes = Sum(global_base_ + kServedBytes);
  for (size_t r = 0; r < kRefusalCount; ++r) {
    stats->refusals_by_reason[RefusalName(static_cast<Refusal>(r))] =
        Sum(global_base_ + kRefusals + r);
  }
  stats->metadata_backend = metadata_backend_;
  stats->metadata_operations.clear();
  for (size_t op = 0; op < kMetadataOperationCount; ++op) {
    for (size_t c = 0; c < kCodes; ++c) {
      const uint64_t n = metadata_[op * kCodes + c].load(std::memory_order_relaxed);
      if (n == 0) continue;
      stats->metadata_operations.push_back(
          {MetadataOperationName(static_cast<MetadataOperation>(op)),
           c == 0 ? "ok" : StatusReasonName(static_cast<Status::Code>(c)), n});
    }
  }
}

}  // namespace te
