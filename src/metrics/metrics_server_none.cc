// A build without prometheus-cpp (TE_METRICS=OFF, or AUTO without the package): the
// endpoint cannot start, and says so.
#include "metrics/metrics_server.h"

namespace te {

struct MetricsServer::Impl {};

MetricsServer::MetricsServer() = default;
MetricsServer::~MetricsServer() = default;

Status MetricsServer::Start(const std::string&, uint16_t, StatisticsSource, HealthSource) {
  return Status::NotSupported(
      "metrics_port is set, but this build has no metrics endpoint (built without "
      "prometheus-cpp; install prometheus-cpp-dev and rebuild)");
}

void MetricsServer::Stop() {}

}  // namespace te
