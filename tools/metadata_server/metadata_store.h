// MetadataStore: the metadata server's thread-safe in-memory key-value map, with a
// bound on the bytes it holds so that no client can exhaust the server's memory.
#pragma once

#include <cstddef>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace te::metadata_server {

class MetadataStore {
 public:
  explicit MetadataStore(size_t max_total_bytes) : max_total_bytes_(max_total_bytes) {}

  bool Get(const std::string& key, std::string* value) const;
  // False (and nothing changes) when storing would exceed the byte bound.
  bool Put(const std::string& key, std::string value);
  // False when the key was absent.
  bool Delete(const std::string& key);
  size_t size() const;
  size_t total_bytes() const;

 private:
  const size_t max_total_bytes_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, std::string> map_;  // guarded by mu_
  size_t total_bytes_ = 0;                            // keys + values; guarded by mu_
};

}  // namespace te::metadata_server
