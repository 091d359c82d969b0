#include "metadata/etcd_metadata.h"

#include <nlohmann/json.hpp>

#include "metadata/text_codec.h"

namespace te {
namespace {

using Json = nlohmann::json;

// The gateway writes 64-bit integers as strings ("TTL": "10"); accept either.
int64_t IntField(const Json& j, const char* key, int64_t fallback) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (const std::exception&) {
      return fallback;
    }
  }
  return fallback;
}

// gRPC status codes the gateway puts in "code".
Status::Code FromGrpcCode(int64_t code) {
  switch (code) {
    case 3:
      return Status::Code::kInvalidArgument;
    case 5:
      return Status::Code::kNotFound;
    case 7:
    case 16:
      return Status::Code::kPermissionDenied;
    case 4:
      return Status::Code::kTimeout;
    case 14:
      return Status::Code::kUnavailable;
    default:
      return Status::Code::kFailedPrecondition;
  }
}

Json KeyCompare(const std::string& key, const char* target, const char* field, Json value) {
  return Json{{"key", Base64Encode(key)}, {"target", target}, {"result", "EQUAL"}, {field, value}};
}

// The first kv of a range response (or of a txn's response_range); false if none.
bool FirstKv(const Json& range, Json* kv) {
  auto it = range.find("kvs");
  if (it == range.end() || !it->is_array() || it->empty() || !(*it)[0].is_object()) return false;
  *kv = (*it)[0];
  return true;
}

}  // namespace

EtcdBackend::EtcdBackend(std::vector<HttpServer> servers, uint32_t timeout_ms, uint32_t ttl_ms)
    : http_("etcd", std::move(servers), timeout_ms),
      ttl_s_(std::max<int64_t>(1, (static_cast<int64_t>(ttl_ms) + 999) / 1000)) {}

Status EtcdBackend::Call(const std::string& method, const Json& request, Json* reply) {
  HttpResponse response;
  TE_RETURN_IF_ERROR(http_.Send("POST", "/v3/" + method, request.dump(), &response));
  Json j = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (response.status != 200) {
    if (j.is_object() && j.contains("message") && j["message"].is_string()) {
      return Status(FromGrpcCode(IntField(j, "code", 2)),
                    "etcd " + method + ": " + j["message"].get<std::string>());
    }
    return Status::ProtocolError("etcd " + method + " answered HTTP " +
                                 std::to_string(response.status) +
                                 " (is this etcd v3.4+?): " + response.body.substr(0, 200));
  }
  if (!j.is_object()) {
    return Status::ProtocolError("etcd " + method + " answered with something not JSON");
  }
  *reply = std::move(j);
  return Status::OK();
}

Status EtcdBackend::GrantLease() {
  Json reply;
  TE_RETURN_IF_ERROR(Call("lease/grant", Json{{"TTL", ttl_s_}}, &reply));
  const int64_t id = IntField(reply, "ID", 0);
  if (id == 0) return Status::ProtocolError("etcd lease/grant returned no lease ID");
  lease_ = std::to_string(id);
  return Status::OK();
}

Status EtcdBackend::PutIf(const Json& compare, const std::string& key, const std::string& value,
                          bool* succeeded, Json* range) {
  // A lease that expired (we were cut off longer than the TTL) fails the put with
  // kNotFound: take a new one and try once more.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (lease_.empty()) TE_RETURN_IF_ERROR(GrantLease());
    Json request = {{"compare", compare},
                    {"success", Json::array({{{"request_put",
                                               {{"key", Base64Encode(key)},
                                                {"value", Base64Encode(value)},
                                                {"lease", lease_}}}}})},
                    {"failure", Json::array({{{"request_range", {{"key", Base64Encode(key)}}}}})}};
    Json reply;
    Status s = Call("kv/txn", request, &reply);
    if (s.code() == Status::Code::kNotFound && attempt == 0) {
      lease_.clear();
      continue;
    }
    TE_RETURN_IF_ERROR(s);
    *succeeded = reply.value("succeeded", false);
    *range = Json::object();
    auto responses = reply.find("responses");
    if (!*succeeded && responses != reply.end() && responses->is_array() && !responses->empty()) {
      *range = (*responses)[0].value("response_range", Json::object());
    }
    return Status::OK();
  }
  return Status::Unavailable("etcd keeps rejecting fresh leases");
}

Status EtcdBackend::Create(const std::string& key, const std::string& value) {
  bool succeeded = false;
  Json range;
  TE_RETURN_IF_ERROR(PutIf(Json::array({KeyCompare(key, "CREATE", "create_revision", "0")}), key,
                           value, &succeeded, &range));
  return succeeded ? Status::OK() : Status::AlreadyExists("key exists");
}

Status EtcdBackend::Read(const std::string& key, KvEntry* entry) {
  Json reply, kv;
  TE_RETURN_IF_ERROR(Call("kv/range", Json{{"key", Base64Encode(key)}}, &reply));
  if (!FirstKv(reply, &kv)) return Status::NotFound("no such key");
  if (!kv.contains("value")) {
    entry->value.clear();  // the gateway omits empty fields
  } else if (!kv["value"].is_string() ||
             !Base64Decode(kv["value"].get<std::string>(), &entry->value)) {
    return Status::ProtocolError("etcd returned a value that is not base64");
  }
  entry->expires_in_ms = -1;
  const int64_t lease = IntField(kv, "lease", 0);
  if (lease != 0) {
    Json ttl;
    TE_RETURN_IF_ERROR(Call("lease/timetolive", Json{{"ID", std::to_string(lease)}}, &ttl));
    // Whole seconds, rounded down: count the started one. TTL -1: the lease expired
    // since the range; the key goes with it now.
    const int64_t seconds = IntField(ttl, "TTL", -1);
    entry->expires_in_ms = seconds < 0 ? 0 : (seconds + 1) * 1000;
  }
  return Status::OK();
}

Status EtcdBackend::Update(const std::string& key, const std::string& value,
                           const std::string& mine) {
  (void)mine;  // ownership is the key's lease, which etcd compares atomically
  bool succeeded = false;
  Json range;
  if (lease_.empty()) TE_RETURN_IF_ERROR(GrantLease());
  // If PutIf has to replace an expired lease, this compare fails, and the failure
  // branch shows the key gone (it went with the lease): then it is created below.
  Json compare = Json::array({KeyCompare(key, "LEASE", "lease", lease_)});
  TE_RETURN_IF_ERROR(PutIf(compare, key, value, &succeeded, &range));
  if (succeeded) return Status::OK();
  Json kv;
  if (FirstKv(range, &kv)) return Status::AlreadyExists("the entry now belongs to another engine");
  // Gone (its lease expired while we were cut off, or the cluster lost it): claim again.
  Status s = Create(key, value);
  if (s.code() == Status::Code::kAlreadyExists) {
    return Status::AlreadyExists("the entry now belongs to another engine");
  }
  return s;
}

Status EtcdBackend::KeepAlive(const std::string& key, const std::string& value,
                              const std::string& mine) {
  if (lease_.empty() || value != mine) return Update(key, value, mine);
  Json reply;
  TE_RETURN_IF_ERROR(Call("lease/keepalive", Json{{"ID", lease_}}, &reply));
  // One message per request; an expired lease comes back without a TTL.
  const Json result = reply.value("result", Json::object());
  if (IntField(result, "TTL", 0) > 0) return Status::OK();
  lease_.clear();
  return Update(key, value, mine);
}

Status EtcdBackend::Overwrite(const std::string& key, const std::string& value) {
  bool succeeded = false;
  Json range;
  return PutIf(Json::array(), key, value, &succeeded, &range);
}

Status EtcdBackend::Remove(const std::string& key, const std::string& mine) {
  (void)key;
  (void)mine;
  if (lease_.empty()) return Status::OK();
  Json reply;
  Status s = Call("lease/revoke", Json{{"ID", lease_}}, &reply);
  lease_.clear();
  if (s.code() == Status::Code::kNotFound) return Status::OK();  // expired already
  return s;
}

}  // namespace te
