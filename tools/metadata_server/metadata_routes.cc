#include "metadata_routes.h"

#include <httplib.h>

#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>

#include "metadata_store.h"

namespace te::metadata_server {
namespace {

constexpr char kPath[] = "/metadata";
constexpr char kBatchPath[] = "/metadata/batch";
constexpr size_t kMaxListLimit = 100000;
constexpr char kTextType[] = "text/plain";

void Reply(httplib::Response& res, int status, const char* text) {
  res.status = status;
  res.set_content(text, kTextType);
}

// The key parameter; answers 400 and returns false when it is missing or empty.
bool KeyOf(const httplib::Request& req, httplib::Response& res, std::string* key) {
  if (!req.has_param("key") || req.get_param_value("key").empty()) {
    Reply(res, 400, "missing key parameter");
    return false;
  }
  *key = req.get_param_value("key");
  return true;
}

const char* StatusText(int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 404:
      return "not found";
    case 405:
      return "method not allowed";
    case 413:
      return "payload too large";
    case 414:
      return "uri too long";
    case 416:
      return "range not satisfiable";
    case 431:
      return "request header fields too large";
    case 500:
      return "internal error";
    default:
      return status >= 500 ? "server error" : "client error";
  }
}

// GET /metadata?prefix=<p>[&after=<key>][&limit=<n>]: {"entries": [[key, value], ...],
// "more": bool}, the entries under the prefix in key order.
void List(const MetadataStore& store, const httplib::Request& req, httplib::Response& res) {
  size_t limit = kMaxListLimit;
  if (req.has_param("limit")) {
    try {
      limit = std::stoul(req.get_param_value("limit"));
    } catch (const std::exception&) {
      return Reply(res, 400, "limit is not a number");
    }
    if (limit == 0 || limit > kMaxListLimit) return Reply(res, 400, "limit out of range");
  }
  bool more = false;
  nlohmann::json entries = nlohmann::json::array();
  for (auto& [key, value] :
       store.List(req.get_param_value("prefix"), req.get_param_value("after"), limit, &more)) {
    entries.push_back({std::move(key), std::move(value)});
  }
  res.status = 200;
  // Keys and values may hold any bytes; replace what is not UTF-8 rather than throw.
  res.set_content(nlohmann::json{{"entries", entries}, {"more", more}}.dump(
                      -1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

// The body of POST /metadata/batch as a StoreBatch; false with a reason when malformed.
bool ParseBatch(const std::string& body, StoreBatch* batch, std::string* why) {
  using Json = nlohmann::json;
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return (*why = "body is not a JSON object", false);
  try {
    if (j.contains("expect")) {
      const Json& e = j.at("expect");
      batch->expect_key = e.at("key").get<std::string>();
      if (!e.at("value").is_null()) batch->expect_value = e.at("value").get<std::string>();
    }
    if (j.contains("delete_prefix"))
      batch->delete_prefix = j.at("delete_prefix").get<std::string>();
    if (j.contains("delete")) batch->erase = j.at("delete").get<std::vector<std::string>>();
    if (j.contains("put")) {
      for (const auto& [key, value] : j.at("put").items()) {
        batch->put.emplace_back(key, value.get<std::string>());
      }
    }
    if (j.contains("get")) batch->get = j.at("get").get<std::vector<std::string>>();
  } catch (const std::exception& e) {
    return (*why = std::string("malformed batch: ") + e.what(), false);
  }
  for (const auto& [key, value] : batch->put) {
    if (key.empty()) return (*why = "empty key", false);
  }
  return true;
}

void ApplyBatch(MetadataStore* store, const httplib::Request& req, httplib::Response& res) {
  StoreBatch batch;
  std::string why;
  if (!ParseBatch(req.body, &batch, &why)) return Reply(res, 400, why.c_str());
  std::optional<std::string> current;
  std::map<std::string, std::string> got;
  using Json = nlohmann::json;
  const auto dump = [](const Json& j) {
    return j.dump(-1, ' ', false, Json::error_handler_t::replace);
  };
  switch (store->Apply(batch, &current, &got)) {
    case BatchResult::kConflict:
      res.status = 409;
      res.set_content(dump(Json{{"value", current ? Json(*current) : Json(nullptr)}}),
                      "application/json");
      return;
    case BatchResult::kFull:
      return Reply(res, 507, "metadata store is full");
    case BatchResult::kApplied:
      res.status = 200;
      res.set_content(dump(Json{{"values", got}}), "application/json");
      return;
  }
}

}  // namespace

void InstallRoutes(httplib::Server* server, MetadataStore* store, const RouteOptions& options) {
  // cpp-httplib answers 413 itself when a body (Content-Length or chunked) exceeds it,
  // before any handler runs.
  server->set_payload_max_length(options.max_body_bytes);

  server->Get(kPath, [store](const httplib::Request& req, httplib::Response& res) {
    if (req.has_param("prefix") && !req.has_param("key")) return List(*store, req, res);
    std::string key, value;
    if (!KeyOf(req, res, &key)) return;
    if (!store->Get(key, &value)) return Reply(res, 404, "metadata not found");
    res.status = 200;
    res.set_content(value, "application/json");
  });
  server->Put(kPath, [store](const httplib::Request& req, httplib::Response& res) {
    std::string key;
    if (!KeyOf(req, res, &key)) return;
    if (!store->Put(key, req.body)) return Reply(res, 507, "metadata store is full");
    Reply(res, 200, "metadata updated");
  });
  server->Delete(kPath, [store](const httplib::Request& req, httplib::Response& res) {
    std::string key;
    if (!KeyOf(req, res, &key)) return;
    if (!store->Delete(key)) return Reply(res, 404, "metadata not found");
    Reply(res, 200, "metadata deleted");
  });
  server->Post(kBatchPath, [store](const httplib::Request& req, httplib::Response& res) {
    ApplyBatch(store, req, res);
  });
  auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Allow", "GET, HEAD, PUT, DELETE");
    Reply(res, 405, "method not allowed");
  };
  server->Post(kPath, not_allowed);
  server->Patch(kPath, not_allowed);
  server->Options(kPath, not_allowed);

  // Unknown paths (404), unparsable requests (400), oversized ones (413, 414): say so
  // in the body too.
  server->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) res.set_content(StatusText(res.status), kTextType);
  });
  // A handler must never take the server down; report and answer 500.
  server->set_exception_handler([](const httplib::Request& req, httplib::Response& res,
                                   std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    std::fprintf(stderr, "error: %s %s: %s\n", req.method.c_str(), req.path.c_str(), what.c_str());
    Reply(res, 500, "internal error");
  });
  if (options.log_requests) {
    server->set_logger([](const httplib::Request& req, const httplib::Response& res) {
      std::fprintf(stderr, "%s %s %s -> %d\n", req.remote_addr.c_str(), req.method.c_str(),
                   req.target.c_str(), res.status);
    });
  }
}

}  // namespace te::metadata_server
