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
  StoreBatch batch;
  batch.put.emplace_back(key, std::move(value));
  std::optional<std::string> current;
  return Apply(batch, &current, nullptr) == BatchResult::kApplied;
}

bool MetadataStore::Delete(const std::string& key) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return false;
  total_bytes_ -= key.size() + it->second.size();
  map_.erase(it);
  return true;
}

std::vector<std::pair<std::string, std::string>> MetadataStore::List(const std::string& prefix,
                                                                     const std::string& after,
                                                                     size_t limit,
                                                                     bool* more) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  auto it = after.empty() ? map_.lower_bound(prefix) : map_.upper_bound(after);
  if (it != map_.end() && it->first < prefix) it = map_.lower_bound(prefix);
  *more = false;
  for (; it != map_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (out.size() == limit) {
      *more = true;
      break;
    }
    out.emplace_back(it->first, it->second);
  }
  return out;
}

void MetadataStore::EraseLocked(
    std::map<std::string, std::string>::iterator it,
    std::vector<std::pair<std::string, std::optional<std::string>>>* undo) {
  total_bytes_ -= it->first.size() + it->second.size();
  undo->emplace_back(it->first, std::move(it->second));
  map_.erase(it);
}

BatchResult MetadataStore::Apply(const StoreBatch& batch, std::optional<std::string>* current,
                                 std::map<std::string, std::string>* got) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (batch.expect_key) {
    auto it = map_.find(*batch.expect_key);
    std::optional<std::string> held;
    if (it != map_.end()) held = it->second;
    if (held != batch.expect_value) {
      *current = std::move(held);
      return BatchResult::kConflict;
    }
  }
  // Old values of what changed, first change first, to roll back beyond the bound.
  std::vector<std::pair<std::string, std::optional<std::string>>> undo;
  if (batch.delete_prefix) {
    const std::string& prefix = *batch.delete_prefix;
    auto it = map_.lower_bound(prefix);
    while (it != map_.end() && it->first.compare(0, prefix.size(), prefix) == 0) {
      EraseLocked(it++, &undo);
    }
  }
  for (const std::string& key : batch.erase) {
    auto it = map_.find(key);
    if (it != map_.end()) EraseLocked(it, &undo);
  }
  for (const auto& [key, value] : batch.put) {
    auto it = map_.find(key);
    if (it != map_.end()) EraseLocked(it, &undo);
    undo.emplace_back(key, std::nullopt);
    map_.emplace(key, value);
    total_bytes_ += key.size() + value.size();
  }
  if (total_bytes_ > max_total_bytes_) {
    for (auto u = undo.rbegin(); u != undo.rend(); ++u) {
      auto it = map_.find(u->first);
      if (it != map_.end()) {
        total_bytes_ -= it->first.size() + it->second.size();
        map_.erase(it);
      }
      if (u->second) {
        total_bytes_ += u->first.size() + u->second->size();
        map_.emplace(u->first, std::move(*u->second));
      }
    }
    return BatchResult::kFull;
  }
  if (got) {
    for (const std::string& key : batch.get) {
      auto it = map_.find(key);
      if (it != map_.end()) (*got)[key] = it->second;
    }
  }
  return BatchResult::kApplied;
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
