#include "metadata/etcd_metadata.h"

#include <chrono>
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

// etcd refuses transactions of more than 128 operations (--max-txn-ops) and requests
// above 1.5 MiB (--max-request-bytes; base64 makes values 4/3 larger).
constexpr size_t kMaxTxnOps = 100;
constexpr size_t kMaxTxnBytes = 512 << 10;
// Keys per range request when reading every buffer (a reply stays well below the
// http client's limit).
constexpr int64_t kRangePage = 2000;

// The end of the range of keys starting with prefix: the prefix with its last byte
// incremented (prefixes here end in '/', never 0xff).
std::string PrefixEnd(std::string prefix) {
  prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

// The value of a kv as bytes; false when it is not base64.
bool KvValue(const Json& kv, std::string* value) {
  value->clear();
  if (!kv.contains("value")) return true;  // the gateway omits empty fields
  return kv["value"].is_string() && Base64Decode(kv["value"].get<std::string>(), value);
}

}  // namespace

EtcdBackend::EtcdBackend(std::vector<HttpServer> servers, uint32_t timeout_ms, uint32_t ttl_ms)
    : http_("etcd", std::move(servers), timeout_ms),
      ttl_s_(std::max<int64_t>(1, (static_cast<int64_t>(ttl_ms) + 999) / 1000)) {}

Status EtcdBackend::Call(const std::string& method, const Json& request, Json* reply) {
  HttpResponse response;
  const std::string body = request.dump();
  TE_RETURN_IF_ERROR(http_.Send("POST", "/v3/" + method, body, &response));
  Count(body.size(), response.body.size());
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
  renewed_ = std::chrono::steady_clock::now();
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

Status EtcdBackend::Read(const std::string& key, bool with_expiry, KvEntry* entry) {
  Json reply, kv;
  TE_RETURN_IF_ERROR(Call("kv/range", Json{{"key", Base64Encode(key)}}, &reply));
  if (!FirstKv(reply, &kv)) return Status::NotFound("no such key");
  if (!KvValue(kv, &entry->value)) {
    return Status::ProtocolError("etcd returned a value that is not base64");
  }
  entry->expires_in_ms = -1;
  const int64_t lease = IntField(kv, "lease", 0);
  if (lease != 0 && with_expiry) {
    Json ttl;
    TE_RETURN_IF_ERROR(Call("lease/timetolive", Json{{"ID", std::to_string(lease)}}, &ttl));
    // Whole seconds, rounded down: count the started one. TTL -1: the lease expired
    // since the range; the key goes with it now.
    const int64_t seconds = IntField(ttl, "TTL", -1);
    entry->expires_in_ms = seconds < 0 ? 0 : (seconds + 1) * 1000;
  }
  return Status::OK();
}

Json EtcdBackend::TxnOps(const SegmentKeys& keys, const KvWrite& part) const {
  Json ops = Json::array();
  if (part.replace) {
    ops.push_back({{"request_delete_range",
                    {{"key", Base64Encode(keys.buffers)},
                     {"range_end", Base64Encode(PrefixEnd(keys.buffers))}}}});
  }
  auto put = [&](const std::string& key, const std::string& value) {
    ops.push_back(
        {{"request_put",
          {{"key", Base64Encode(key)}, {"value", Base64Encode(value)}, {"lease", lease_}}}});
  };
  for (const auto& [id, entry] : part.put) put(keys.BufferKey(id), entry);
  for (const std::string& id : part.erase) {
    ops.push_back({{"request_delete_range", {{"key", Base64Encode(keys.BufferKey(id))}}}});
  }
  if (!part.header.empty()) put(keys.header, part.header);
  return ops;
}

Status EtcdBackend::Update(const SegmentKeys& keys, const KvWrite& write, const std::string& mine) {
  (void)mine;  // ownership is the header's lease, which etcd compares atomically
  if (lease_.empty()) return Status::NotFound("no lease: the entry is gone");
  // Each part only while the header is still attached to our lease; the header goes
  // in the last, so a peer that reads it finds its buffers.
  std::vector<KvWrite> parts = SplitWrite(write, kMaxTxnOps, kMaxTxnBytes);
  if (write.replace && !parts[0].put.empty()) {
    // etcd refuses a transaction that deletes a range and puts a key inside it.
    parts.insert(parts.begin(), KvWrite{});
    parts[0].replace = true;
    parts[1].replace = false;
  }
  for (const KvWrite& part : parts) {
    // A write of many parts takes longer than the lease lives: renew it as we go.
    // (The keep-alive renews every third of the TTL, so this renews only there.)
    if (std::chrono::steady_clock::now() - renewed_ > std::chrono::milliseconds(ttl_s_ * 500)) {
      TE_RETURN_IF_ERROR(KeepAlive(keys, mine));
    }
    Json request = {
        {"compare", Json::array({KeyCompare(keys.header, "LEASE", "lease", lease_)})},
        {"success", TxnOps(keys, part)},
        {"failure", Json::array({{{"request_range", {{"key", Base64Encode(keys.header)}}}}})}};
    Json reply;
    Status s = Call("kv/txn", request, &reply);
    if (s.code() == Status::Code::kNotFound) {  // our lease expired, and the entries with it
      lease_.clear();
      return Status::NotFound("lease expired: the entry is gone");
    }
    TE_RETURN_IF_ERROR(s);
    if (reply.value("succeeded", false)) continue;
    Json range = Json::object(), kv;
    auto responses = reply.find("responses");
    if (responses != reply.end() && responses->is_array() && !responses->empty()) {
      range = (*responses)[0].value("response_range", Json::object());
    }
    if (FirstKv(range, &kv))
      return Status::AlreadyExists("the entry now belongs to another engine");
    return Status::NotFound("the entry is gone");
  }
  return Status::OK();
}

Status EtcdBackend::KeepAlive(const SegmentKeys& keys, const std::string& mine) {
  (void)keys;
  (void)mine;
  if (lease_.empty()) return Status::NotFound("no lease: the entry is gone");
  Json reply;
  TE_RETURN_IF_ERROR(Call("lease/keepalive", Json{{"ID", lease_}}, &reply));
  // One message per request; an expired lease comes back without a TTL.
  const Json result = reply.value("result", Json::object());
  if (IntField(result, "TTL", 0) > 0) {
    renewed_ = std::chrono::steady_clock::now();
    return Status::OK();
  }
  lease_.clear();
  return Status::NotFound("lease expired: the entry is gone");
}

Status EtcdBackend::Overwrite(const std::string& key, const std::string& value) {
  bool succeeded = false;
  Json range;
  return PutIf(Json::array(), key, value, &succeeded, &range);
}

Status EtcdBackend::Remove(const SegmentKeys& keys, const std::string& mine) {
  (void)keys;
  (void)mine;
  if (lease_.empty()) return Status::OK();
  Json reply;
  // Every entry of ours is attached to the lease and goes with it.
  Status s = Call("lease/revoke", Json{{"ID", lease_}}, &reply);
  lease_.clear();
  if (s.code() == Status::Code::kNotFound) return Status::OK();  // expired already
  return s;
}

Status EtcdBackend::ReadBuffers(const SegmentKeys& keys, std::vector<std::string>* values) {
  values->clear();
  std::string from = keys.buffers;
  const std::string end = PrefixEnd(keys.buffers);
  for (;;) {
    Json reply;
    TE_RETURN_IF_ERROR(Call(
        "kv/range",
        Json{{"key", Base64Encode(from)}, {"range_end", Base64Encode(end)}, {"limit", kRangePage}},
        &reply));
    auto kvs = reply.find("kvs");
    if (kvs == reply.end() || !kvs->is_array() || kvs->empty()) return Status::OK();
    std::string key;
    for (const Json& kv : *kvs) {
      std::string value;
      if (!kv.is_object() || !KvValue(kv, &value) || !kv.contains("key") ||
          !Base64Decode(kv["key"].get<std::string>(), &key)) {
        return Status::ProtocolError("etcd returned a kv that is not base64");
      }
      values->push_back(std::move(value));
    }
    if (!reply.value("more", false)) return Status::OK();
    from = key + '\0';  // the next key after the last one read
  }
}

Status EtcdBackend::ReadSomeBuffers(const SegmentKeys& keys, const std::vector<std::string>& ids,
                                    std::vector<std::optional<std::string>>* values) {
  values->assign(ids.size(), std::nullopt);
  for (size_t first = 0; first < ids.size(); first += kMaxTxnOps) {
    const size_t count = std::min(kMaxTxnOps, ids.size() - first);
    Json ranges = Json::array();
    for (size_t i = first; i < first + count; ++i) {
      ranges.push_back({{"request_range", {{"key", Base64Encode(keys.BufferKey(ids[i]))}}}});
    }
    Json reply;
    TE_RETURN_IF_ERROR(Call("kv/txn", Json{{"success", ranges}}, &reply));
    auto responses = reply.find("responses");
    if (responses == reply.end() || !responses->is_array() || responses->size() != count) {
      return Status::ProtocolError("etcd kv/txn returned no response per range");
    }
    for (size_t i = 0; i < count; ++i) {
      Json kv;
      if (!FirstKv((*responses)[i].value("response_range", Json::object()), &kv)) continue;
      std::string value;
      if (!KvValue(kv, &value))
        return Status::ProtocolError("etcd returned a value that is not base64");
      (*values)[first + i] = std::move(value);
    }
  }
  return Status::OK();
}

}  // namespace te
