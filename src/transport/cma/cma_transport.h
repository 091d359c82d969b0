// Cross-memory-attach transport: copies between this process and a peer process on
// the same machine with process_vm_readv/process_vm_writev, for buffers in ordinary
// (unshared) memory. The kernel allows it only where this process may ptrace the
// peer (same user; Yama ptrace_scope 0, or the peer opted in); the transport probes
// that when a segment is opened and declines the peer otherwise, so the engine falls
// back to the next transport.
#pragma once

#include "transport/same_host.h"

namespace te {

class CmaTransport : public SameHostTransport {
 public:
  const char* name() const override { return "cma"; }
  Status GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) override;
};

}  // namespace te
