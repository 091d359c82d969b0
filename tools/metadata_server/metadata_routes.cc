#include "metadata_routes.h"

#include <httplib.h>

#include <cstdio>
#include <exception>

#include "metadata_store.h"

namespace te::metadata_server {
namespace {

constexpr char kPath[] = "/metadata";
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

}  // namespace

void InstallRoutes(httplib::Server* server, MetadataStore* store, const RouteOptions& options) {
  // cpp-httplib answers 413 itself when a body (Content-Length or chunked) exceeds it,
  // before any handler runs.
  server->set_payload_max_length(options.max_body_bytes);

  server->Get(kPath, [store](const httplib::Request& req, httplib::Response& res) {
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
