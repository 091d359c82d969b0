#include "metadata/http_metadata.h"

#include <nlohmann/json.hpp>

#include "metadata/text_codec.h"

namespace te {
namespace {

using Json = nlohmann::json;

// A batch must fit the server's body limit (1 MiB by default), JSON escaping included.
constexpr size_t kMaxBatchOps = 4096;
constexpr size_t kMaxBatchBytes = 512 << 10;
// Entries per page when listing every buffer.
constexpr size_t kListPage = 4096;

std::string Query(const std::string& key) { return "?key=" + PercentEncode(key); }

Status Unexpected(const char* method, const HttpResponse& response) {
  return Status::ProtocolError(std::string(method) + " answered HTTP " +
                               std::to_string(response.status) + ": " +
                               response.body.substr(0, 200));
}

// {"key": k, "value": v} for a batch's "expect"; value null: k must be absent.
Json Expect(const std::string& key, const std::string* value) {
  return Json{{"key", key}, {"value", value ? Json(*value) : Json(nullptr)}};
}

}  // namespace

Status HttpBackend::Send(const std::string& method, const std::string& suffix,
                         const std::string& body, HttpResponse* response) {
  TE_RETURN_IF_ERROR(http_.Send(method, suffix, body, response));
  Count(suffix.size() + body.size(), response->body.size());
  return Status::OK();
}

Status HttpBackend::Get(const std::string& key, std::string* value) {
  HttpResponse response;
  TE_RETURN_IF_ERROR(Send("GET", Query(key), "", &response));
  if (response.status == 404) return Status::NotFound("no such key");
  if (response.status != 200) return Unexpected("GET", response);
  *value = std::move(response.body);
  return Status::OK();
}

Status HttpBackend::Batch(const Json& request, Json* reply, std::optional<std::string>* current) {
  HttpResponse response;
  TE_RETURN_IF_ERROR(Send("POST", "/batch", request.dump(), &response));
  if (response.status == 404 || response.status == 405) {
    return Status::NotSupported("the http metadata server has no batch endpoint (POST " +
                                http_.Describe() + "/batch); transfer_engine_metadata_server has");
  }
  Json j = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (response.status == 409 && j.is_object() && j.contains("value")) {
    if (current && j["value"].is_string()) *current = j["value"].get<std::string>();
    if (current && !j["value"].is_string()) current->reset();
    return Status::FailedPrecondition("the expected value is not there");
  }
  if (response.status != 200 || !j.is_object()) return Unexpected("POST batch", response);
  *reply = std::move(j);
  return Status::OK();
}

Status HttpBackend::Create(const std::string& key, const std::string& value) {
  Json reply;
  Status s = Batch(Json{{"expect", Expect(key, nullptr)}, {"put", {{key, value}}}}, &reply);
  if (s.code() == Status::Code::kFailedPrecondition) return Status::AlreadyExists("key exists");
  return s;
}

Status HttpBackend::Read(const std::string& key, bool /*with_expiry*/, KvEntry* entry) {
  entry->expires_in_ms = -1;
  return Get(key, &entry->value);
}

Status HttpBackend::Overwrite(const std::string& key, const std::string& value) {
  HttpResponse response;
  TE_RETURN_IF_ERROR(Send("PUT", Query(key), value, &response));
  // Existing servers answer 200; accept any 2xx.
  if (response.status < 200 || response.status > 299) return Unexpected("PUT", response);
  return Status::OK();
}

Status HttpBackend::Update(const SegmentKeys& keys, const KvWrite& write, const std::string& mine) {
  // Each part only while the header is ours; the header goes in the last.
  for (const KvWrite& part : SplitWrite(write, kMaxBatchOps, kMaxBatchBytes)) {
    Json put = Json::object();
    for (const auto& [id, entry] : part.put) put[keys.BufferKey(id)] = entry;
    if (!part.header.empty()) put[keys.header] = part.header;
    Json erase = Json::array();
    for (const std::string& id : part.erase) erase.push_back(keys.BufferKey(id));
    Json request = {{"expect", Expect(keys.header, &mine)}, {"put", put}, {"delete", erase}};
    if (part.replace) request["delete_prefix"] = keys.buffers;
    Json reply;
    std::optional<std::string> current;
    Status s = Batch(request, &reply, &current);
    if (s.code() == Status::Code::kFailedPrecondition) {
      return current ? Status::AlreadyExists("the entry now belongs to another engine")
                     : Status::NotFound("the entry is gone");
    }
    TE_RETURN_IF_ERROR(s);
  }
  return Status::OK();
}

Status HttpBackend::KeepAlive(const SegmentKeys& keys, const std::string& mine) {
  // No TTL to renew: check that the server still has the header (a restarted
  // in-memory server has not), so the client re-creates the entries.
  std::string current;
  TE_RETURN_IF_ERROR(Get(keys.header, &current));
  if (current != mine) return Status::AlreadyExists("the entry now belongs to another engine");
  return Status::OK();
}

Status HttpBackend::Remove(const SegmentKeys& keys, const std::string& mine) {
  Json reply;
  Status s = Batch(Json{{"expect", Expect(keys.header, &mine)},
                        {"delete", Json::array({keys.header})},
                        {"delete_prefix", keys.buffers}},
                   &reply);
  if (s.code() == Status::Code::kFailedPrecondition) return Status::OK();  // gone, or not ours
  return s;
}

Status HttpBackend::ReadBuffers(const SegmentKeys& keys, std::vector<std::string>* values) {
  values->clear();
  std::string after;
  for (;;) {
    HttpResponse response;
    std::string query =
        "?prefix=" + PercentEncode(keys.buffers) + "&limit=" + std::to_string(kListPage);
    if (!after.empty()) query += "&after=" + PercentEncode(after);
    TE_RETURN_IF_ERROR(Send("GET", query, "", &response));
    if (response.status != 200) return Unexpected("GET prefix", response);
    Json j = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("entries") || !j["entries"].is_array()) {
      return Status::ProtocolError(
          "GET prefix answered no entries (not transfer_engine_metadata_server?)");
    }
    for (const Json& e : j["entries"]) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_string()) {
        return Status::ProtocolError("GET prefix: an entry is not [key, value]");
      }
      after = e[0].get<std::string>();
      values->push_back(e[1].get<std::string>());
    }
    if (!j.value("more", false) || j["entries"].empty()) return Status::OK();
  }
}

Status HttpBackend::ReadSomeBuffers(const SegmentKeys& keys, const std::vector<std::string>& ids,
                                    std::vector<std::optional<std::string>>* values) {
  values->assign(ids.size(), std::nullopt);
  if (ids.empty()) return Status::OK();
  Json get = Json::array();
  for (const std::string& id : ids) get.push_back(keys.BufferKey(id));
  Json reply;
  TE_RETURN_IF_ERROR(Batch(Json{{"get", get}}, &reply));
  const Json found = reply.value("values", Json::object());
  for (size_t i = 0; i < ids.size(); ++i) {
    auto it = found.find(keys.BufferKey(ids[i]));
    if (it != found.end() && it->is_string()) (*values)[i] = it->get<std::string>();
  }
  return Status::OK();
}

}  // namespace te
