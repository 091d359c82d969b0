#include "metadata_store.h"

#include <mutex>

namespace te::metadata_server {

bool MetadataStore::Get(const std::string& key, std::string* value) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return false;
  *value = it->second;
  return true;
}

bool MetadataStore::Put(const std::string& key, std::string value) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  auto it = map_.find(key);
  const size_t old_bytes = it == map_.end() ? 0 : key.size() + it->second.size();
  const size_t new_bytes = key.size() + value.size();
  if (total_bytes_ - old_bytes + new_bytes > max_total_bytes_) return false;
  total_bytes_ = total_bytes_ - old_bytes + new_bytes;
  if (it == map_.end()) {
    map_.emplace(key, std::move(value));
  } else {
    it->second = std::move(value);
  }
  return true;
}

bool MetadataStore::Delete(const std::string& key) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return false;
  total_bytes_ -= key.size() + it->second.size();
  map_.erase(it);
  return true;
}

size_t MetadataStore::size() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return map_.size();
}

size_t MetadataStore::total_bytes() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return total_bytes_;
}

}  // namespace te::metadata_server
