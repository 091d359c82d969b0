#include "memory/buffer_registry.h"

#include <algorithm>
#include <cstdio>
#include <new>
#include <thread>

#include "common/range.h"

namespace te {
namespace {

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

BufferPin& BufferPin::operator=(BufferPin&& o) noexcept {
  if (this != &o) {
    Release();
    buffer_ = std::move(o.buffer_);
  }
  return *this;
}

void BufferPin::Release() {
  if (buffer_) {
    buffer_->pins->Unpin(buffer_->info.pin_slot);
    buffer_.reset();
  }
}

BufferRegistry::BufferRegistry(uint32_t capacity) {
  PinTable* t = nullptr;
  Status s = PinTable::Create("", capacity, &t);
  if (!s.ok()) throw std::bad_alloc();  // an anonymous mapping of the table failed
  pins_.reset(t);
}

BufferRegistry::~BufferRegistry() = default;

Status BufferRegistry::SetCapacity(uint32_t capacity) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!table_->empty()) return Status::FailedPrecondition("buffers are already registered");
  PinTable* t = nullptr;
  TE_RETURN_IF_ERROR(PinTable::Create("", capacity, &t));
  pins_.reset(t);
  return Status::OK();
}

Status BufferRegistry::SharePinTable(const std::string& shm_name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!table_->empty()) return Status::FailedPrecondition("buffers are already registered");
  PinTable* t = nullptr;
  TE_RETURN_IF_ERROR(PinTable::Create(shm_name, pins_->slot_count(), &t));
  pins_.reset(t);
  return Status::OK();
}

Status BufferRegistry::Prepare(const Table& table, const SegmentBuffer& info,
                               std::shared_ptr<RegisteredBuffer>* entry) {
  if (info.length == 0) return Status::InvalidArgument("cannot register 0 bytes");
  if (info.base == 0) return Status::InvalidArgument("cannot register a null address");
  if (info.base + info.length < info.base) {
    return Status::InvalidArgument("buffer range wraps around the address space");
  }
  if (table.Overlaps(info.base, info.length)) {
    return Status::AlreadyExists("region " + Hex(info.base) + "+" + std::to_string(info.length) +
                                 " overlaps a registered buffer");
  }
  auto buffer = std::make_shared<RegisteredBuffer>();
  buffer->info = info;
  buffer->pins = pins_.get();
  TE_RETURN_IF_ERROR(
      pins_->Acquire(info.base, info.length, &buffer->info.pin_slot, &buffer->info.pin_generation));
  *entry = std::move(buffer);
  return Status::OK();
}

Status BufferRegistry::Add(const SegmentBuffer& info) { return AddBatch({info}); }

Status BufferRegistry::AddBatch(const std::vector<SegmentBuffer>& infos) {
  std::lock_guard<std::mutex> lock(mu_);
  Table next = *table_;
  std::vector<uint32_t> claimed;  // pin slots to give back if one of infos fails
  for (const SegmentBuffer& info : infos) {
    std::shared_ptr<RegisteredBuffer> entry;
    Status s = Prepare(next, info, &entry);
    if (!s.ok()) {
      for (uint32_t slot : claimed) pins_->Retire(slot, 0);  // unpublished: no pins to wait for
      return s;
    }
    claimed.push_back(entry->info.pin_slot);
    next = next.Insert(std::move(entry));
  }
  table_ = std::make_shared<const Table>(std::move(next));
  version_.fetch_add(1, std::memory_order_release);
  return Status::OK();
}

Status BufferRegistry::Remove(uint64_t base, uint32_t drain_timeout_ms) {
  std::shared_ptr<RegisteredBuffer> victim;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Table::Entry* found = table_->Find(base);
    if (!found) return Status::NotFound("no buffer registered at " + Hex(base));
    victim = *found;
    table_ = std::make_shared<const Table>(table_->Erase(base));
    version_.fetch_add(1, std::memory_order_release);
  }
  if (!pins_->Retire(victim->info.pin_slot, drain_timeout_ms)) {
    return Status::Timeout("buffer at " + Hex(base) + " is still pinned by a peer after " +
                           std::to_string(drain_timeout_ms) + " ms; unregistered anyway");
  }
  return Status::OK();
}

std::vector<SegmentBuffer> BufferRegistry::RemoteVisible() const {
  std::vector<SegmentBuffer> out;
  // Hold the snapshot: a range-for over *Snapshot() would destroy it before the loop.
  const std::shared_ptr<const Table> table = Snapshot();
  out.reserve(table->size());
  table->ForEach([&](const Table::Entry& b) {
    if (b->info.permission != Permission::kLocalOnly) out.push_back(b->info);
  });
  return out;
}

std::shared_ptr<const BufferRegistry::Table> BufferRegistry::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return table_;
}

Status BufferRegistry::CheckRange(const Table& table, uint64_t addr, uint64_t len, Access access,
                                  const std::shared_ptr<RegisteredBuffer>** buffer) {
  const Table::Entry* it = table.FindContaining(addr);
  if (!it || !RangeInside(addr, len, (*it)->info.base, (*it)->info.length) ||
      (access != Access::kLocal && (*it)->info.permission == Permission::kLocalOnly)) {
    return Status::OutOfRange("range " + Hex(addr) + "+" + std::to_string(len) +
                              " is not inside a registered buffer");
  }
  const SegmentBuffer& info = (*it)->info;
  if (access == Access::kRemoteWrite && info.permission != Permission::kRemoteReadWrite) {
    return Status::PermissionDenied("buffer at " + Hex(info.base) + " is read-only for peers");
  }
  if (buffer) *buffer = it;
  return Status::OK();
}

Status BufferRegistry::PinRange(const Table& table, uint64_t addr, uint64_t len, Access access,
                                BufferPin* pin) {
  const std::shared_ptr<RegisteredBuffer>* found = nullptr;
  TE_RETURN_IF_ERROR(CheckRange(table, addr, len, access, &found));
  const std::shared_ptr<RegisteredBuffer>& buffer = *found;
  const SegmentBuffer& info = buffer->info;
  if (!buffer->pins->Pin(info.pin_slot, info.pin_generation, info.base, info.length)) {
    return Status::OutOfRange("buffer at " + Hex(info.base) + " was unregistered");
  }
  pin->Release();
  pin->buffer_ = buffer;
  return Status::OK();
}

Status BufferRegistry::Reader::Pin(uint64_t addr, uint64_t len, Access access, BufferPin* pin) {
  uint64_t current = registry_->version();
  if (current != version_) {
    table_ = registry_->Snapshot();
    version_ = current;
  }
  return PinRange(*table_, addr, len, access, pin);
}

}  // namespace te
