// http backend: the protocol of existing metadata servers in this field (and of
// transfer_engine_metadata_server): GET, PUT and DELETE on <path>?key=<percent-encoded
// key>, the value as the body, 404 for a missing key. The protocol has neither TTLs
// nor conditional writes, so the conditional operations read first (a small race
// window, see docs/metadata.md) and entries never expire by themselves.
#pragma once

#include <string>
#include <vector>

#include "metadata/http_client.h"
#include "metadata/kv_backend.h"

namespace te {

class HttpBackend : public KvBackend {
 public:
  HttpBackend(std::vector<HttpServer> servers, uint32_t timeout_ms)
      : http_("http metadata", std::move(servers), timeout_ms) {}

  std::string Describe() const override { return http_.Describe(); }
  Status Create(const std::string& key, const std::string& value) override;
  Status Read(const std::string& key, KvEntry* entry) override;
  Status Update(const std::string& key, const std::string& value, const std::string& mine) override;
  Status Overwrite(const std::string& key, const std::string& value) override;
  Status Remove(const std::string& key, const std::string& mine) override;

 private:
  // GET: OK with the value, kNotFound on 404.
  Status Get(const std::string& key, std::string* value);
  Status Put(const std::string& key, const std::string& value);

  HttpFailover http_;
};

}  // namespace te
