// The Prometheus endpoint: an HTTP server (civetweb, as prometheus-cpp's own exposer
// uses) serving /metrics, built by prometheus-cpp at scrape time from the engine's
// statistics, and /health. Nothing is done per request on the data path: a scrape
// reads the sharded counters once (EngineMetrics::Fill).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "te/status.h"
#include "te/types.h"

namespace te {

// The statistics in the Prometheus text format (what /metrics serves); only in builds
// with prometheus-cpp.
std::string PrometheusText(const EngineStatistics& stats);

class MetricsServer {
 public:
  using StatisticsSource = std::function<EngineStatistics()>;
  // OK while the engine is available, else why not.
  using HealthSource = std::function<Status()>;

  MetricsServer();
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds host:port (an IPv6 host without brackets). NotSupported in a build without
  // prometheus-cpp.
  Status Start(const std::string& host, uint16_t port, StatisticsSource statistics,
               HealthSource health);
  // Waits for scrapes in progress; the sources are not called after it returns.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace te
