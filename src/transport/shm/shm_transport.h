// Shared-memory transport: a peer on the same machine whose buffers live in POSIX
// shared memory is mapped once (read-only where the peer grants only READ) and
// copied to and from directly.
#pragma once

#include <memory>

#include "transport/copy_pool.h"
#include "transport/transport.h"

namespace te {

class ShmTransport : public Transport {
 public:
  const char* name() const override { return "shm"; }
  Status Start(const TransportContext& context, SegmentDescriptor* local) override;
  void Stop() override { pool_.reset(); }
  bool CanReach(const SegmentDescriptor& peer) const override;
  Status GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) override;

 private:
  std::string machine_id_;
  std::unique_ptr<CopyPool> pool_;
};

}  // namespace te
