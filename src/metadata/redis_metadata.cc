#include "metadata/redis_metadata.h"

#include <hiredis/hiredis.h>

#include <cerrno>

#include "common/strings.h"
#include "metadata/text_codec.h"

namespace te {
namespace {

// Writes ARGV[1] unless the key holds a value that is neither ARGV[1] nor ARGV[2]
// (this client's last write): another engine's entry is never overwritten.
constexpr char kUpdateScript[] = R"lua(
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] and cur ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
)lua";

// Deletes the key only while it holds ARGV[1].
constexpr char kRemoveScript[] = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

struct timeval ToTimeval(uint32_t ms) {
  struct timeval tv;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = static_cast<suseconds_t>(ms % 1000) * 1000;
  return tv;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Replies that mean "this server cannot serve us now, another one might": a replica
// refusing writes, a server loading its data set, a replica without its master.
bool IsServerStateError(std::string_view message) {
  return StartsWith(message, "READONLY") || StartsWith(message, "LOADING") ||
         StartsWith(message, "MASTERDOWN") || StartsWith(message, "TRYAGAIN");
}

}  // namespace

std::string RedisServer::Display() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port) + (db != 0 ? "/" + std::to_string(db) : "");
}

Status ParseRedisServer(const std::string& text, RedisServer* out) {
  *out = RedisServer();
  std::string_view rest = text;
  const bool url = StartsWith(rest, "redis://");
  if (!url && rest.find("://") != std::string_view::npos) {
    return Status::InvalidArgument("redis server '" + text +
                                   "': only redis:// URLs are supported (no TLS)");
  }
  if (url) {
    rest.remove_prefix(8);
    const size_t at = rest.rfind('@');
    if (at != std::string_view::npos) {
      std::string_view userinfo = rest.substr(0, at);
      rest.remove_prefix(at + 1);
      const size_t colon = userinfo.find(':');
      std::string_view user = colon == std::string_view::npos ? "" : userinfo.substr(0, colon);
      std::string_view password =
          colon == std::string_view::npos ? userinfo : userinfo.substr(colon + 1);
      if (!PercentDecode(user, &out->user) || !PercentDecode(password, &out->password)) {
        return Status::InvalidArgument("redis server '" + text + "': bad %-escape in credentials");
      }
    }
    const size_t slash = rest.find('/');
    if (slash != std::string_view::npos) {
      std::string_view db = rest.substr(slash + 1);
      rest = rest.substr(0, slash);
      uint64_t n = 0;
      if (!db.empty() && (!ParseUint64(db, &n) || n > 1000000)) {
        return Status::InvalidArgument("redis server '" + text + "': database '" + std::string(db) +
                                       "' is not a number");
      }
      out->db = static_cast<uint32_t>(n);
    }
  }
  // A bare host (or "[v6]") takes the default port.
  if (!rest.empty() && rest.front() == '[' && rest.back() == ']') {
    out->host = std::string(rest.substr(1, rest.size() - 2));
  } else if (rest.find(':') == std::string_view::npos) {
    out->host = std::string(rest);
  } else if (!ParseHostPort(rest, &out->host, &out->port) || out->port == 0 ||
             (rest.front() != '[' && out->host.find(':') != std::string::npos)) {
    return Status::InvalidArgument("redis server '" + text +
                                   "' is not host:port or redis://[:password@]host[:port][/db]");
  }
  if (out->host.empty()) return Status::InvalidArgument("redis server '" + text + "' has no host");
  return Status::OK();
}

void RedisBackend::ReplyDeleter::operator()(void* reply) const { freeReplyObject(reply); }

RedisBackend::RedisBackend(std::vector<RedisServer> servers, uint32_t timeout_ms, uint32_t ttl_ms)
    : servers_(std::move(servers)),
      timeout_ms_(timeout_ms),
      ttl_ms_(std::to_string(ttl_ms)),
      rotation_(servers_.size()) {}

RedisBackend::~RedisBackend() { Disconnect(); }

std::string RedisBackend::Describe() const {
  std::string s = "redis ";
  for (size_t i = 0; i < servers_.size(); ++i) s += (i ? "," : "") + servers_[i].Display();
  return s;
}

void RedisBackend::Disconnect() {
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
}

Status RedisBackend::Connect(size_t index) {
  Disconnect();
  const RedisServer& server = servers_[index];
  redisContext* ctx =
      redisConnectWithTimeout(server.host.c_str(), server.port, ToTimeval(timeout_ms_));
  if (!ctx) return Status::ResourceExhausted("cannot allocate a redis context");
  if (ctx->err) {
    Status s = Status::Unavailable(std::string("cannot connect: ") + ctx->errstr);
    redisFree(ctx);
    return s;
  }
  if (redisSetTimeout(ctx, ToTimeval(timeout_ms_)) != REDIS_OK) {
    redisFree(ctx);
    return Status::IoError("cannot set the socket timeout");
  }
  ctx_ = ctx;
  connected_ = index;
  Reply reply;
  if (!server.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!server.user.empty()) auth.push_back(server.user);
    auth.push_back(server.password);
    Status s = Send(auth, &reply);
    if (!s.ok()) {
      Disconnect();
      if (s.code() == Status::Code::kFailedPrecondition ||
          s.code() == Status::Code::kPermissionDenied) {
        return Status::PermissionDenied("authentication failed: " + s.message());
      }
      return s;
    }
  }
  if (server.db != 0) {
    Status s = Send({"SELECT", std::to_string(server.db)}, &reply);
    if (!s.ok()) {
      Disconnect();
      const Status::Code code =
          s.code() == Status::Code::kFailedPrecondition ? Status::Code::kInvalidArgument : s.code();
      return Status(code, "selecting database " + std::to_string(server.db) + ": " + s.message());
    }
  }
  return Status::OK();
}

Status RedisBackend::Send(const std::vector<std::string>& args, Reply* reply) {
  std::vector<const char*> argv;
  std::vector<size_t> argvlen;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    argvlen.push_back(a.size());
  }
  errno = 0;
  void* raw = redisCommandArgv(ctx_, static_cast<int>(args.size()), argv.data(), argvlen.data());
  if (!raw) {
    Status s;
    if (ctx_->err == REDIS_ERR_PROTOCOL) {
      s = Status::ProtocolError(std::string("not a redis server? ") + ctx_->errstr);
    } else if (ctx_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      s = Status::Timeout("no reply within " + std::to_string(timeout_ms_) + " ms");
    } else {
      s = Status::Unavailable(std::string("connection lost: ") + ctx_->errstr);
    }
    Disconnect();
    return s;
  }
  Reply r(static_cast<redisReply*>(raw));
  if (r->type == REDIS_REPLY_ERROR) {
    const std::string message(r->str, r->len);
    // The connection stays usable; the caller decides whether another server helps.
    if (IsServerStateError(message)) return Status::Unavailable(message);
    if (StartsWith(message, "NOAUTH") || StartsWith(message, "WRONGPASS") ||
        StartsWith(message, "NOPERM")) {
      return Status::PermissionDenied(message);
    }
    return Status::FailedPrecondition(message);
  }
  *reply = std::move(r);
  return Status::OK();
}

Status RedisBackend::Run(const std::vector<std::string>& args, Reply* reply) {
  std::string errors;
  Status first_definitive;  // a server that answered but refused (auth, protocol)
  for (size_t index : rotation_.Order()) {
    const bool reused = ctx_ && connected_ == index;
    Status s = reused ? Status::OK() : Connect(index);
    if (s.ok()) s = Send(args, reply);
    // A connection opened earlier may have died with its server (a restart): one
    // fresh connection to the same server before moving on.
    if (reused && s.code() == Status::Code::kUnavailable && !ctx_) {
      s = Connect(index);
      if (s.ok()) s = Send(args, reply);
    }
    if (s.ok()) {
      rotation_.Answered(index);
      return s;
    }
    // An error reply about the request itself: every server would say the same.
    if (s.code() == Status::Code::kFailedPrecondition) {
      return Status::FailedPrecondition("redis " + servers_[index].Display() + ": " + s.message());
    }
    if (!errors.empty()) errors += "; ";
    errors += servers_[index].Display() + ": " + s.message();
    if (first_definitive.ok() &&
        (s.code() == Status::Code::kPermissionDenied ||
         s.code() == Status::Code::kInvalidArgument || s.code() == Status::Code::kProtocolError)) {
      first_definitive = s;
    }
    Disconnect();
  }
  const Status::Code code =
      first_definitive.ok() ? Status::Code::kUnavailable : first_definitive.code();
  return Status(code, "no redis server answered (" + errors + ")");
}

Status RedisBackend::Create(const std::string& key, const std::string& value) {
  Reply reply;
  TE_RETURN_IF_ERROR(Run({"SET", key, value, "NX", "PX", ttl_ms_}, &reply));
  if (reply->type == REDIS_REPLY_NIL) return Status::AlreadyExists("key exists");
  return Status::OK();
}

Status RedisBackend::Read(const std::string& key, KvEntry* entry) {
  Reply reply;
  TE_RETURN_IF_ERROR(Run({"GET", key}, &reply));
  if (reply->type == REDIS_REPLY_NIL) return Status::NotFound("no such key");
  if (reply->type != REDIS_REPLY_STRING) return Status::ProtocolError("GET returned a non-string");
  entry->value.assign(reply->str, reply->len);
  TE_RETURN_IF_ERROR(Run({"PTTL", key}, &reply));
  // -1: no TTL; -2: gone since the GET (it expires "now").
  entry->expires_in_ms = reply->type != REDIS_REPLY_INTEGER ? -1
                         : reply->integer == -2             ? 0
                                                            : reply->integer;
  return Status::OK();
}

Status RedisBackend::Update(const std::string& key, const std::string& value,
                            const std::string& mine) {
  Reply reply;
  TE_RETURN_IF_ERROR(Run({"EVAL", kUpdateScript, "1", key, value, mine, ttl_ms_}, &reply));
  if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
    return Status::AlreadyExists("the entry now belongs to another engine");
  }
  return Status::OK();
}

Status RedisBackend::Overwrite(const std::string& key, const std::string& value) {
  Reply reply;
  return Run({"SET", key, value, "PX", ttl_ms_}, &reply);
}

Status RedisBackend::Remove(const std::string& key, const std::string& mine) {
  Reply reply;
  return Run({"EVAL", kRemoveScript, "1", key, mine}, &reply);
}

}  // namespace te
