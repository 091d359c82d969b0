#include "metadata/http_metadata.h"

#include "metadata/text_codec.h"

namespace te {
namespace {

std::string Query(const std::string& key) { return "?key=" + PercentEncode(key); }

Status Unexpected(const char* method, const HttpResponse& response) {
  return Status::ProtocolError(std::string(method) + " answered HTTP " +
                               std::to_string(response.status) + ": " +
                               response.body.substr(0, 200));
}

}  // namespace

Status HttpBackend::Get(const std::string& key, std::string* value) {
  HttpResponse response;
  TE_RETURN_IF_ERROR(http_.Send("GET", Query(key), "", &response));
  if (response.status == 404) return Status::NotFound("no such key");
  if (response.status != 200) return Unexpected("GET", response);
  *value = std::move(response.body);
  return Status::OK();
}

Status HttpBackend::Put(const std::string& key, const std::string& value) {
  HttpResponse response;
  TE_RETURN_IF_ERROR(http_.Send("PUT", Query(key), value, &response));
  // Existing servers answer 200; accept any 2xx.
  if (response.status < 200 || response.status > 299) return Unexpected("PUT", response);
  return Status::OK();
}

Status HttpBackend::Create(const std::string& key, const std::string& value) {
  std::string current;
  Status s = Get(key, &current);
  if (s.ok()) return Status::AlreadyExists("key exists");
  if (s.code() != Status::Code::kNotFound) return s;
  return Put(key, value);
}

Status HttpBackend::Read(const std::string& key, KvEntry* entry) {
  entry->expires_in_ms = -1;
  return Get(key, &entry->value);
}

Status HttpBackend::Update(const std::string& key, const std::string& value,
                           const std::string& mine) {
  std::string current;
  Status s = Get(key, &current);
  // Unchanged: nothing to write, so a keep-alive costs one GET.
  if (s.ok() && current == value) return s;
  if (s.ok() && current != mine)
    return Status::AlreadyExists("the entry now belongs to another engine");
  if (!s.ok() && s.code() != Status::Code::kNotFound) return s;
  return Put(key, value);
}

Status HttpBackend::Overwrite(const std::string& key, const std::string& value) {
  return Put(key, value);
}

Status HttpBackend::Remove(const std::string& key, const std::string& mine) {
  std::string current;
  Status s = Get(key, &current);
  if (s.code() == Status::Code::kNotFound) return Status::OK();
  TE_RETURN_IF_ERROR(s);
  if (current != mine) return Status::OK();  // another engine's entry now
  HttpResponse response;
  TE_RETURN_IF_ERROR(http_.Send("DELETE", Query(key), "", &response));
  if (response.status == 404 || (response.status >= 200 && response.status <= 299)) {
    return Status::OK();
  }
  return Unexpected("DELETE", response);
}

}  // namespace te
