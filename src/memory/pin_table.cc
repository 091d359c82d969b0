#include "memory/pin_table.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "memory/memory.h"

namespace te {
Status PinTable::Create(const std::string& shm_name, uint32_t slots, PinTable** out) {
  if (slots == 0 || slots > kMaxPinTableSlots) {
    return Status::InvalidArgument("a pin table has 1 to " + std::to_string(kMaxPinTableSlots) +
                                   " slots, not " + std::to_string(slots));
  }
  const size_t kTableBytes = sizeof(PinSlot) * slots;
  void* mem;
  if (shm_name.empty()) {
    mem = ::mmap(nullptr, kTableBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  } else {
    int fd;
    TE_RETURN_IF_ERROR(CreateSharedMemory(shm_name, kTableBytes, &fd));
    mem = ::mmap(nullptr, kTableBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
  }
  if (mem == MAP_FAILED) {
    if (!shm_name.empty()) UnlinkSharedMemory(shm_name);
    return Status::ResourceExhausted("cannot map the pin table");
  }
  // Only a table that exists owns (and will unlink) its name.
  auto* t = new PinTable();
  t->owner_ = true;
  t->shm_name_ = shm_name;
  t->map_size_ = kTableBytes;
  t->slot_count_ = slots;
  // Fresh mappings are zero-filled: every slot starts free (alive == 0, no pins).
  t->slots_ = static_cast<PinSlot*>(mem);
  *out = t;
  return Status::OK();
}

Status PinTable::Attach(const std::string& shm_name, PinTable** out) {
  int fd = ::shm_open(shm_name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("shm_open " + shm_name, errno);
  struct stat st {};
  const size_t slots =
      ::fstat(fd, &st) == 0 ? static_cast<size_t>(st.st_size) / sizeof(PinSlot) : 0;
  if (slots == 0 || slots > kMaxPinTableSlots || st.st_size % sizeof(PinSlot) != 0) {
    ::close(fd);
    return Status::ProtocolError("pin table " + shm_name + " has the wrong size");
  }
  const size_t kTableBytes = slots * sizeof(PinSlot);
  void* mem = ::mmap(nullptr, kTableBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (mem == MAP_FAILED) return Status::FromErrno("mmap " + shm_name, errno);
  auto* t = new PinTable();
  t->slots_ = static_cast<PinSlot*>(mem);
  t->map_size_ = kTableBytes;
  t->slot_count_ = static_cast<uint32_t>(slots);
  t->shm_name_ = shm_name;
  *out = t;
  return Status::OK();
}

PinTable::~PinTable() {
  if (slots_) ::munmap(slots_, map_size_);
  if (owner_ && !shm_name_.empty()) UnlinkSharedMemory(shm_name_);
}

Status PinTable::Acquire(uint64_t base, uint64_t length, uint32_t* slot, uint64_t* generation) {
  uint32_t i;
  {
    std::lock_guard<std::mutex> lock(free_mu_);
    if (!free_.empty()) {
      i = free_.back();
      free_.pop_back();
    } else if (next_fresh_ < slot_count_) {
      i = next_fresh_++;
    } else if (!TakeDrainedStuckSlot(&i)) {
      return Status::ResourceExhausted(
          "more than " + std::to_string(slot_count_) +
          " registered buffers (raise max_registered_buffers / TE_MAX_REGISTERED_BUFFERS)");
    }
  }
  PinSlot& s = slots_[i];
  // A new generation first, so a peer holding the old one can never match.
  uint64_t gen = s.generation.load(std::memory_order_relaxed) + 1;
  s.generation.store(gen, std::memory_order_relaxed);
  s.base.store(base, std::memory_order_relaxed);
  s.length.store(length, std::memory_order_relaxed);
  s.alive.store(1, std::memory_order_release);
  *slot = i;
  *generation = gen;
  return Status::OK();
}

bool PinTable::Retire(uint32_t slot, uint32_t timeout_ms) {
  PinSlot& s = slots_[slot];
  s.alive.store(0, std::memory_order_seq_cst);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (s.pins.load(std::memory_order_acquire) != 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      RetireTimedOut(slot);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  std::lock_guard<std::mutex> lock(free_mu_);
  free_.push_back(slot);
  return true;
}

void PinTable::RetireTimedOut(uint32_t slot) {
  std::lock_guard<std::mutex> lock(free_mu_);
  stuck_.push_back(slot);
}

bool PinTable::TakeDrainedStuckSlot(uint32_t* slot) {
  for (size_t k = 0; k < stuck_.size(); ++k) {
    if (slots_[stuck_[k]].pins.load(std::memory_order_acquire) == 0) {
      *slot = stuck_[k];
      stuck_[k] = stuck_.back();
      stuck_.pop_back();
      return true;
    }
  }
  return false;
}

bool PinTable::Pin(uint32_t slot, uint64_t generation, uint64_t base, uint64_t length) {
  if (slot >= slot_count_) return false;
  PinSlot& s = slots_[slot];
  s.pins.fetch_add(1, std::memory_order_seq_cst);
  if (s.alive.load(std::memory_order_seq_cst) == 1 &&
      s.generation.load(std::memory_order_acquire) == generation &&
      s.base.load(std::memory_order_relaxed) == base &&
      s.length.load(std::memory_order_relaxed) == length) {
    return true;
  }
  s.pins.fetch_sub(1, std::memory_order_release);
  return false;
}

}  // namespace te
