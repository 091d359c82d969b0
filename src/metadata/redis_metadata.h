// redis backend (hiredis). The header is a string key, the buffer entries one hash,
// both with a TTL (PX / PEXPIRE); conditional writes and deletes run as small Lua
// scripts so that they are atomic, and a write of many buffers is one script call.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "metadata/kv_backend.h"

struct redisContext;
struct redisReply;

namespace te {

struct RedisServer {
  std::string host;
  uint16_t port = 6379;
  std::string user;      // empty: the default user
  std::string password;  // empty: no AUTH
  uint32_t db = 0;
  // "host:port[/db]", never the password.
  std::string Display() const;
};

// Accepts "host", "host:port", "[v6]:port" and
// "redis://[[user]:password@]host[:port][/db]" (user and password percent-decoded).
Status ParseRedisServer(const std::string& text, RedisServer* out);

class RedisBackend : public KvBackend {
 public:
  // timeout_ms bounds the connect and each reply; ttl_ms is the entries' TTL.
  RedisBackend(std::vector<RedisServer> servers, uint32_t timeout_ms, uint32_t ttl_ms);
  ~RedisBackend() override;

  std::string Describe() const override;
  Status Create(const std::string& key, const std::string& value) override;
  Status Read(const std::string& key, bool with_expiry, KvEntry* entry) override;
  Status Overwrite(const std::string& key, const std::string& value) override;
  Status Update(const SegmentKeys& keys, const KvWrite& write, const std::string& mine) override;
  Status KeepAlive(const SegmentKeys& keys, const std::string& mine) override;
  Status Remove(const SegmentKeys& keys, const std::string& mine) override;
  Status ReadBuffers(const SegmentKeys& keys, std::vector<std::string>* values) override;
  Status ReadSomeBuffers(const SegmentKeys& keys, const std::vector<std::string>& ids,
                         std::vector<std::optional<std::string>>* values) override;

 private:
  struct ReplyDeleter {
    void operator()(void* reply) const;
  };
  using Reply = std::unique_ptr<::redisReply, ReplyDeleter>;

  // Runs one command, connecting or failing over as needed. An error reply is
  // returned as a Status, never as *reply.
  Status Run(const std::vector<std::string>& args, Reply* reply);
  // Sends on the open connection; kUnavailable when the connection broke.
  Status Send(const std::vector<std::string>& args, Reply* reply);
  Status Connect(size_t index);
  void Disconnect();

  const std::vector<RedisServer> servers_;
  const uint32_t timeout_ms_;
  const std::string ttl_ms_;  // as the PX argument
  ServerRotation rotation_;
  redisContext* ctx_ = nullptr;  // connected to servers_[connected_]
  size_t connected_ = 0;
};

}  // namespace te
