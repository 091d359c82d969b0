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
#include <string>

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

inline constexpr uint32_t kPinTableSlots = 4096;

class PinTable {
 public:
  // Private memory when shm_name is empty, else a new POSIX shared-memory object.
  static Status Create(const std::string& shm_name, PinTable** out);
  // Maps another process's table (same host) for pinning from outside.
  static Status Attach(const std::string& shm_name, PinTable** out);
  ~PinTable();
  PinTable(const PinTable&) = delete;
  PinTable& operator=(const PinTable&) = delete;

  const std::string& shm_name() const { return shm_name_; }

  // Owner side.
  Status Acquire(uint64_t base, uint64_t length, uint32_t* slot, uint64_t* generation);
  // Marks the slot dead and waits up to timeout_ms for pins to drain; false if they
  // did not (a peer died holding one).
  bool Retire(uint32_t slot, uint32_t timeout_ms);
  PinSlot* slot(uint32_t i) { return &slots_[i]; }

  // Either side: pins [addr, addr+len) in slot i if it is still the buffer described.
  bool Pin(uint32_t slot, uint64_t generation, uint64_t base, uint64_t length);
  void Unpin(uint32_t slot) { slots_[slot].pins.fetch_sub(1, std::memory_order_release); }

 private:
  PinTable() = default;
  PinSlot* slots_ = nullptr;
  size_t map_size_ = 0;
  bool owner_ = false;
  std::string shm_name_;
  uint32_t next_hint_ = 0;  // owner only; callers serialize Acquire
};

}  // namespace te
