#include "memory/buffer_registry.h"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "common/range.h"

namespace te {
namespace {

BufferRegistry::Table::const_iterator FindContaining(const BufferRegistry::Table& table, uint64_t addr) {
  auto it = std::upper_bound(
      table.begin(), table.end(), addr,
      [](uint64_t a, const std::shared_ptr<RegisteredBuffer>& b) { return a < b->info.base; });
  return it == table.begin() ? table.end() : it - 1;
}

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
    buffer_->pins.fetch_sub(1, std::memory_order_release);
    buffer_.reset();
  }
}

Status BufferRegistry::Add(const BufferInfo& info) {
  if (info.length == 0) return Status::InvalidArgument("cannot register 0 bytes");
  if (info.base == 0) return Status::InvalidArgument("cannot register a null address");
  if (info.base + info.length < info.base) {
    return Status::InvalidArgument("buffer range wraps around the address space");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto next = std::make_shared<Table>(*table_);
  auto pos = std::upper_bound(
      next->begin(), next->end(), info.base,
      [](uint64_t a, const std::shared_ptr<RegisteredBuffer>& b) { return a < b->info.base; });
  bool overlaps_prev = pos != next->begin() &&
                       (*(pos - 1))->info.base + (*(pos - 1))->info.length > info.base;
  bool overlaps_next = pos != next->end() && info.base + info.length > (*pos)->info.base;
  if (overlaps_prev || overlaps_next) {
    return Status::AlreadyExists("region " + Hex(info.base) + "+" + std::to_string(info.length) +
                                 " overlaps a registered buffer");
  }
  auto buffer = std::make_shared<RegisteredBuffer>();
  buffer->info = info;
  next->insert(pos, std::move(buffer));
  table_ = std::move(next);
  version_.fetch_add(1, std::memory_order_release);
  return Status::OK();
}

Status BufferRegistry::Remove(uint64_t base) {
  std::shared_ptr<RegisteredBuffer> victim;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto next = std::make_shared<Table>(*table_);
    auto it = std::find_if(next->begin(), next->end(),
                           [&](const auto& b) { return b->info.base == base; });
    if (it == next->end()) {
      return Status::NotFound("no buffer registered at " + Hex(base));
    }
    victim = *it;
    next->erase(it);
    table_ = std::move(next);
    victim->alive.store(false, std::memory_order_seq_cst);
    version_.fetch_add(1, std::memory_order_release);
  }
  // Copies in progress are bounded by the transfer timeout, so this wait ends.
  while (victim->pins.load(std::memory_order_acquire) > 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return Status::OK();
}

std::vector<BufferInfo> BufferRegistry::RemoteVisible() const {
  std::vector<BufferInfo> out;
  for (const auto& b : *Snapshot()) {
    if (b->info.permission != Permission::kLocalOnly) out.push_back(b->info);
  }
  return out;
}

std::shared_ptr<const BufferRegistry::Table> BufferRegistry::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return table_;
}

Status BufferRegistry::PinRange(const Table& table, uint64_t addr, uint64_t len, Access access,
                                BufferPin* pin) {
  auto it = FindContaining(table, addr);
  if (it == table.end() || !RangeInside(addr, len, (*it)->info.base, (*it)->info.length) ||
      (access != Access::kLocal && (*it)->info.permission == Permission::kLocalOnly)) {
    return Status::OutOfRange("range " + Hex(addr) + "+" + std::to_string(len) +
                              " is not inside a registered buffer");
  }
  const std::shared_ptr<RegisteredBuffer>& buffer = *it;
  if (access == Access::kRemoteWrite && buffer->info.permission != Permission::kRemoteReadWrite) {
    return Status::PermissionDenied("buffer at " + Hex(buffer->info.base) +
                                    " is read-only for peers");
  }
  buffer->pins.fetch_add(1, std::memory_order_seq_cst);
  if (!buffer->alive.load(std::memory_order_seq_cst)) {
    buffer->pins.fetch_sub(1, std::memory_order_release);
    return Status::OutOfRange("buffer at " + Hex(buffer->info.base) + " was unregistered");
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
