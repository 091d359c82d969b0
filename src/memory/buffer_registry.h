// BufferRegistry: the local segment's registered buffers. Registration takes a mutex
// and costs O(log n) (BufferTable shares all but a search path with the previous
// table); the data path checks ranges through a Reader that caches an immutable
// snapshot and only reloads it when the registry's version changes, so per-request
// checks take no lock. Pins keep a buffer from being unregistered mid-copy.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "memory/buffer_table.h"
#include "memory/pin_table.h"
#include "metadata/segment_descriptor.h"
#include "te/status.h"
#include "te/types.h"

namespace te {

enum class Access : uint8_t { kLocal, kRemoteRead, kRemoteWrite };

// Holds a buffer pinned while a copy touches it.
class BufferPin {
 public:
  BufferPin() = default;
  ~BufferPin() { Release(); }
  BufferPin(BufferPin&& o) noexcept : buffer_(std::move(o.buffer_)) {}
  BufferPin& operator=(BufferPin&& o) noexcept;
  void Release();
  const SegmentBuffer* info() const { return buffer_ ? &buffer_->info : nullptr; }

 private:
  friend class BufferRegistry;
  std::shared_ptr<RegisteredBuffer> buffer_;
};

class BufferRegistry {
 public:
  using Table = BufferTable;

  // At most capacity buffers at once (one pin slot each), in a private pin table.
  explicit BufferRegistry(uint32_t capacity = kDefaultPinTableSlots);
  ~BufferRegistry();
  // A fresh private pin table of capacity slots. Only before the first Add.
  Status SetCapacity(uint32_t capacity);
  // Moves pins to a POSIX shared-memory table so same-host peers can pin our buffers.
  // Only before the first Add.
  Status SharePinTable(const std::string& shm_name);
  const std::string& pin_table_name() const { return pins_->shm_name(); }
  uint32_t capacity() const { return pins_->slot_count(); }

  Status Add(const SegmentBuffer& info);
  // All of infos or none, published to readers at once (one version step).
  Status AddBatch(const std::vector<SegmentBuffer>& infos);
  // Marks the buffer dead, then waits until no pin holds it, for at most
  // drain_timeout_ms (a peer that died holding a pin cannot block us longer).
  Status Remove(uint64_t base, uint32_t drain_timeout_ms = 30000);
  // Buffers visible to peers (not kLocalOnly), sorted by base.
  std::vector<SegmentBuffer> RemoteVisible() const;
  std::shared_ptr<const Table> Snapshot() const;
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

  // Checks [addr, addr+len) against table and access without pinning: for callers
  // that only validate. *buffer (if given) receives the containing entry.
  static Status CheckRange(const Table& table, uint64_t addr, uint64_t len, Access access,
                           const std::shared_ptr<RegisteredBuffer>** buffer = nullptr);
  // CheckRange, then pins the buffer so it cannot be unregistered while in use.
  static Status PinRange(const Table& table, uint64_t addr, uint64_t len, Access access,
                         BufferPin* pin);

  // One per thread on the data path.
  class Reader {
   public:
    explicit Reader(const BufferRegistry* registry) : registry_(registry) {}
    Status Pin(uint64_t addr, uint64_t len, Access access, BufferPin* pin);

   private:
    const BufferRegistry* registry_;
    std::shared_ptr<const Table> table_;
    uint64_t version_ = ~0ull;
  };

 private:
  mutable std::mutex mu_;
  std::unique_ptr<PinTable> pins_;
  std::shared_ptr<const Table> table_ = std::make_shared<Table>();  // guarded by mu_

  // Checks info against table and claims its pin slot; the entry to insert.
  Status Prepare(const Table& table, const SegmentBuffer& info,
                 std::shared_ptr<RegisteredBuffer>* entry);
  std::atomic<uint64_t> version_{0};
};

}  // namespace te
