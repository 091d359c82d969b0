#include "metadata/metadata_client.h"

#include <cstdio>

#include "common/strings.h"
#include "metadata/central_metadata.h"
#include "metadata/etcd_metadata.h"
#include "metadata/http_metadata.h"
#include "metadata/p2p_metadata.h"
#include "metadata/redis_metadata.h"

namespace te {
namespace {

// Parses every server of the list with `parse`; the first bad one is the error.
template <typename Server, typename Parse>
Status ParseServers(const Config& config, Parse parse, std::vector<Server>* out) {
  for (const std::string& text : SplitList(config.metadata_servers)) {
    Server server;
    TE_RETURN_IF_ERROR(parse(text, &server));
    out->push_back(std::move(server));
  }
  if (out->empty()) {
    return Status::InvalidArgument("metadata_type '" + config.metadata_type +
                                   "' needs metadata_servers");
  }
  return Status::OK();
}

}  // namespace

// Cheap by design: the engine calls this once early as a probe of the configuration,
// so backends only parse their server list here and connect on first use.
std::string DescriptorTag(const std::string& json) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : json) hash = (hash ^ c) * 0x100000001b3ull;
  char text[48];
  std::snprintf(text, sizeof(text), "%zx-%016llx", json.size(),
                static_cast<unsigned long long>(hash));
  return text;
}

Status CreateKvBackend(const Config& config, std::unique_ptr<KvBackend>* out) {
  const uint32_t timeout_ms = config.connect_timeout_ms;
  const uint32_t ttl_ms = config.metadata_ttl_s * 1000;
  if (config.metadata_type == "redis") {
    std::vector<RedisServer> servers;
    TE_RETURN_IF_ERROR(ParseServers(config, ParseRedisServer, &servers));
    *out = std::make_unique<RedisBackend>(std::move(servers), timeout_ms, ttl_ms);
  } else if (config.metadata_type == "etcd") {
    std::vector<HttpServer> servers;
    auto parse = [](const std::string& text, HttpServer* s) {
      return ParseHttpServer(text, "", s);
    };
    TE_RETURN_IF_ERROR(ParseServers(config, parse, &servers));
    for (const HttpServer& s : servers) {
      if (!s.path.empty()) {
        return Status::InvalidArgument("etcd server '" + s.Display() + "' must be host:port");
      }
    }
    *out = std::make_unique<EtcdBackend>(std::move(servers), timeout_ms, ttl_ms);
  } else if (config.metadata_type == "http") {
    std::vector<HttpServer> servers;
    auto parse = [](const std::string& text, HttpServer* s) {
      return ParseHttpServer(text, "/metadata", s);
    };
    TE_RETURN_IF_ERROR(ParseServers(config, parse, &servers));
    *out = std::make_unique<HttpBackend>(std::move(servers), timeout_ms);
  } else {
    return Status::InvalidArgument("metadata_type '" + config.metadata_type +
                                   "' is not one of p2p, redis, etcd, http");
  }
  return Status::OK();
}

Status CreateMetadataClient(const Config& config, const std::string& local_name,
                            std::unique_ptr<MetadataClient>* out) {
  if (config.metadata_type == "p2p") {
    *out = std::make_unique<P2pMetadataClient>(wire::Credentials{local_name, config.cluster_secret},
                                               config.connect_timeout_ms);
    return Status::OK();
  }
  std::unique_ptr<KvBackend> backend;
  TE_RETURN_IF_ERROR(CreateKvBackend(config, &backend));
  CentralOptions options{
      {local_name, config.cluster_secret}, config.connect_timeout_ms, config.metadata_ttl_s * 1000};
  *out = std::make_unique<CentralMetadataClient>(std::move(backend), std::move(options));
  return Status::OK();
}

}  // namespace te
