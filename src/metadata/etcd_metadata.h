// etcd backend: the v3 API through etcd's HTTP/JSON gateway (POST /v3/...; keys and
// values base64). The entry is attached to a lease of the configured TTL that the
// keep-alive renews; conditional writes are transactions comparing the key's lease
// (ours) or create revision (absent). Unpublishing revokes the lease, which deletes
// the entry with it.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "metadata/http_client.h"
#include "metadata/kv_backend.h"

namespace te {

class EtcdBackend : public KvBackend {
 public:
  EtcdBackend(std::vector<HttpServer> servers, uint32_t timeout_ms, uint32_t ttl_ms);

  std::string Describe() const override { return http_.Describe(); }
  Status Create(const std::string& key, const std::string& value) override;
  Status Read(const std::string& key, KvEntry* entry) override;
  Status Update(const std::string& key, const std::string& value, const std::string& mine) override;
  Status KeepAlive(const std::string& key, const std::string& value,
                   const std::string& mine) override;
  Status Overwrite(const std::string& key, const std::string& value) override;
  Status Remove(const std::string& key, const std::string& mine) override;

 private:
  // POSTs request to /v3/<method>; an etcd error becomes a Status (code 5, e.g. an
  // expired lease, is kNotFound).
  Status Call(const std::string& method, const nlohmann::json& request, nlohmann::json* reply);
  Status GrantLease();
  // Runs a transaction whose success branch puts key=value under our lease, granting
  // a lease first and again when ours expired. *succeeded says which branch ran;
  // *range is the failure branch's range of key (may be empty).
  Status PutIf(const nlohmann::json& compare, const std::string& key, const std::string& value,
               bool* succeeded, nlohmann::json* range);

  HttpFailover http_;
  const int64_t ttl_s_;
  std::string lease_;  // decimal lease ID; empty when none is held
};

}  // namespace te
