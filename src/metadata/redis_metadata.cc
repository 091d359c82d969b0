#include "metadata/redis_metadata.h"

#include <hiredis/hiredis.h>

#include <cerrno>

#include "common/strings.h"
#include "metadata/text_codec.h"

namespace te {
namespace {

// Scripts run atomically on the server. KEYS[1] is the header, KEYS[2] the hash of
// buffer entries; ARGV[1] is the header this client wrote last. They return -1 when
// the header is gone, 0 when it is another engine's.

// ARGV[2] ttl, ARGV[3] the new header (empty: keep), ARGV[4] "1" to replace every
// buffer entry, ARGV[5] the number of entries to put, then id/entry pairs, then ids to
// delete.
constexpr char kUpdateScript[] = R"lua(
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
if cur ~= ARGV[1] then return 0 end
if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HDEL', KEYS[2], ARGV[i])
  i = i + 1
end
if ARGV[3] ~= '' then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
)lua";

// ARGV[2] ttl.
constexpr char kKeepAliveScript[] = R"lua(
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
if cur ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
)lua";

constexpr char kRemoveScript[] = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1], KEYS[2]) end
return 0
)lua";

// The answer of kUpdateScript or kKeepAliveScript as a Status.
Status ScriptResult(const redisReply* reply) {
  if (reply->type != REDIS_REPLY_INTEGER)
    return Status::ProtocolError("script returned no integer");
  if (reply->integer == -1) return Status::NotFound("the entry is gone");
  if (reply->integer == 0) return Status::AlreadyExists("the entry now belongs to another engine");
  return Status::OK();
}

// Payload bytes of a reply (strings and their nesting), for the traffic counters.
uint64_t ReplyBytes(const redisReply* reply) {
  uint64_t bytes = reply->type == REDIS_REPLY_STRING ? reply->len : 8;
  if (reply->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < reply->elements; ++i) bytes += ReplyBytes(reply->element[i]);
  }
  return bytes;
}

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
  uint64_t sent = 0;
  for (size_t n : argvlen) sent += n;
  Count(sent, ReplyBytes(r.get()));
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

Status RedisBackend::Read(const std::string& key, bool with_expiry, KvEntry* entry) {
  Reply reply;
  TE_RETURN_IF_ERROR(Run({"GET", key}, &reply));
  if (reply->type == REDIS_REPLY_NIL) return Status::NotFound("no such key");
  if (reply->type != REDIS_REPLY_STRING) return Status::ProtocolError("GET returned a non-string");
  entry->value.assign(reply->str, reply->len);
  entry->expires_in_ms = -1;
  if (!with_expiry) return Status::OK();
  TE_RETURN_IF_ERROR(Run({"PTTL", key}, &reply));
  // -1: no TTL; -2: gone since the GET (it expires "now").
  entry->expires_in_ms = reply->type != REDIS_REPLY_INTEGER ? -1
                         : reply->integer == -2             ? 0
                                                            : reply->integer;
  return Status::OK();
}

Status RedisBackend::Update(const SegmentKeys& keys, const KvWrite& write,
                            const std::string& mine) {
  std::vector<std::string> args = {"EVAL",
                                   kUpdateScript,
                                   "2",
                                   keys.header,
                                   keys.buffers,
                                   mine,
                                   ttl_ms_,
                                   write.header,
                                   write.replace ? "1" : "0",
                                   std::to_string(write.put.size())};
  args.reserve(args.size() + 2 * write.put.size() + write.erase.size());
  for (const auto& [id, entry] : write.put) {
    args.push_back(id);
    args.push_back(entry);
  }
  args.insert(args.end(), write.erase.begin(), write.erase.end());
  Reply reply;
  TE_RETURN_IF_ERROR(Run(args, &reply));
  return ScriptResult(reply.get());
}

Status RedisBackend::KeepAlive(const SegmentKeys& keys, const std::string& mine) {
  Reply reply;
  TE_RETURN_IF_ERROR(
      Run({"EVAL", kKeepAliveScript, "2", keys.header, keys.buffers, mine, ttl_ms_}, &reply));
  return ScriptResult(reply.get());
}

Status RedisBackend::Overwrite(const std::string& key, const std::string& value) {
  Reply reply;
  return Run({"SET", key, value, "PX", ttl_ms_}, &reply);
}

Status RedisBackend::Remove(const SegmentKeys& keys, const std::string& mine) {
  Reply reply;
  return Run({"EVAL", kRemoveScript, "2", keys.header, keys.buffers, mine}, &reply);
}

Status RedisBackend::ReadBuffers(const SegmentKeys& keys, std::vector<std::string>* values) {
  Reply reply;
  TE_RETURN_IF_ERROR(Run({"HGETALL", keys.buffers}, &reply));
  if (reply->type != REDIS_REPLY_ARRAY) return Status::ProtocolError("HGETALL returned no array");
  values->clear();
  values->reserve(reply->elements / 2);
  for (size_t i = 1; i < reply->elements; i += 2) {
    const redisReply* value = reply->element[i];
    if (value->type != REDIS_REPLY_STRING) return Status::ProtocolError("HGETALL: not a string");
    values->emplace_back(value->str, value->len);
  }
  return Status::OK();
}

Status RedisBackend::ReadSomeBuffers(const SegmentKeys& keys, const std::vector<std::string>& ids,
                                     std::vector<std::optional<std::string>>* values) {
  values->assign(ids.size(), std::nullopt);
  if (ids.empty()) return Status::OK();
  std::vector<std::string> args = {"HMGET", keys.buffers};
  args.insert(args.end(), ids.begin(), ids.end());
  Reply reply;
  TE_RETURN_IF_ERROR(Run(args, &reply));
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != ids.size()) {
    return Status::ProtocolError("HMGET returned no array of the ids' length");
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    const redisReply* value = reply->element[i];
    if (value->type == REDIS_REPLY_STRING) (*values)[i].emplace(value->str, value->len);
  }
  return Status::OK();
}

}  // namespace te
