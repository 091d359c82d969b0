// The Prometheus endpoint of a running engine, over a real socket: /health, /metrics,
// and counters that rise with a real TCP transfer between two engines.
#include "metrics/metrics_server.h"

#include <gtest/gtest.h>

#include <cstring>
#include <regex>
#include <string>

#include "common/socket.h"
#include "metadata/http_client.h"
#include "te/transfer_engine.h"

namespace te {
namespace {

// A port nothing listens on now: the kernel's pick, released again. Another process
// may take it before the engine binds it, so callers retry with a new one.
uint16_t UnusedPort() {
  UniqueFd fd;
  uint16_t port = 0;
  EXPECT_TRUE(Listen("127.0.0.1", 0, &fd, &port).ok());
  return port;
}

// An engine with its metrics endpoint on a free loopback port.
std::unique_ptr<TransferEngine> EngineWithMetrics(uint16_t* port) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    Config c;
    c.rpc_host = "127.0.0.1";
    c.transports = {"tcp"};
    c.log_level = "error";
    c.metrics_port = *port = UnusedPort();
    auto engine = std::make_unique<TransferEngine>(c);
    if (engine->available()) return engine;
    ADD_FAILURE() << "attempt " << attempt << ": " << engine->status().ToString();
  }
  return nullptr;
}

HttpResponse Get(uint16_t port, const std::string& path) {
  HttpFailover http("metrics", {{"http://127.0.0.1:" + std::to_string(port), ""}}, 2000);
  HttpResponse response;
  Status s = http.Send("GET", path, "", &response);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return response;
}

// The value of one sample line ("name{labels} value") in the text format; -1 if absent.
double Sample(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(MetricsServerTest, HealthSaysAvailable) {
  uint16_t port;
  auto engine = EngineWithMetrics(&port);
  ASSERT_TRUE(engine);
  HttpResponse r = Get(port, "/health");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "available\n");
  EXPECT_EQ(Get(port, "/nothing").status, 404);
}

TEST(MetricsServerTest, CountersRiseAfterATransfer) {
  uint16_t target_port, initiator_port;
  auto target = EngineWithMetrics(&target_port);
  auto initiator = EngineWithMetrics(&initiator_port);
  ASSERT_TRUE(target && initiator);
  constexpr size_t kSize = 3 << 20;  // three slices of the default 1 MiB
  void *remote, *local;
  ASSERT_TRUE(target->allocateLocalMemory(&remote, kSize).ok());
  ASSERT_TRUE(target->registerLocalMemory(remote, kSize).ok());
  ASSERT_TRUE(initiator->allocateLocalMemory(&local, kSize).ok());
  ASSERT_TRUE(initiator->registerLocalMemory(local, kSize).ok());
  std::memset(local, 0x5a, kSize);

  const std::string before = Get(initiator_port, "/metrics").body;
  const std::string kBytes = R"(te_transfer_bytes_total{opcode="write",transport="tcp"})";
  EXPECT_EQ(Sample(before, kBytes), 0) << before;
  EXPECT_EQ(Sample(before, "te_registered_bytes"), double(kSize)) << before;

  SegmentHandle seg;
  ASSERT_TRUE(initiator->openSegment(&seg, target->getSegmentName()).ok());
  BatchID batch;
  ASSERT_TRUE(initiator->allocateBatch(1, &batch).ok());
  Request req{Request::WRITE, local, seg, reinterpret_cast<uint64_t>(remote), kSize};
  ASSERT_TRUE(initiator->submitTransfer(batch, {req}).ok());
  TransferStatus st;
  ASSERT_TRUE(initiator->waitTransferStatus(batch, &st, 20000).ok());
  ASSERT_EQ(st.state, TransferState::kCompleted) << st.error;
  ASSERT_TRUE(initiator->freeBatch(batch).ok());
  ASSERT_EQ(std::memcmp(local, remote, kSize), 0);

  const std::string after = Get(initiator_port, "/metrics").body;
  EXPECT_EQ(Sample(after, kBytes), double(kSize)) << after;
  EXPECT_EQ(Sample(after, R"(te_transfer_requests_total{opcode="write",transport="tcp"})"), 1);
  EXPECT_EQ(Sample(after, R"(te_slice_duration_seconds_count{transport="tcp"})"), 3) << after;
  EXPECT_EQ(Sample(after, R"(te_batch_duration_seconds_count{transport="tcp"})"), 1) << after;
  EXPECT_EQ(Sample(after, "te_open_segments"), 1);
  EXPECT_EQ(Sample(after, "te_slices_in_flight"), 0);
  EXPECT_GE(Sample(after, R"(te_connections{direction="outbound",transport="tcp"})"), 1);
  EXPECT_EQ(Sample(after,
                   R"(te_metadata_operations_total{backend="p2p",operation="lookup",result="ok"})"),
            1)
      << after;
  // The target served the three slices.
  const std::string served = Get(target_port, "/metrics").body;
  EXPECT_EQ(Sample(served, "te_served_bytes_total"), double(kSize)) << served;
  EXPECT_EQ(Sample(served, "te_served_requests_total"), 3);
  EXPECT_EQ(Sample(served, R"(te_served_refusals_total{reason="out_of_range"})"), 0);
  // getStatistics reports the same figures.
  EngineStatistics stats;
  ASSERT_TRUE(initiator->getStatistics(&stats).ok());
  EXPECT_EQ(stats.transports.at("tcp").write_bytes, kSize);
  EXPECT_EQ(stats.transports.at("tcp").slice_latency.count, 3u);
}

TEST(MetricsServerTest, RefusedRequestsAreCountedByReason) {
  uint16_t target_port, initiator_port;
  auto target = EngineWithMetrics(&target_port);
  auto initiator = EngineWithMetrics(&initiator_port);
  ASSERT_TRUE(target && initiator);
  void *remote, *local;
  ASSERT_TRUE(target->allocateLocalMemory(&remote, 8192).ok());
  MemoryOptions read_only;
  read_only.permission = Permission::kRemoteRead;
  ASSERT_TRUE(target->registerLocalMemory(remote, 8192, read_only).ok());
  ASSERT_TRUE(initiator->allocateLocalMemory(&local, 8192).ok());
  ASSERT_TRUE(initiator->registerLocalMemory(local, 8192).ok());
  SegmentHandle seg;
  ASSERT_TRUE(initiator->openSegment(&seg, target->getSegmentName()).ok());
  BatchID batch;
  ASSERT_TRUE(initiator->allocateBatch(1, &batch).ok());
  // TCP's far side checks: a WRITE to a read-only buffer goes out and is refused there.
  Request req{Request::WRITE, local, seg, reinterpret_cast<uint64_t>(remote), 4096};
  ASSERT_TRUE(initiator->submitTransfer(batch, {req}).ok());
  TransferStatus st;
  ASSERT_TRUE(initiator->waitTransferStatus(batch, &st, 20000).ok());
  EXPECT_EQ(st.state, TransferState::kFailed);
  ASSERT_TRUE(initiator->freeBatch(batch).ok());
  const std::string text = Get(target_port, "/metrics").body;
  EXPECT_EQ(Sample(text, R"(te_served_refusals_total{reason="permission"})"), 1) << text;
  const std::string mine = Get(initiator_port, "/metrics").body;
  EXPECT_EQ(
      Sample(mine, R"(te_transfer_failures_total{reason="permission_denied",transport="tcp"})"), 1)
      << mine;
}

TEST(MetricsServerTest, PortInUseFailsTheEngine) {
  uint16_t port;
  auto first = EngineWithMetrics(&port);
  ASSERT_TRUE(first);
  Config c;
  c.rpc_host = "127.0.0.1";
  c.transports = {"tcp"};
  c.log_level = "error";
  c.metrics_port = port;
  TransferEngine second(c);
  EXPECT_FALSE(second.available());
  EXPECT_EQ(second.status().code(), Status::Code::kUnavailable) << second.status().ToString();
}

}  // namespace
}  // namespace te
