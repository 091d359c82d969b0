// etcd backend: the v3 API through etcd's HTTP/JSON gateway (POST /v3/...; keys and
// values base64). Every entry (header and buffers, one key each) is attached to a
// lease of the configured TTL that the keep-alive renews; conditional writes are
// transactions comparing the header's lease (ours) or create revision (absent).
// Unpublishing revokes the lease, which deletes the entries with it.
#pragma once

#include <chrono>
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
  Status Read(const std::string& key, bool with_expiry, KvEntry* entry) override;
  Status Overwrite(const std::string& key, const std::string& value) override;
  Status Update(const SegmentKeys& keys, const KvWrite& write, const std::string& mine) override;
  Status KeepAlive(const SegmentKeys& keys, const std::string& mine) override;
  Status Remove(const SegmentKeys& keys, const std::string& mine) override;
  Status ReadBuffers(const SegmentKeys& keys, std::vector<std::string>* values) override;
  Status ReadSomeBuffers(const SegmentKeys& keys, const std::vector<std::string>& ids,
                         std::vector<std::optional<std::string>>* values) override;

 private:
  // POSTs request to /v3/<method>; an etcd error becomes a Status (code 5, e.g. an
  // expired lease, is kNotFound).
  Status Call(const std::string& method, const nlohmann::json& request, nlohmann::json* reply);
  Status GrantLease();
  // The operations of one transaction writing `part` (entries under our lease).
  nlohmann::json TxnOps(const SegmentKeys& keys, const KvWrite& part) const;
  // Runs a transaction whose success branch puts key=value under our lease, granting
  // a lease first and again when ours expired. *succeeded says which branch ran;
  // *range is the failure branch's range of key (may be empty).
  Status PutIf(const nlohmann::json& compare, const std::string& key, const std::string& value,
               bool* succeeded, nlohmann::json* range);

  HttpFailover http_;
  const int64_t ttl_s_;
  std::string lease_;                              // decimal lease ID; empty when none is held
  std::chrono::steady_clock::time_point renewed_;  // when lease_ was granted or renewed last
};

}  // namespace te
