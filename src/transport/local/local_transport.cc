#include "transport/local/local_transport.h"

#include <unistd.h>

#include <cstring>

#include "memory/memory.h"

namespace te {
namespace {

class LocalPeer : public TransportPeer {
 public:
  explicit LocalPeer(BufferRegistry* registry) : registry_(registry) {}

  // Device bytes take a device copy (synchronous, like the memmove of host bytes).
  bool CarriesDeviceMemory() const override { return true; }

  void Submit(Slice* const* slices, size_t count) override {
    auto table = registry_->Snapshot();
    for (size_t i = 0; i < count; ++i) {
      Slice* s = slices[i];
      Access access = s->opcode == Request::READ ? Access::kRemoteRead : Access::kRemoteWrite;
      BufferPin pin;
      Status st = s->IsCancelled()
                      ? Status::Cancelled("batch freed before the slice was copied")
                      : BufferRegistry::PinRange(*table, s->remote, s->length, access, &pin);
      if (st.ok()) {
        char* remote = reinterpret_cast<char*>(s->remote);
        char* dst = s->opcode == Request::READ ? s->local : remote;
        const char* src = s->opcode == Request::READ ? remote : s->local;
        if (s->local_device == kHostMemory && !IsDeviceLocation(pin.info()->location)) {
          std::memmove(dst, src, s->length);
        } else {
          st = CopyMemory(dst, src, s->length);
        }
      }
      pin.Release();
      s->on_done(s, st);
    }
  }

 private:
  BufferRegistry* registry_;
};

}  // namespace

Status LocalTransport::Start(const TransportContext& context, SegmentDescriptor* local) {
  context_ = context;
  machine_id_ = local->machine_id;
  pid_ = local->pid;
  local->transports[name()] = "";
  return Status::OK();
}

bool LocalTransport::CanReach(const SegmentDescriptor& peer) const {
  return peer.machine_id == machine_id_ && peer.pid == pid_ && peer.name == context_.local_name;
}

Status LocalTransport::GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) {
  if (!CanReach(peer)) return Status::Unavailable("local transport serves only this process");
  *out = std::make_shared<LocalPeer>(context_.registry);
  return Status::OK();
}

}  // namespace te
