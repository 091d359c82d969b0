// KvBackend: the few key-value operations a central metadata store (redis, etcd, an
// http metadata server) must offer. CentralMetadataClient builds publishing, name
// claiming, keep-alive and lookup on top of it, so each backend only maps these calls
// onto its protocol. A backend is used by one thread at a time (the client serializes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "te/status.h"

namespace te {

// An entry as read from the store.
struct KvEntry {
  std::string value;
  // Milliseconds until the store drops the entry by itself; -1 when it never does
  // (no TTL or lease, e.g. on an http server).
  int64_t expires_in_ms = -1;
};

class KvBackend {
 public:
  virtual ~KvBackend() = default;

  // For messages: "redis 127.0.0.1:6379,10.0.0.1:6379".
  virtual std::string Describe() const = 0;
  // Writes key=value only when key is absent; kAlreadyExists when it is present.
  // redis and etcd attach the TTL or lease.
  virtual Status Create(const std::string& key, const std::string& value) = 0;
  // kNotFound when absent.
  virtual Status Read(const std::string& key, KvEntry* entry) = 0;
  // Writes value when key is absent or still holds `mine` (what this client wrote
  // last); kAlreadyExists when another engine's value is there. Renews the TTL.
  virtual Status Update(const std::string& key, const std::string& value,
                        const std::string& mine) = 0;
  // Called every ttl/3 while the entry is published, with value == mine unless a
  // previous write failed. Keeps the entry alive and re-creates it when the store
  // lost it (server restart, failover to another server).
  virtual Status KeepAlive(const std::string& key, const std::string& value,
                           const std::string& mine) {
    return Update(key, value, mine);
  }
  // Unconditional write: taking over the entry of an engine that is gone.
  virtual Status Overwrite(const std::string& key, const std::string& value) = 0;
  // Deletes key when it still holds `mine`; OK when it is absent or not ours.
  virtual Status Remove(const std::string& key, const std::string& mine) = 0;
};

// The servers of one backend, in configured order. A client talks to one server at a
// time and moves to the next (wrapping around) when it fails, so one dead server
// costs at most one timeout per call and a list of replicas gives failover.
class ServerRotation {
 public:
  explicit ServerRotation(size_t count) : count_(count) {}
  // Indices to try for one call: the current server first, then the others in order.
  std::vector<size_t> Order() const {
    std::vector<size_t> order;
    for (size_t i = 0; i < count_; ++i) order.push_back((current_ + i) % count_);
    return order;
  }
  void Answered(size_t index) { current_ = index; }

 private:
  size_t count_;
  size_t current_ = 0;
};

}  // namespace te
