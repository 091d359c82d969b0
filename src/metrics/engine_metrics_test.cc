#include "metrics/engine_metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace te {
namespace {

EngineStatistics Filled(const EngineMetrics& m) {
  EngineStatistics s;
  m.Fill(&s);
  return s;
}

TEST(EngineMetricsTest, CountsByTransportAndOpcode) {
  EngineMetrics m({"shm", "tcp"}, "p2p", false);
  m.CountRequest(1, Request::READ, 100);
  m.CountRequest(1, Request::READ, 50);
  m.CountRequest(1, Request::WRITE, 7);
  m.CountRequest(0, Request::WRITE, 3);
  const EngineStatistics s = Filled(m);
  const TransportStatistics& tcp = s.transports.at("tcp");
  EXPECT_EQ(tcp.read_bytes, 150u);
  EXPECT_EQ(tcp.read_requests, 2u);
  EXPECT_EQ(tcp.write_bytes, 7u);
  EXPECT_EQ(tcp.write_requests, 1u);
  EXPECT_EQ(s.transports.at("shm").write_bytes, 3u);
  EXPECT_EQ(s.transports.at("shm").read_requests, 0u);
  // The old field keeps its meaning: all bytes per transport.
  EXPECT_EQ(s.bytes_by_transport.at("tcp"), 157u);
  EXPECT_EQ(s.bytes_by_transport.at("shm"), 3u);
}

TEST(EngineMetricsTest, RetriesAddBytesButNoRequests) {
  EngineMetrics m({"shm", "tcp"}, "p2p", false);
  m.CountRequest(0, Request::WRITE, 64);
  m.CountRetry(1, Request::WRITE, 64);
  const EngineStatistics s = Filled(m);
  EXPECT_EQ(s.retried_slices, 1u);
  EXPECT_EQ(s.transports.at("tcp").write_bytes, 64u);
  EXPECT_EQ(s.transports.at("tcp").write_requests, 0u);
}

TEST(EngineMetricsTest, ConcurrentAddsFromManyThreadsAreAllCounted) {
  // More threads than shards, so some share one: no add may be lost either way.
  EngineMetrics m({"tcp"}, "p2p", true);
  constexpr int kThreads = EngineMetrics::kShards + 4, kAdds = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&m] {
      for (int i = 0; i < kAdds; ++i) {
        m.CountRequest(0, Request::READ, 3);
        m.AddInFlight(1);
        m.ObserveSlice(0, 2000);
        m.AddInFlight(-1);
      }
    });
  }
  for (auto& t : threads) t.join();
  const EngineStatistics s = Filled(m);
  const uint64_t n = uint64_t{kThreads} * kAdds;
  EXPECT_EQ(s.transports.at("tcp").read_requests, n);
  EXPECT_EQ(s.transports.at("tcp").read_bytes, 3 * n);
  EXPECT_EQ(s.transports.at("tcp").slice_latency.count, n);
  EXPECT_EQ(s.slices_in_flight, 0);
}

TEST(EngineMetricsTest, LatenciesLandInTheirBuckets) {
  EngineMetrics m({"tcp"}, "p2p", true);
  m.ObserveSlice(0, 1000);           // exactly 1 us: the first bucket (le = 1e-6)
  m.ObserveSlice(0, 3000);           // 3 us: le = 5e-6
  m.ObserveSlice(0, 2'000'000'000);  // 2 s: le = 5
  m.ObserveSlice(0, 9'000'000'000);  // 9 s: past the last bound
  m.ObserveBatch(0, 3000);
  const TransportStatistics t = Filled(m).transports.at("tcp");
  const LatencyHistogram& h = t.slice_latency;
  ASSERT_EQ(h.counts.size(), EngineMetrics::LatencyBounds().size() + 1);
  EXPECT_EQ(h.counts[0], 1u);
  EXPECT_EQ(h.counts[1], 1u);
  EXPECT_EQ(h.counts[h.counts.size() - 2], 1u);
  EXPECT_EQ(h.counts.back(), 1u);
  EXPECT_EQ(h.count, 4u);
  EXPECT_DOUBLE_EQ(h.sum_seconds, 11.000004);
  EXPECT_EQ(t.batch_latency.count, 1u);
  EXPECT_EQ(t.batch_latency.counts[1], 1u);
}

TEST(EngineMetricsTest, FailuresRefusalsAndMetadataHaveLabelNames) {
  EngineMetrics m({"cma", "tcp"}, "redis", false);
  m.CountFailure(1, Status::Code::kTimeout);
  m.CountFailure(1, Status::Code::kTimeout);
  m.CountFailure(0, Status::Code::kIoError);
  m.CountRefusal(Status::OutOfRange("x"));
  m.CountRefusal(Status::PermissionDenied("x"));
  m.CountRefusal(Status::PermissionDenied("x"));
  m.CountRefusal(Refusal::kAuthentication);
  m.CountRefusal(Status::InvalidArgument("not a refusal by a buffer check"));
  m.CountServed(4096);
  m.CountMetadata(MetadataOperation::kLookup, Status::Code::kOk);
  m.CountMetadata(MetadataOperation::kLookup, Status::Code::kUnavailable);
  m.CountMetadata(MetadataOperation::kLookup, Status::Code::kOk);
  const EngineStatistics s = Filled(m);
  EXPECT_EQ(s.transports.at("tcp").failures_by_reason,
            (std::map<std::string, uint64_t>{{"timeout", 2}}));
  EXPECT_EQ(s.transports.at("cma").failures_by_reason,
            (std::map<std::string, uint64_t>{{"io_error", 1}}));
  EXPECT_EQ(s.refusals_by_reason,
            (std::map<std::string, uint64_t>{
                {"authentication", 1}, {"out_of_range", 1}, {"permission", 2}}));
  EXPECT_EQ(s.served_requests, 1u);
  EXPECT_EQ(s.served_bytes, 4096u);
  EXPECT_EQ(s.metadata_backend, "redis");
  ASSERT_EQ(s.metadata_operations.size(), 2u);
  EXPECT_EQ(s.metadata_operations[0].operation, "lookup");
  EXPECT_EQ(s.metadata_operations[0].result, "ok");
  EXPECT_EQ(s.metadata_operations[0].count, 2u);
  EXPECT_EQ(s.metadata_operations[1].result, "unavailable");
  EXPECT_EQ(s.metadata_operations[1].count, 1u);
}

TEST(EngineMetricsTest, ConnectionGaugeFollowsHolds) {
  EngineMetrics m({"shm", "tcp"}, "p2p", false);
  EXPECT_EQ(m.Connections("rdma", false), nullptr);
  {
    GaugeHold a(m.Connections("tcp", false));
    GaugeHold b(m.Connections("tcp", true));
    GaugeHold moved = std::move(a);
    const EngineStatistics s = Filled(m);
    EXPECT_EQ(s.transports.at("tcp").outbound_connections, 1);
    EXPECT_EQ(s.transports.at("tcp").inbound_connections, 1);
    EXPECT_EQ(s.transports.at("shm").outbound_connections, 0);
  }
  EXPECT_EQ(Filled(m).transports.at("tcp").outbound_connections, 0);
  EXPECT_EQ(Filled(m).transports.at("tcp").inbound_connections, 0);
}

TEST(EngineMetricsTest, ReasonNamesAreSnakeCase) {
  EXPECT_EQ(StatusReasonName(Status::Code::kOutOfRange), "out_of_range");
  EXPECT_EQ(StatusReasonName(Status::Code::kPermissionDenied), "permission_denied");
  EXPECT_EQ(StatusReasonName(Status::Code::kCancelled), "cancelled");
}

}  // namespace
}  // namespace te
