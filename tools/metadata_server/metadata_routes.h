// The http metadata protocol on a cpp-httplib server: GET, PUT and DELETE on
// /metadata?key=<key>, the value as the body; GET /metadata?prefix=<p> lists entries
// and POST /metadata/batch applies conditional multi-key changes (docs/metadata.md).
// Everything else is a 4xx: 400 without a key or for a malformed batch, 404 for a
// missing key or an unknown path, 405 for other methods on /metadata, 409 when a
// batch's expectation fails, 413 for a body above the limit, 507 when the store is full.
#pragma once

#include <cstddef>

namespace httplib {
class Server;
}

namespace te::metadata_server {

class MetadataStore;

struct RouteOptions {
  size_t max_body_bytes = 1 << 20;
  bool log_requests = false;  // one line per request on stderr
};

// Installs the handlers and limits; `store` must outlive the server.
void InstallRoutes(httplib::Server* server, MetadataStore* store, const RouteOptions& options);

}  // namespace te::metadata_server
