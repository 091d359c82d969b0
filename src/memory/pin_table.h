// PinTable: one slot per registered buffer, holding its range, a generation and a pin
// count. The table can live in POSIX shared memory, so that same-host peers copying
// straight into our buffers (shm, CMA) pin them exactly like our own serving threads
// do, and unregistering a buffer waits for their copies too.
//
// Pin protocol (both sides): pins += 1; then the slot must be alive with the expected
// generation and range, else pins -= 1 and fail. Unregister: alive = 0, then wait for
// pins to drain (bounded: a dead peer's pin must not block us forever).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "te/status.h"

namespace te {

struct PinSlot {
  std::atomic<uint64_t> generation;
  std::atomic<uint64_t> base;
  std::atomic<uint64_t> length;
  std::atomic<uint32_t> alive;
  std::atomic<uint32_t> pins;
};
static_assert(std::atomic<uint64_t>::is_always_lock_free &&
                  std::atomic<uint32_t>::is_always_lock_free,
              "pin slots are shared between processes and must be address-free");

// Slots of a table, i.e. buffers registered at once: Config::max_registered_buffers.
inline constexpr uint32_t kDefaultPinTableSlots = 65536;
inline constexpr uint32_t kMaxPinTableSlots = 1u << 24;  // 512 MiB of slots

class PinTable {
 public:
  // slots slots in private memory when shm_name is empty, else in a new POSIX
  // shared-memory object (pages are only touched as slots are used).
  static Status Create(const std::string& shm_name, uint32_t slots, PinTable** out);
  // Maps another process's table (same host) for pinning from outside; its size
  // says how many slots it has.
  static Status Attach(const std::string& shm_name, PinTable** out);
  ~PinTable();
  PinTable(const PinTable&) = delete;
  PinTable& operator=(const PinTable&) = delete;

  const std::string& shm_name() const { return shm_name_; }
  uint32_t slot_count() const { return slot_count_; }

  // Owner side; thread-safe.
  Status Acquire(uint64_t base, uint64_t length, uint32_t* slot, uint64_t* generation);
  // Marks the slot dead and waits up to timeout_ms for pins to drain; false if they
  // did not (a peer died holding one; the slot is then reused only once they have).
  bool Retire(uint32_t slot, uint32_t timeout_ms);
  PinSlot* slot(uint32_t i) { return &slots_[i]; }

  // Either side: pins [addr, addr+len) in slot i if it is still the buffer described.
  bool Pin(uint32_t slot, uint64_t generation, uint64_t base, uint64_t length);
  PinSlot* slot_or_null(uint32_t i) { return i < slot_count_ ? &slots_[i] : nullptr; }
  void Unpin(uint32_t slot) { slots_[slot].pins.fetch_sub(1, std::memory_order_release); }

 private:
  PinTable() = default;
  PinSlot* slots_ = nullptr;
  size_t map_size_ = 0;
  uint32_t slot_count_ = 0;
  bool owner_ = false;
  std::string shm_name_;
  // Owner only: O(1) Acquire whatever the table's size.
  std::mutex free_mu_;
  std::vector<uint32_t> free_;   // retired slots whose pins drained
  std::vector<uint32_t> stuck_;  // retired with pins left; reused once they drain
  uint32_t next_fresh_ = 0;      // slots from here on were never used
  void RetireTimedOut(uint32_t slot);
  bool TakeDrainedStuckSlot(uint32_t* slot);  // under free_mu_
};

}  // namespace te
