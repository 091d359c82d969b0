// Shared-memory transport: a peer on the same machine whose buffers live in POSIX
// shared memory is mapped once (read-only where the peer grants only READ) and
// copied to and from directly.
#pragma once

#include "transport/same_host.h"

namespace te {

class ShmTransport : public SameHostTransport {
 public:
  const char* name() const override { return "shm"; }
  Status GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) override;
};

}  // namespace te
