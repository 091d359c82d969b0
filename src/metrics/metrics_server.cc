#include "metrics/metrics_server.h"

#include <CivetServer.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <utility>
#include <vector>

namespace te {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void AddValue(MetricFamily* f, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f->type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f->metric.push_back(std::move(m));
}

void AddHistogram(MetricFamily* f, const std::string& transport, const LatencyHistogram& h) {
  ClientMetric m;
  m.label = {{"transport", transport}};
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = h.sum_seconds;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    const double bound = i < h.upper_bounds_seconds.size() ? h.upper_bounds_seconds[i] : 1.0 / 0.0;
    m.histogram.bucket.push_back({cumulative, bound});
  }
  f->metric.push_back(std::move(m));
}

// Families with a transport label.
void AddTransportFamilies(const EngineStatistics& s, std::vector<MetricFamily>* out) {
  auto bytes = Family("te_transfer_bytes_total",
                      "Bytes submitted, retried slices included on the transport they moved to",
                      MetricType::Counter);
  auto requests = Family("te_transfer_requests_total", "Requests submitted", MetricType::Counter);
  auto failures = Family("te_transfer_failures_total", "Slices that failed for good, by reason",
                         MetricType::Counter);
  auto connections = Family("te_connections", "Open connections", MetricType::Gauge);
  auto slices =
      Family("te_slice_duration_seconds",
             "From submission to slice completion (while metrics are on)", MetricType::Histogram);
  auto batches = Family("te_batch_duration_seconds",
                        "From submission to the batch's last completion, by the transport "
                        "that finished it (while metrics are on)",
                        MetricType::Histogram);
  for (const auto& [name, t] : s.transports) {
    AddValue(&bytes, {{"opcode", "read"}, {"transport", name}}, double(t.read_bytes));
    AddValue(&bytes, {{"opcode", "write"}, {"transport", name}}, double(t.write_bytes));
    AddValue(&requests, {{"opcode", "read"}, {"transport", name}}, double(t.read_requests));
    AddValue(&requests, {{"opcode", "write"}, {"transport", name}}, double(t.write_requests));
    for (const auto& [reason, n] : t.failures_by_reason) {
      AddValue(&failures, {{"reason", reason}, {"transport", name}}, double(n));
    }
    AddValue(&connections, {{"direction", "inbound"}, {"transport", name}},
             double(t.inbound_connections));
    AddValue(&connections, {{"direction", "outbound"}, {"transport", name}},
             double(t.outbound_connections));
    AddHistogram(&slices, name, t.slice_latency);
    AddHistogram(&batches, name, t.batch_latency);
  }
  for (auto* f : {&bytes, &requests, &failures, &connections, &slices, &batches}) {
    out->push_back(std::move(*f));
  }
}

std::vector<MetricFamily> Families(const EngineStatistics& s) {
  std::vector<MetricFamily> out;
  AddTransportFamilies(s, &out);
  const auto counter = MetricType::Counter, gauge = MetricType::Gauge;
  const struct {
    const char* name;
    const char* help;
    MetricType type;
    double value;
  } scalars[] = {
      {"te_retried_slices_total", "Slices resubmitted on another transport", counter,
       double(s.retried_slices)},
      {"te_slices_in_flight", "Slices submitted and not yet done", gauge,
       double(s.slices_in_flight)},
      {"te_open_segments", "Segments opened and not closed", gauge, double(s.open_segments)},
      {"te_registered_buffers", "Registered local buffers", gauge, double(s.registered_buffers)},
      {"te_registered_bytes", "Bytes in registered local buffers", gauge,
       double(s.registered_bytes)},
      {"te_served_requests_total", "Peers' requests served", counter, double(s.served_requests)},
      {"te_served_bytes_total", "Bytes moved for peers' requests", counter, double(s.served_bytes)},
  };
  for (const auto& scalar : scalars) {
    auto f = Family(scalar.name, scalar.help, scalar.type);
    AddValue(&f, {}, scalar.value);
    out.push_back(std::move(f));
  }
  auto refusals =
      Family("te_served_refusals_total", "Peers' requests or connections refused", counter);
  for (const auto& [reason, n] : s.refusals_by_reason) {
    AddValue(&refusals, {{"reason", reason}}, double(n));
  }
  out.push_back(std::move(refusals));
  auto metadata = Family("te_metadata_operations_total", "Metadata backend calls", counter);
  for (const MetadataOperationCount& m : s.metadata_operations) {
    AddValue(&metadata,
             {{"backend", s.metadata_backend}, {"operation", m.operation}, {"result", m.result}},
             double(m.count));
  }
  out.push_back(std::move(metadata));
  return out;
}

// Feeds prometheus-cpp from the engine's statistics at scrape time.
class StatisticsCollectable : public prometheus::Collectable {
 public:
  explicit StatisticsCollectable(MetricsServer::StatisticsSource source)
      : source_(std::move(source)) {}
  std::vector<MetricFamily> Collect() const override { return Families(source_()); }

 private:
  MetricsServer::StatisticsSource source_;
};

void Reply(mg_connection* conn, int code, const char* content_type, const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            code, mg_get_response_code_text(conn, code), content_type, body.size());
  mg_write(conn, body.data(), body.size());
}

class MetricsHandler : public CivetHandler {
 public:
  explicit MetricsHandler(MetricsServer::StatisticsSource source)
      : collectable_(std::move(source)) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    Reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8",
          prometheus::TextSerializer().Serialize(collectable_.Collect()));
    return true;
  }

 private:
  StatisticsCollectable collectable_;
};

class HealthHandler : public CivetHandler {
 public:
  explicit HealthHandler(MetricsServer::HealthSource source) : source_(std::move(source)) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    const Status s = source_();
    if (s.ok()) {
      Reply(conn, 200, "text/plain", "available\n");
    } else {
      Reply(conn, 503, "text/plain", "unavailable: " + s.ToString() + "\n");
    }
    return true;
  }

 private:
  MetricsServer::HealthSource source_;
};

}  // namespace

std::string PrometheusText(const EngineStatistics& stats) {
  return prometheus::TextSerializer().Serialize(Families(stats));
}

struct MetricsServer::Impl {
  std::unique_ptr<MetricsHandler> metrics;
  std::unique_ptr<HealthHandler> health;
  std::unique_ptr<CivetServer> server;
};

MetricsServer::MetricsServer() : impl_(std::make_unique<Impl>()) {}
MetricsServer::~MetricsServer() { Stop(); }

Status MetricsServer::Start(const std::string& host, uint16_t port, StatisticsSource statistics,
                            HealthSource health) {
  const std::string address =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  // Two threads: scrapes are rare and cheap; an endpoint must not cost the host threads.
  std::vector<std::string> options = {"listening_ports", address, "num_threads", "2"};
  try {
    impl_->server = std::make_unique<CivetServer>(options);
  } catch (const CivetException& e) {
    return Status::Unavailable("metrics endpoint on " + address + ": " + e.what());
  }
  impl_->metrics = std::make_unique<MetricsHandler>(std::move(statistics));
  impl_->health = std::make_unique<HealthHandler>(std::move(health));
  impl_->server->addHandler("/metrics", impl_->metrics.get());
  impl_->server->addHandler("/health", impl_->health.get());
  return Status::OK();
}

void MetricsServer::Stop() {
  if (impl_->server) impl_->server->close();  // joins its threads
  impl_->server.reset();
}

}  // namespace te
