// KvBackend: the few store operations central metadata needs. CentralMetadataClient
// (central_metadata.h) implements publishing, name claiming, keep-alive and lookup on
// top of it, so each backend only maps these calls onto its protocol. A segment is a
// header entry plus one entry per buffer (segment_entries.h). A backend is used by
// one thread at a time (the client serializes).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "metadata/segment_entries.h"
#include "te/status.h"

namespace te {

// An entry as read from the store.
struct KvEntry {
  std::string value;
  // Milliseconds until the store drops the entry by itself; -1 when it never does
  // (no TTL or lease, e.g. on an http server) or when not asked.
  int64_t expires_in_ms = -1;
};

// A change of a segment's entries. The buffer entries change first and the header
// last, so a peer that reads a header finds at least its buffers (docs/metadata.md,
// "Keys and values", for what a peer sees while a split write is under way).
struct KvWrite {
  std::string header;                                    // the new header; empty: keep it
  std::vector<std::pair<std::string, std::string>> put;  // buffer id, entry
  std::vector<std::string> erase;                        // buffer ids
  bool replace = false;  // first delete every buffer entry (a claim, a re-creation)
  size_t Bytes() const;
};

// Splits a write for stores that bound a request: parts of at most max_ops entries
// and about max_bytes, in this order: the replace (first part only), the erases, the
// puts, the header (last part only).
std::vector<KvWrite> SplitWrite(const KvWrite& write, size_t max_ops, size_t max_bytes);

// What a backend has sent and received (requests, payload bytes), for tests and
// benchmarks: per-registration traffic must not grow with the number of buffers.
struct KvTraffic {
  uint64_t requests = 0, bytes_sent = 0, bytes_received = 0;
};

class KvBackend {
 public:
  virtual ~KvBackend() = default;

  // For messages: "redis 127.0.0.1:6379,10.0.0.1:6379".
  virtual std::string Describe() const = 0;

  // Header entries (key = SegmentKeys::header).
  // Writes key=value only when key is absent; kAlreadyExists when it is present.
  // redis and etcd attach the TTL or lease.
  virtual Status Create(const std::string& key, const std::string& value) = 0;
  // kNotFound when absent. with_expiry: also ask when the store drops the entry
  // (one more request with redis and etcd; only claims need it), else
  // expires_in_ms is -1.
  virtual Status Read(const std::string& key, bool with_expiry, KvEntry* entry) = 0;
  // Unconditional write: taking over the entry of an engine that is gone.
  virtual Status Overwrite(const std::string& key, const std::string& value) = 0;

  // A segment's entries, while its header holds `mine` (what this client wrote
  // last): kNotFound when there is no header (the store lost it), kAlreadyExists
  // when another engine's header is there. Both renew the TTL of every entry.
  virtual Status Update(const SegmentKeys& keys, const KvWrite& write, const std::string& mine) = 0;
  // Called every ttl/3 while the segment is published.
  virtual Status KeepAlive(const SegmentKeys& keys, const std::string& mine) = 0;
  // Deletes the header and every buffer entry while the header holds `mine`; OK when
  // it is absent or not ours.
  virtual Status Remove(const SegmentKeys& keys, const std::string& mine) = 0;
  // Every buffer entry's value, in any order.
  virtual Status ReadBuffers(const SegmentKeys& keys, std::vector<std::string>* values) = 0;
  // (*values)[i]: the entry of ids[i], nullopt when there is none.
  virtual Status ReadSomeBuffers(const SegmentKeys& keys, const std::vector<std::string>& ids,
                                 std::vector<std::optional<std::string>>* values) = 0;

  KvTraffic Traffic() const {
    return {requests_.load(std::memory_order_relaxed), sent_.load(std::memory_order_relaxed),
            received_.load(std::memory_order_relaxed)};
  }

 protected:
  void Count(uint64_t sent, uint64_t received) {
    requests_.fetch_add(1, std::memory_order_relaxed);
    sent_.fetch_add(sent, std::memory_order_relaxed);
    received_.fetch_add(received, std::memory_order_relaxed);
  }

 private:
  std::atomic<uint64_t> requests_{0}, sent_{0}, received_{0};
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
