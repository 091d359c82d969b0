#include "transport/same_host.h"

#include <signal.h>

#include <cerrno>

namespace te {

Status SameHostTransport::Start(const TransportContext&, SegmentDescriptor* local) {
  machine_id_ = local->machine_id;
  pool_ = std::make_unique<CopyPool>(2);
  local->transports[name()] = "";
  return Status::OK();
}

bool SameHostTransport::CanReach(const SegmentDescriptor& peer) const {
  return peer.machine_id == machine_id_ && peer.transports.count(name()) > 0;
}

Status SameHostTransport::AttachPeer(const SegmentDescriptor& peer,
                                     std::unique_ptr<PinTable>* pins) const {
  if (!CanReach(peer))
    return Status::Unavailable("segment '" + peer.name + "' is not on this host");
  return SameHostPeer::AttachPins(peer, pins);
}

bool ProcessAlive(uint32_t pid) {
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

Status SameHostPeer::AttachPins(const SegmentDescriptor& desc, std::unique_ptr<PinTable>* out) {
  if (desc.pin_table.empty()) return Status::Unavailable("peer shares no pin table");
  PinTable* raw = nullptr;
  TE_RETURN_IF_ERROR(PinTable::Attach(desc.pin_table, &raw));
  std::unique_ptr<PinTable> table(raw);
  for (const SegmentBuffer& b : desc.buffers) {
    PinSlot* s = table->slot_or_null(b.pin_slot);
    if (!s || s->base.load() != b.base || s->length.load() != b.length ||
        s->generation.load() != b.pin_generation) {
      return Status::Unavailable("pin table " + desc.pin_table + " does not match the descriptor");
    }
  }
  *out = std::move(table);
  return Status::OK();
}

void SameHostPeer::Submit(Slice* const* slices, size_t count) {
  // One liveness check per submission: a vanished peer fails fast instead of
  // silently copying into memory nobody owns any more.
  Status gone;
  if (!ProcessAlive(desc_.pid)) {
    gone = Status::Unavailable("peer process " + std::to_string(desc_.pid) + " of segment '" +
                               desc_.name + "' is gone");
  }
  CheckedSlice group[kMaxGroup];
  size_t grouped = 0;
  for (size_t i = 0; i < count; ++i) {
    Slice* s = slices[i];
    if (!gone.ok()) {
      s->on_done(s, gone);
    } else if (s->length >= inline_copy_limit_) {
      pool_->Post([self = shared_from_this(), s] { self->Run(s); });
    } else if (Status st = Check(s, &group[grouped]); !st.ok()) {
      s->on_done(s, st);
    } else if (++grouped == kMaxGroup) {
      Finish(group, grouped);
      grouped = 0;
    }
  }
  Finish(group, grouped);
}

void SameHostPeer::Run(Slice* s) {
  CheckedSlice checked;
  Status st = Check(s, &checked);
  if (st.ok()) {
    Finish(&checked, 1);
  } else {
    s->on_done(s, st);
  }
}

Status SameHostPeer::Check(Slice* s, CheckedSlice* out) const {
  if (s->IsCancelled()) return Status::Cancelled("batch freed before the slice was copied");
  const SegmentBuffer* b = desc_.FindBuffer(s->remote, s->length);
  if (!b) return Status::OutOfRange("range is not inside a buffer of segment '" + desc_.name + "'");
  if (s->opcode == Request::WRITE && b->permission != Permission::kRemoteReadWrite) {
    return Status::PermissionDenied("buffer of segment '" + desc_.name +
                                    "' is read-only for peers");
  }
  *out = {s, b, static_cast<size_t>(b - desc_.buffers.data())};
  return Status::OK();
}

void SameHostPeer::Finish(const CheckedSlice* slices, size_t n) {
  if (n == 0) return;
  // Each buffer is pinned once for the group (a batch's slices mostly share one): its
  // pin count is a cache line that every copying thread, ours and the owner's, writes.
  struct Held {
    const SegmentBuffer* buffer;
    bool pinned;
  };
  Held held[kMaxGroup];
  size_t holds = 0;
  CheckedSlice ready[kMaxGroup];
  size_t ready_at[kMaxGroup];
  size_t readies = 0;
  Status results[kMaxGroup];
  for (size_t i = 0; i < n; ++i) {
    const SegmentBuffer* b = slices[i].buffer;
    size_t h = 0;
    while (h < holds && held[h].buffer != b) ++h;
    if (h == holds) {
      held[holds++] = {b, pins_->Pin(b->pin_slot, b->pin_generation, b->base, b->length)};
    }
    if (held[h].pinned) {
      ready_at[readies] = i;
      ready[readies++] = slices[i];
    } else {
      results[i] = Status::OutOfRange("buffer of segment '" + desc_.name + "' was unregistered");
    }
  }
  Status copied[kMaxGroup];
  CopyAll(ready, readies, copied);
  for (size_t k = 0; k < readies; ++k) results[ready_at[k]] = std::move(copied[k]);
  for (size_t h = 0; h < holds; ++h) {
    if (held[h].pinned) pins_->Unpin(held[h].buffer->pin_slot);
  }
  for (size_t i = 0; i < n; ++i) slices[i].slice->on_done(slices[i].slice, results[i]);
}

void SameHostPeer::CopyAll(const CheckedSlice* slices, size_t n, Status* results) {
  for (size_t i = 0; i < n; ++i) {
    results[i] = Copy(slices[i].slice, *slices[i].buffer, slices[i].index);
  }
}

}  // namespace te
