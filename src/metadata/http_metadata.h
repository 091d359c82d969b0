// http backend: the protocol of transfer_engine_metadata_server (docs/metadata.md,
// "http"): GET, PUT and DELETE on <path>?key=<percent-encoded key> with the value as
// the body, as existing metadata servers in this field speak, plus two extensions
// for segments stored as many entries: GET <path>?prefix=... lists entries, and
// POST <path>/batch applies puts and deletes atomically, only while a key holds an
// expected value. Entries never expire by themselves (the protocol has no TTL).
// A server without the extensions (GET/PUT/DELETE ?key= only, e.g. Mooncake's) is
// detected once, on first use: each segment is then one WholeSegment value under its
// header key, rewritten by every change (claims and updates are a GET then a PUT,
// not atomic: docs/metadata.md, "http").
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
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
  enum class Mode { kUnknown, kEntries, kWholeSegments };

  // Asks the server once whether it has the batch endpoint (an empty batch).
  Status DetectMode();
  Status Send(const std::string& method, const std::string& suffix, const std::string& body,
              HttpResponse* response);
  // GET: OK with the value, kNotFound on 404.
  Status Get(const std::string& key, std::string* value);
  // POST <path>/batch; kFailedPrecondition when the expected value was not there
  // (409), with what was there in *current (nullopt: absent).
  Status Batch(const nlohmann::json& request, nlohmann::json* reply,
               std::optional<std::string>* current = nullptr);

  Status Put(const std::string& key, const std::string& value);
  Status Delete(const std::string& key);

  // Whole-segment mode.
  Status CreateWhole(const std::string& key, const std::string& value);
  Status ReadWhole(const std::string& key, KvEntry* entry);
  // The stored segment while its header is `mine`: kNotFound when absent,
  // kAlreadyExists when another engine's (or unreadable).
  Status ReadOwnWhole(const SegmentKeys& keys, const std::string& mine, WholeSegment* whole);
  Status UpdateWhole(const SegmentKeys& keys, const KvWrite& write, const std::string& mine);
  Status RemoveWhole(const SegmentKeys& keys, const std::string& mine);
  // The buffers of the segment whose header the last Read returned, or read again.
  Status BuffersWhole(const SegmentKeys& keys, std::map<std::string, std::string>* buffers);

  HttpFailover http_;
  Mode mode_ = Mode::kUnknown;
  // Whole-segment mode: the buffers of the value the last Read split, so that a
  // lookup reads the value once.
  std::string read_key_;
  std::map<std::string, std::string> read_buffers_;
};

}  // namespace te
