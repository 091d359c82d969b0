// http backend: the protocol of transfer_engine_metadata_server (docs/metadata.md,
// "http"): GET, PUT and DELETE on <path>?key=<percent-encoded key> with the value as
// the body, as existing metadata servers in this field speak, plus two extensions
// for segments stored as many entries: GET <path>?prefix=... lists entries, and
// POST <path>/batch applies puts and deletes atomically, only while a key holds an
// expected value. Entries never expire by themselves (the protocol has no TTL).
#pragma once

#include <nlohmann/json_fwd.hpp>
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
  Status Read(const std::string& key, bool with_expiry, KvEntry* entry) override;
  Status Overwrite(const std::string& key, const std::string& value) override;
  Status Update(const SegmentKeys& keys, const KvWrite& write, const std::string& mine) override;
  Status KeepAlive(const SegmentKeys& keys, const std::string& mine) override;
  Status Remove(const SegmentKeys& keys, const std::string& mine) override;
  Status ReadBuffers(const SegmentKeys& keys, std::vector<std::string>* values) override;
  Status ReadSomeBuffers(const SegmentKeys& keys, const std::vector<std::string>& ids,
                         std::vector<std::optional<std::string>>* values) override;

 private:
  Status Send(const std::string& method, const std::string& suffix, const std::string& body,
              HttpResponse* response);
  // GET: OK with the value, kNotFound on 404.
  Status Get(const std::string& key, std::string* value);
  // POST <path>/batch; kFailedPrecondition when the expected value was not there
  // (409), with what was there in *current (nullopt: absent).
  Status Batch(const nlohmann::json& request, nlohmann::json* reply,
               std::optional<std::string>* current = nullptr);

  HttpFailover http_;
};

}  // namespace te
