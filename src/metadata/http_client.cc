#include "metadata/http_client.h"

#include <curl/curl.h>

#include <memory>
#include <mutex>

#include "common/strings.h"

namespace te {
namespace {

struct Transfer {
  std::string* body;
  bool too_large = false;
};

size_t OnData(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * count;
  if (t->body->size() + len > HttpFailover::kMaxBody) {
    t->too_large = true;
    return 0;  // makes curl fail with CURLE_WRITE_ERROR
  }
  t->body->append(data, len);
  return len;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct HeaderListDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

Status ParseHttpServer(const std::string& text, const std::string& default_path, HttpServer* out) {
  std::string_view rest = text;
  if (rest.substr(0, 7) == "http://") {
    rest.remove_prefix(7);
  } else if (rest.find("://") != std::string_view::npos) {
    return Status::InvalidArgument("metadata server '" + text + "': only http:// is supported");
  }
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  out->path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
  while (!out->path.empty() && out->path.back() == '/') out->path.pop_back();
  if (out->path.empty()) out->path = default_path;
  std::string host;
  uint16_t port = 0;
  if (authority.empty() || !ParseHostPort(authority, &host, &port) || port == 0 ||
      (authority.front() != '[' && host.find(':') != std::string::npos)) {
    return Status::InvalidArgument("metadata server '" + text +
                                   "' is not [http://]host:port[/path]");
  }
  out->origin = "http://" + std::string(authority);
  return Status::OK();
}

HttpFailover::HttpFailover(std::string kind, std::vector<HttpServer> servers, uint32_t timeout_ms)
    : kind_(std::move(kind)),
      servers_(std::move(servers)),
      timeout_ms_(timeout_ms),
      rotation_(servers_.size()) {
  // curl_global_init must run once before any handle exists; it is not guaranteed
  // thread-safe with every TLS backend, hence the once-flag.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string HttpFailover::Describe() const {
  std::string s = kind_ + " ";
  for (size_t i = 0; i < servers_.size(); ++i) s += (i ? "," : "") + servers_[i].Display();
  return s;
}

Status HttpFailover::SendTo(const HttpServer& server, const std::string& method,
                            const std::string& suffix, const std::string& body,
                            HttpResponse* response) const {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return Status::ResourceExhausted("cannot create a curl handle");
  const std::string url = server.origin + server.path + suffix;
  std::unique_ptr<curl_slist, HeaderListDeleter> headers;
  if (!body.empty()) {
    headers.reset(curl_slist_append(nullptr, "Content-Type: application/json"));
  }
  response->body.clear();
  Transfer transfer{&response->body};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM for resolver timeouts
  // Metadata servers are cluster-internal: an http_proxy meant for the outside world
  // must not reroute (or break) these requests.
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms_));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2L * timeout_ms_);
  curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  if (method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    if (method != "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method != "DELETE" || !body.empty()) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
  }
  const CURLcode rc = curl_easy_perform(c);
  if (transfer.too_large) {
    return Status::ProtocolError("reply larger than " + std::to_string(kMaxBody) + " bytes");
  }
  switch (rc) {
    case CURLE_OK:
      break;
    case CURLE_OPERATION_TIMEDOUT:
      return Status::Timeout(std::string("no reply within the timeout (") +
                             std::to_string(timeout_ms_) + " ms to connect, " +
                             std::to_string(2 * timeout_ms_) + " ms in all)");
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
      return Status::Unavailable(std::string("cannot connect: ") + curl_easy_strerror(rc));
    case CURLE_GOT_NOTHING:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return Status::ProtocolError(std::string("not an HTTP server? ") + curl_easy_strerror(rc));
    default:
      return Status::Unavailable(std::string("request failed: ") + curl_easy_strerror(rc));
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  response->status = static_cast<int>(status);
  return Status::OK();
}

Status HttpFailover::Send(const std::string& method, const std::string& suffix,
                          const std::string& body, HttpResponse* response) {
  std::string errors;
  Status::Code code = Status::Code::kUnavailable;  // unless a server spoke nonsense
  for (size_t index : rotation_.Order()) {
    Status s = SendTo(servers_[index], method, suffix, body, response);
    if (s.ok() && response->status >= 500) {
      s = Status::Unavailable("HTTP " + std::to_string(response->status) + " " +
                              response->body.substr(0, 200));
    }
    if (s.ok()) {
      rotation_.Answered(index);
      return s;
    }
    if (s.code() == Status::Code::kProtocolError) code = s.code();
    if (!errors.empty()) errors += "; ";
    errors += servers_[index].Display() + ": " + s.message();
  }
  return Status(code, "no " + kind_ + " server answered (" + errors + ")");
}

}  // namespace te
