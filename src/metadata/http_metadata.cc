#include "metadata/http_metadata.h"

#include <nlohmann/json.hpp>

#include "common/logging.h"
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

Status HttpBackend::DetectMode() {
  if (mode_ != Mode::kUnknown) return Status::OK();
  HttpResponse response;
  TE_RETURN_IF_ERROR(Send("POST", "/batch", "{}", &response));
  if (response.status == 200) {
    mode_ = Mode::kEntries;
    return Status::OK();
  }
  if (response.status != 404 && response.status != 405) return Unexpected("POST batch", response);
  mode_ = Mode::kWholeSegments;
  TE_LOG(Warning) << http_.Describe() << " has no batch endpoint (POST "
                  << "/batch answered HTTP " << response.status
                  << "): storing each segment as one whole descriptor under its key; claims on "
                     "such a server are not atomic (docs/metadata.md, \"http\")";
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

Status HttpBackend::Put(const std::string& key, const std::string& value) {
  HttpResponse response;
  TE_RETURN_IF_ERROR(Send("PUT", Query(key), value, &response));
  // Existing servers answer 200; accept any 2xx.
  if (response.status < 200 || response.status > 299) return Unexpected("PUT", response);
  return Status::OK();
}

Status HttpBackend::Delete(const std::string& key) {
  HttpResponse response;
  TE_RETURN_IF_ERROR(Send("DELETE", Query(key), "", &response));
  if (response.status == 404 || (response.status >= 200 && response.status <= 299)) {
    return Status::OK();
  }
  return Unexpected("DELETE", response);
}

Status HttpBackend::Create(const std::string& key, const std::string& value) {
  TE_RETURN_IF_ERROR(DetectMode());
  if (mode_ == Mode::kWholeSegments) return CreateWhole(key, value);
  Json reply;
  Status s = Batch(Json{{"expect", Expect(key, nullptr)}, {"put", {{key, value}}}}, &reply);
  if (s.code() == Status::Code::kFailedPrecondition) return Status::AlreadyExists("key exists");
  return s;
}

Status HttpBackend::Read(const std::string& key, bool /*with_expiry*/, KvEntry* entry) {
  TE_RETURN_IF_ERROR(DetectMode());
  entry->expires_in_ms = -1;
  if (mode_ == Mode::kWholeSegments) return ReadWhole(key, entry);
  return Get(key, &entry->value);
}

Status HttpBackend::Overwrite(const std::string& key, const std::string& value) {
  return Put(key, value);  // a header alone is a whole segment without buffers
}

Status HttpBackend::Update(const SegmentKeys& keys, const KvWrite& write, const std::string& mine) {
  TE_RETURN_IF_ERROR(DetectMode());
  if (mode_ == Mode::kWholeSegments) return UpdateWhole(keys, write, mine);
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
  TE_RETURN_IF_ERROR(DetectMode());
  if (mode_ == Mode::kWholeSegments) {
    WholeSegment whole;
    return ReadOwnWhole(keys, mine, &whole);
  }
  // No TTL to renew: check that the server still has the header (a restarted
  // in-memory server has not), so the client re-creates the entries.
  std::string current;
  TE_RETURN_IF_ERROR(Get(keys.header, &current));
  if (current != mine) return Status::AlreadyExists("the entry now belongs to another engine");
  return Status::OK();
}

Status HttpBackend::Remove(const SegmentKeys& keys, const std::string& mine) {
  TE_RETURN_IF_ERROR(DetectMode());
  if (mode_ == Mode::kWholeSegments) return RemoveWhole(keys, mine);
  Json reply;
  Status s = Batch(Json{{"expect", Expect(keys.header, &mine)},
                        {"delete", Json::array({keys.header})},
                        {"delete_prefix", keys.buffers}},
                   &reply);
  if (s.code() == Status::Code::kFailedPrecondition) return Status::OK();  // gone, or not ours
  return s;
}

Status HttpBackend::ReadBuffers(const SegmentKeys& keys, std::vector<std::string>* values) {
  TE_RETURN_IF_ERROR(DetectMode());
  values->clear();
  if (mode_ == Mode::kWholeSegments) {
    std::map<std::string, std::string> buffers;
    TE_RETURN_IF_ERROR(BuffersWhole(keys, &buffers));
    for (auto& [id, entry] : buffers) values->push_back(std::move(entry));
    return Status::OK();
  }
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
  TE_RETURN_IF_ERROR(DetectMode());
  values->assign(ids.size(), std::nullopt);
  if (ids.empty()) return Status::OK();
  if (mode_ == Mode::kWholeSegments) {
    std::map<std::string, std::string> buffers;
    TE_RETURN_IF_ERROR(BuffersWhole(keys, &buffers));
    for (size_t i = 0; i < ids.size(); ++i) {
      auto it = buffers.find(ids[i]);
      if (it != buffers.end()) (*values)[i] = std::move(it->second);
    }
    return Status::OK();
  }
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

// Whole-segment mode: the segment is one value; every change reads it (checking that
// it is still ours), applies the change and writes it back.

Status HttpBackend::CreateWhole(const std::string& key, const std::string& value) {
  // Without a conditional write, a GET then a PUT: two claimants at the same moment
  // may both succeed; the later PUT holds the name and the other engine's keep-alive
  // finds that out (docs/metadata.md, "http").
  std::string current;
  Status s = Get(key, &current);
  if (s.ok()) return Status::AlreadyExists("key exists");
  if (s.code() != Status::Code::kNotFound) return s;
  return Put(key, value);
}

Status HttpBackend::ReadWhole(const std::string& key, KvEntry* entry) {
  std::string value;
  TE_RETURN_IF_ERROR(Get(key, &value));
  WholeSegment whole;
  read_buffers_.clear();
  read_key_.clear();
  if (!WholeSegment::FromJson(value, &whole).ok()) {
    entry->value = std::move(value);  // the caller reports what it is not
    return Status::OK();
  }
  entry->value = std::move(whole.header);
  read_key_ = key;
  read_buffers_ = std::move(whole.buffers);
  return Status::OK();
}

Status HttpBackend::ReadOwnWhole(const SegmentKeys& keys, const std::string& mine,
                                 WholeSegment* whole) {
  std::string value;
  Status s = Get(keys.header, &value);
  if (s.code() == Status::Code::kNotFound) return Status::NotFound("the entry is gone");
  TE_RETURN_IF_ERROR(s);
  if (!WholeSegment::FromJson(value, whole).ok() || whole->header != mine) {
    return Status::AlreadyExists("the entry now belongs to another engine");
  }
  return Status::OK();
}

Status HttpBackend::UpdateWhole(const SegmentKeys& keys, const KvWrite& write,
                                const std::string& mine) {
  WholeSegment whole;
  TE_RETURN_IF_ERROR(ReadOwnWhole(keys, mine, &whole));
  if (write.replace) whole.buffers.clear();
  for (const auto& [id, entry] : write.put) whole.buffers[id] = entry;
  for (const std::string& id : write.erase) whole.buffers.erase(id);
  if (!write.header.empty()) whole.header = write.header;
  return Put(keys.header, whole.ToJson());
}

Status HttpBackend::RemoveWhole(const SegmentKeys& keys, const std::string& mine) {
  WholeSegment whole;
  Status s = ReadOwnWhole(keys, mine, &whole);
  if (s.code() == Status::Code::kNotFound || s.code() == Status::Code::kAlreadyExists) {
    return Status::OK();  // gone, or not ours
  }
  TE_RETURN_IF_ERROR(s);
  return Delete(keys.header);
}

Status HttpBackend::BuffersWhole(const SegmentKeys& keys,
                                 std::map<std::string, std::string>* buffers) {
  if (read_key_ == keys.header) {
    *buffers = std::move(read_buffers_);
    read_key_.clear();
    read_buffers_.clear();
    return Status::OK();
  }
  // Another lookup came between (or none): read the value again, newer than the
  // header the caller holds, as buffer entries read after a header may be.
  KvEntry entry;
  Status s = ReadWhole(keys.header, &entry);
  if (s.code() == Status::Code::kNotFound) {
    buffers->clear();
    return Status::OK();
  }
  TE_RETURN_IF_ERROR(s);
  if (read_key_ != keys.header) return Status::ProtocolError("segment entry is not a descriptor");
  return BuffersWhole(keys, buffers);
}

}  // namespace te
