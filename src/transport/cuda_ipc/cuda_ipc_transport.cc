#include "transport/cuda_ipc/cuda_ipc_transport.h"

#include <map>
#include <mutex>
#include <vector>

#include "common/logging.h"
#include "memory/device_memory.h"
#include "memory/memory.h"

namespace te {
namespace {

// Copies on this thread's stream for `device` and waits for them: pool threads copy
// concurrently instead of queueing behind one another on the default stream.
Status CopyOnStream(int device, void* dst, const void* src, size_t len) {
  thread_local std::map<int, std::unique_ptr<CopyStream>> streams;
  std::unique_ptr<CopyStream>& stream = streams[device];
  if (!stream) TE_RETURN_IF_ERROR(CopyStream::Create(device, &stream));
  TE_RETURN_IF_ERROR(stream->CopyAsync(dst, src, len));
  return stream->Wait();
}

class CudaIpcPeer : public SameHostPeer {
 public:
  CudaIpcPeer(SegmentDescriptor desc, std::unique_ptr<PinTable> pins, CopyPool* pool)
      // Every slice goes to the pool: a device copy must not hold up the caller.
      : SameHostPeer(std::move(desc), std::move(pins), pool, /*inline_copy_limit=*/0),
        opened_(desc_.buffers.size()) {}
  ~CudaIpcPeer() override {
    for (const Opened& o : opened_) CloseDeviceHandle(o.mapping);
  }

  bool CanServe(const SegmentBuffer* b) const override {
    return b && !b->TransportData("cuda_ipc").empty();
  }
  bool CarriesDeviceMemory() const override { return true; }

 protected:
  Status Copy(Slice* s, const SegmentBuffer& b, size_t index) override {
    const int device = LocationDevice(b.location);
    char* base = nullptr;
    TE_RETURN_IF_ERROR(Open(b, index, device, &base));
    char* remote = base + (s->remote - b.base);
    if (s->opcode == Request::READ) return CopyOnStream(device, s->local, remote, s->length);
    return CopyOnStream(device, remote, s->local, s->length);
  }

 private:
  struct Opened {
    bool tried = false;
    Status status;
    DeviceMapping mapping;
  };

  // Opens buffer `index` once; a failure stays (the engine then refreshes the segment,
  // which makes a new peer).
  Status Open(const SegmentBuffer& b, size_t index, int device, char** out) {
    std::lock_guard<std::mutex> lock(mu_);
    Opened& o = opened_[index];
    if (!o.tried) {
      o.tried = true;
      o.status = OpenDeviceHandle(b.TransportData("cuda_ipc"), device, &o.mapping);
    }
    *out = o.mapping.addr;
    return o.status;
  }

  // A lock per copy is cheap next to a device copy's own cost.
  std::mutex mu_;
  std::vector<Opened> opened_;  // by buffer index; guarded by mu_
};

}  // namespace

Status CudaIpcTransport::OnRegister(const BufferInfo& buffer, std::string* public_data) {
  if (!IsDeviceLocation(buffer.location) || buffer.permission == Permission::kLocalOnly) {
    return Status::OK();
  }
  Status s = ExportDeviceHandle(reinterpret_cast<void*>(buffer.base), public_data);
  if (!s.ok()) {
    public_data->clear();
    TE_LOG(Info) << "buffer at 0x" << std::hex << buffer.base << ": no CUDA IPC: " << s.ToString();
  }
  return Status::OK();
}

Status CudaIpcTransport::GetPeer(const SegmentDescriptor& peer,
                                 std::shared_ptr<TransportPeer>* out) {
  std::unique_ptr<PinTable> pins;
  TE_RETURN_IF_ERROR(AttachPeer(peer, &pins));
  *out = std::make_shared<CudaIpcPeer>(peer, std::move(pins), pool());
  return Status::OK();
}

}  // namespace te
