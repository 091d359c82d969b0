// CUDA IPC transport: a peer on the same machine exports each device buffer as an IPC
// handle, published as the buffer's transport data; we open a handle on first use (once per peer,
// closed with the peer) and copy device to device, or between our host memory and its device
// memory, with asynchronous copies in the copy pool's threads, never in the caller's.
// Range, permission and pin checks are the other same-host transports' (same_host.h).
// Only device buffers with a handle go this way; the engine sends the rest elsewhere.
#pragma once

#include "transport/same_host.h"

namespace te {

class CudaIpcTransport : public SameHostTransport {
 public:
  const char* name() const override { return "cuda_ipc"; }
  // Exports remote-visible device buffers as IPC handles; without one, same-host
  // peers still reach the buffer over another transport (TCP).
  Status OnRegister(const BufferInfo& buffer, std::string* public_data) override;
  Status GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) override;
};

}  // namespace te
