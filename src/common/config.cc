#include "te/config.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/logging.h"
#include "common/strings.h"
#include "transport/transport_registry.h"
#include "transport/ucx/ucx_context.h"

namespace te {
namespace {

using Json = nlohmann::json;

template <typename T>
Status ReadField(const Json& j, const char* key, T* out) {
  try {
    *out = j.at(key).get<T>();
  } catch (const Json::exception& e) {
    return Status::InvalidArgument(std::string("config field '") + key + "': " + e.what());
  }
  return Status::OK();
}

Status ReadNumber(const Json& j, const char* key, uint64_t max, uint64_t* out) {
  const Json& v = j.at(key);
  if (!v.is_number_unsigned() || v.get<uint64_t>() > max) {
    return Status::InvalidArgument(std::string("config field '") + key +
                                   "' must be an integer in [0, " + std::to_string(max) + "]");
  }
  *out = v.get<uint64_t>();
  return Status::OK();
}

template <typename T>
Status ReadUnsigned(const Json& j, const char* key, T* out) {
  uint64_t v;
  TE_RETURN_IF_ERROR(ReadNumber(j, key, static_cast<uint64_t>(std::numeric_limits<T>::max()), &v));
  *out = static_cast<T>(v);
  return Status::OK();
}

Status EnvUnsigned(const char* name, uint64_t max, uint64_t* out, bool* present) {
  const char* v = std::getenv(name);
  *present = v != nullptr;
  if (!v) return Status::OK();
  if (!ParseUint64(v, out) || *out > max) {
    return Status::InvalidArgument(std::string(name) + "='" + v + "' is not an integer in [0, " +
                                   std::to_string(max) + "]");
  }
  return Status::OK();
}

template <typename T>
Status ApplyEnvUnsigned(const char* name, T* field) {
  uint64_t v;
  bool present;
  TE_RETURN_IF_ERROR(EnvUnsigned(name, std::numeric_limits<T>::max(), &v, &present));
  if (present) *field = static_cast<T>(v);
  return Status::OK();
}

void ApplyEnvString(const char* name, std::string* field) {
  if (const char* v = std::getenv(name)) *field = v;
}

}  // namespace

Status Config::FromJson(const std::string& json_text, Config* config) {
  Json j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("config is not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument("config must be a JSON object");
  for (auto& [key, value] : j.items()) {
    Status s;
    if (key == "metadata_type")
      s = ReadField(j, "metadata_type", &config->metadata_type);
    else if (key == "metadata_servers")
      s = ReadField(j, "metadata_servers", &config->metadata_servers);
    else if (key == "local_segment_name")
      s = ReadField(j, "local_segment_name", &config->local_segment_name);
    else if (key == "rpc_host")
      s = ReadField(j, "rpc_host", &config->rpc_host);
    else if (key == "rpc_bind_host")
      s = ReadField(j, "rpc_bind_host", &config->rpc_bind_host);
    else if (key == "rpc_port")
      s = ReadUnsigned(j, "rpc_port", &config->rpc_port);
    else if (key == "transports")
      s = ReadField(j, "transports", &config->transports);
    else if (key == "log_level")
      s = ReadField(j, "log_level", &config->log_level);
    else if (key == "machine_id")
      s = ReadField(j, "machine_id", &config->machine_id);
    else if (key == "tcp_connections_per_peer")
      s = ReadUnsigned(j, "tcp_connections_per_peer", &config->tcp_connections_per_peer);
    else if (key == "tcp_io_threads")
      s = ReadUnsigned(j, "tcp_io_threads", &config->tcp_io_threads);
    else if (key == "tcp_idle_timeout_ms")
      s = ReadUnsigned(j, "tcp_idle_timeout_ms", &config->tcp_idle_timeout_ms);
    else if (key == "tcp_congestion")
      s = ReadField(j, "tcp_congestion", &config->tcp_congestion);
    else if (key == "tcp_busy_poll_us")
      s = ReadUnsigned(j, "tcp_busy_poll_us", &config->tcp_busy_poll_us);
    else if (key == "tcp_rto_min_us")
      s = ReadUnsigned(j, "tcp_rto_min_us", &config->tcp_rto_min_us);
    else if (key == "slice_size")
      s = ReadUnsigned(j, "slice_size", &config->slice_size);
    else if (key == "transfer_timeout_ms")
      s = ReadUnsigned(j, "transfer_timeout_ms", &config->transfer_timeout_ms);
    else if (key == "connect_timeout_ms")
      s = ReadUnsigned(j, "connect_timeout_ms", &config->connect_timeout_ms);
    else if (key == "max_registered_buffers")
      s = ReadUnsigned(j, "max_registered_buffers", &config->max_registered_buffers);
    else if (key == "metrics_port")
      s = ReadUnsigned(j, "metrics_port", &config->metrics_port);
    else if (key == "metadata_ttl_s")
      s = ReadUnsigned(j, "metadata_ttl_s", &config->metadata_ttl_s);
    else if (key == "ucx_tls")
      s = ReadField(j, "ucx_tls", &config->ucx_tls);
    else if (key == "ucx_net_devices")
      s = ReadField(j, "ucx_net_devices", &config->ucx_net_devices);
    else if (key == "ucx_workers")
      s = ReadUnsigned(j, "ucx_workers", &config->ucx_workers);
    else if (key == "ucx_busy_poll_us")
      s = ReadUnsigned(j, "ucx_busy_poll_us", &config->ucx_busy_poll_us);
    else if (key == "cluster_secret")
      s = ReadField(j, "cluster_secret", &config->cluster_secret);
    else
      s = Status::InvalidArgument("unknown config field '" + key + "'");
    TE_RETURN_IF_ERROR(s);
    (void)value;
  }
  return Status::OK();
}

Status Config::FromJsonFile(const std::string& path, Config* config) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot open config file '" + path + "'");
  std::stringstream buf;
  buf << in.rdbuf();
  Status s = FromJson(buf.str(), config);
  if (!s.ok()) return Status(s.code(), path + ": " + s.message());
  return s;
}

Status Config::FromEnv(Config* config) {
  if (const char* path = std::getenv("TE_CONFIG")) TE_RETURN_IF_ERROR(FromJsonFile(path, config));
  ApplyEnvString("TE_METADATA_TYPE", &config->metadata_type);
  ApplyEnvString("TE_METADATA_SERVERS", &config->metadata_servers);
  ApplyEnvString("TE_LOCAL_SEGMENT", &config->local_segment_name);
  ApplyEnvString("TE_RPC_HOST", &config->rpc_host);
  ApplyEnvString("TE_RPC_BIND_HOST", &config->rpc_bind_host);
  ApplyEnvString("TE_LOG_LEVEL", &config->log_level);
  ApplyEnvString("TE_MACHINE_ID", &config->machine_id);
  ApplyEnvString("TE_CLUSTER_SECRET", &config->cluster_secret);
  ApplyEnvString("TE_UCX_TLS", &config->ucx_tls);
  ApplyEnvString("TE_UCX_NET_DEVICES", &config->ucx_net_devices);
  ApplyEnvString("TE_TCP_CONGESTION", &config->tcp_congestion);
  TE_RETURN_IF_ERROR(ApplyEnvUnsigned("TE_UCX_WORKERS", &config->ucx_workers));
  TE_RETURN_IF_ERROR(ApplyEnvUnsigned("TE_UCX_BUSY_POLL_US", &config->ucx_busy_poll_us));
  if (const char* v = std::getenv("TE_TRANSPORTS")) config->transports = SplitList(v);
  TE_RETURN_IF_ERROR(ApplyEnvUnsigned("TE_RPC_PORT", &config->rpc_port));
  TE_RETURN_IF_ERROR(ApplyEnvUnsigned("TE_TCP_CONNECTIONS", &config->tcp_connections_per_peer));
  TE_RETURN_IF_ERROR(ApplyEnvUnsigned("TE_TCP_IO_THREADS", &config->tcp_io_threads));
  TE_RETURN_IF_ERROR(ApplyEnvUnsigned("TE_TCP_IDLE_TIMEOUT_MS", &config->tcp_idle_timeout_ms));
  TE_RETURN_IF_ERROR(ApplyEnvUnsigned("TE_TCP_RTO_MIN_US", &config->tcp_rto_min_us));
  TE_RETURN_IF_ERROR(ApplyEnvUnsigned("TE_TCP_BUSY_POLL_US", &config->tcp_busy_poll_us));
  TE_RETURN_IF_ERROR(ApplyEnvUnsigned("TE_SLICE_SIZE", &config->slice_size));
  TE_RETURN_IF_ERROR(ApplyEnvUnsigned("TE_TRANSFER_TIMEOUT_MS", &config->transfer_timeout_ms));
  TE_RETURN_IF_ERROR(ApplyEnvUnsigned("TE_METADATA_TTL_S", &config->metadata_ttl_s));
  TE_RETURN_IF_ERROR(
      ApplyEnvUnsigned("TE_MAX_REGISTERED_BUFFERS", &config->max_registered_buffers));
  TE_RETURN_IF_ERROR(ApplyEnvUnsigned("TE_METRICS_PORT", &config->metrics_port));
  return Status::OK();
}

std::vector<std::string> Config::DefaultTransports() {
  std::vector<std::string> names;
  for (const TransportEntry& e : TransportTable()) {
    if (e.built && e.enabled_by_default) names.push_back(e.name);
  }
  return names;
}

Status Config::Validate() const {
  static const char* const kMetadataTypes[] = {"p2p", "redis", "etcd", "http"};
  bool known = false;
  for (const char* t : kMetadataTypes) known |= metadata_type == t;
  if (!known) {
    return Status::InvalidArgument("metadata_type '" + metadata_type +
                                   "' is not one of p2p, redis, etcd, http");
  }
  if (metadata_type != "p2p" && SplitList(metadata_servers).empty()) {
    return Status::InvalidArgument("metadata_type '" + metadata_type + "' needs metadata_servers");
  }
  LogLevel level;
  if (!ParseLogLevel(log_level, &level)) {
    return Status::InvalidArgument("log_level '" + log_level +
                                   "' is not one of debug, info, warning, error");
  }
  if (transports.empty()) return Status::InvalidArgument("no transport enabled");
  for (const std::string& t : transports) TE_RETURN_IF_ERROR(CheckTransportBuilt(t));
  if (tcp_connections_per_peer < 1 || tcp_connections_per_peer > 64) {
    return Status::InvalidArgument("tcp_connections_per_peer must be in [1, 64]");
  }
  if (tcp_io_threads < 1 || tcp_io_threads > 64) {
    return Status::InvalidArgument("tcp_io_threads must be in [1, 64]");
  }
  // Linux names congestion controls with at most 15 of [a-z0-9_] (TCP_CA_NAME_MAX).
  if (tcp_congestion.empty() || tcp_congestion.size() > 15 ||
      tcp_congestion.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") !=
          std::string::npos) {
    return Status::InvalidArgument("tcp_congestion '" + tcp_congestion +
                                   "' is not auto, system or a congestion control's name");
  }
  if (tcp_busy_poll_us > 10000) {
    return Status::InvalidArgument("tcp_busy_poll_us must be at most 10000");
  }
  if (ucx_busy_poll_us > 10000) {
    return Status::InvalidArgument("ucx_busy_poll_us must be at most 10000");
  }
  if (tcp_rto_min_us > 200000) {
    return Status::InvalidArgument("tcp_rto_min_us must be at most 200000 (the kernel's 200 ms)");
  }
  if (ucx_workers < 1 || ucx_workers > kMaxUcxWorkers) {
    return Status::InvalidArgument("ucx_workers must be in [1, " + std::to_string(kMaxUcxWorkers) +
                                   "]");
  }
  if (slice_size < 4096) return Status::InvalidArgument("slice_size must be at least 4096");
  if (transfer_timeout_ms < 10) return Status::InvalidArgument("transfer_timeout_ms must be >= 10");
  if (connect_timeout_ms < 10) return Status::InvalidArgument("connect_timeout_ms must be >= 10");
  if (max_registered_buffers < 1 || max_registered_buffers > (1u << 24)) {
    return Status::InvalidArgument("max_registered_buffers must be in [1, 16777216]");
  }
  // etcd grants at least ~2 s whatever is asked; a day is far beyond any useful TTL.
  if (metadata_ttl_s < 1 || metadata_ttl_s > 86400) {
    return Status::InvalidArgument("metadata_ttl_s must be in [1, 86400]");
  }
  // Proofs travel in the clear, so a short secret could be guessed offline from one.
  if (!cluster_secret.empty() && cluster_secret.size() < kMinClusterSecretLength) {
    return Status::InvalidArgument("cluster_secret must be at least " +
                                   std::to_string(kMinClusterSecretLength) + " characters");
  }
  return Status::OK();
}

}  // namespace te
