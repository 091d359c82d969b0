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
    PinSlot* s = table->slot(b.pin_slot < kPinTableSlots ? b.pin_slot : 0);
    if (b.pin_slot >= kPinTableSlots || s->base.load() != b.base || s->length.load() != b.length ||
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
  for (size_t i = 0; i < count; ++i) {
    Slice* s = slices[i];
    if (!gone.ok()) {
      s->on_done(s, gone);
    } else if (s->length >= inline_copy_limit_) {
      pool_->Post([self = shared_from_this(), s] { self->Run(s); });
    } else {
      Run(s);
    }
  }
}

void SameHostPeer::Run(Slice* s) {
  if (s->IsCancelled()) {
    s->on_done(s, Status::Cancelled("batch freed before the slice was copied"));
    return;
  }
  const SegmentBuffer* b = desc_.FindBuffer(s->remote, s->length);
  Status st;
  if (!b) {
    st = Status::OutOfRange("range is not inside a buffer of segment '" + desc_.name + "'");
  } else if (s->opcode == Request::WRITE && b->permission != Permission::kRemoteReadWrite) {
    st = Status::PermissionDenied("buffer of segment '" + desc_.name + "' is read-only for peers");
  } else if (!pins_->Pin(b->pin_slot, b->pin_generation, b->base, b->length)) {
    st = Status::OutOfRange("buffer of segment '" + desc_.name + "' was unregistered");
  } else {
    st = Copy(s, *b, static_cast<size_t>(b - desc_.buffers.data()));
    pins_->Unpin(b->pin_slot);
  }
  s->on_done(s, st);
}

}  // namespace te
