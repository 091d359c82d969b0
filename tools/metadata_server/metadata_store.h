// MetadataStore: the metadata server's thread-safe in-memory key-value map, with a
// bound on the bytes it holds so that no client can exhaust the server's memory.
// Ordered, so that a segment's buffer entries (keys under one prefix) can be listed.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

namespace te::metadata_server {

// Changes applied together (POST /metadata/batch), in this order: delete_prefix,
// erase, put; then get reads.
struct StoreBatch {
  // Apply only while `expect_key` holds `expect_value` (nullopt: is absent).
  std::optional<std::string> expect_key;
  std::optional<std::string> expect_value;
  std::optional<std::string> delete_prefix;
  std::vector<std::string> erase;
  std::vector<std::pair<std::string, std::string>> put;
  std::vector<std::string> get;
};

enum class BatchResult { kApplied, kConflict, kFull };

class MetadataStore {
 public:
  explicit MetadataStore(size_t max_total_bytes) : max_total_bytes_(max_total_bytes) {}

  bool Get(const std::string& key, std::string* value) const;
  // False (and nothing changes) when storing would exceed the byte bound.
  bool Put(const std::string& key, std::string value);
  // False when the key was absent.
  bool Delete(const std::string& key);
  // Up to `limit` entries with keys starting with prefix and above `after`, in key
  // order; *more when there are further ones.
  std::vector<std::pair<std::string, std::string>> List(const std::string& prefix,
                                                        const std::string& after, size_t limit,
                                                        bool* more) const;
  // All or nothing. kConflict: the expectation failed (*current: what the key holds);
  // kFull: the result would exceed the byte bound. *got: the values of `get` found.
  BatchResult Apply(const StoreBatch& batch, std::optional<std::string>* current,
                    std::map<std::string, std::string>* got);
  size_t size() const;
  size_t total_bytes() const;

 private:
  // Removes key (under the lock), remembering its old value in undo.
  void EraseLocked(std::map<std::string, std::string>::iterator it,
                   std::vector<std::pair<std::string, std::optional<std::string>>>* undo);

  const size_t max_total_bytes_;
  mutable std::shared_mutex mu_;
  std::map<std::string, std::string> map_;  // guarded by mu_
  size_t total_bytes_ = 0;                  // keys + values; guarded by mu_
};

}  // namespace te::metadata_server
