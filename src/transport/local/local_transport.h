// In-process transport: a segment opened by this engine's own name. Copies run inline
// in the submitting thread, checked against the registry like any peer's request.
#pragma once

#include "transport/transport.h"

namespace te {

class LocalTransport : public Transport {
 public:
  const char* name() const override { return "local"; }
  Status Start(const TransportContext& context, SegmentDescriptor* local) override;
  void Stop() override {}
  bool CanReach(const SegmentDescriptor& peer) const override;
  Status GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) override;

 private:
  TransportContext context_;
  std::string machine_id_;
  uint32_t pid_ = 0;
};

}  // namespace te
