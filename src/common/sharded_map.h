// A map split into independently locked shards, so threads working on different
// keys (batches, segments) do not contend on one engine-wide lock.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace te {

template <typename V, size_t kShards = 32>
class ShardedMap {
 public:
  void Insert(uint64_t key, std::shared_ptr<V> value) {
    Shard& s = shard(key);
    std::lock_guard<std::mutex> lock(s.mu);
    s.map[key] = std::move(value);
  }
  std::shared_ptr<V> Find(uint64_t key) const {
    const Shard& s = shard(key);
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(key);
    return it == s.map.end() ? nullptr : it->second;
  }
  // Removes and returns the value, or nullptr.
  std::shared_ptr<V> Take(uint64_t key) {
    Shard& s = shard(key);
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(key);
    if (it == s.map.end()) return nullptr;
    auto value = std::move(it->second);
    s.map.erase(it);
    return value;
  }
  // Calls fn(key, value) for every entry, one shard locked at a time.
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (const Shard& s : shards_) {
      std::lock_guard<std::mutex> lock(s.mu);
      for (const auto& [k, v] : s.map) fn(k, v);
    }
  }
  void Clear() {
    for (Shard& s : shards_) {
      std::unordered_map<uint64_t, std::shared_ptr<V>> doomed;
      {
        std::lock_guard<std::mutex> lock(s.mu);
        doomed.swap(s.map);
      }
    }
  }

 private:
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, std::shared_ptr<V>> map;
  };
  Shard& shard(uint64_t key) { return shards_[key % kShards]; }
  const Shard& shard(uint64_t key) const { return shards_[key % kShards]; }
  std::array<Shard, kShards> shards_;
};

}  // namespace te
