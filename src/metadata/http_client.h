// A small HTTP client for the metadata backends that speak HTTP (etcd's JSON gateway,
// http metadata servers), on libcurl (which, unlike cpp-httplib 0.11, accepts the
// chunked trailers etcd's gateway sends with errors). Each request opens its own
// connection: metadata traffic is rare, and no connection state survives a server
// restart.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "metadata/kv_backend.h"

namespace te {

struct HttpServer {
  std::string origin;  // "http://host:port"
  std::string path;    // prefix of every request path, e.g. "/metadata"; may be empty
  std::string Display() const { return origin.substr(7) + path; }
};

// Parses "host:port[/path]" or "http://host:port[/path]"; an empty path becomes
// default_path. https is refused (no certificate configuration here).
Status ParseHttpServer(const std::string& text, const std::string& default_path, HttpServer* out);

struct HttpResponse {
  int status = 0;
  std::string body;
};

class HttpFailover {
 public:
  // kind names the backend in messages ("etcd", "http metadata").
  HttpFailover(std::string kind, std::vector<HttpServer> servers, uint32_t timeout_ms);

  // "<kind> host:port/path,..."
  std::string Describe() const;
  // Sends method server.path + suffix (suffix includes any query) to the current
  // server, then to the others, until one answers with a status below 500. Per
  // server, connecting takes at most timeout_ms and the whole exchange 2 * timeout_ms;
  // replies above kMaxBody are refused.
  Status Send(const std::string& method, const std::string& suffix, const std::string& body,
              HttpResponse* response);

  static constexpr size_t kMaxBody = 16 << 20;

 private:
  Status SendTo(const HttpServer& server, const std::string& method, const std::string& suffix,
                const std::string& body, HttpResponse* response) const;

  const std::string kind_;
  const std::vector<HttpServer> servers_;
  const uint32_t timeout_ms_;
  ServerRotation rotation_;
};

}  // namespace te
