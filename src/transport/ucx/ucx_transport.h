// The ucx transport: one-sided PUT (WRITE) and GET (READ) through UCX, so RDMA
// verbs (rc, dc, ud over mlx5) where the machine has them, and UCX's tcp and shared
// memory elsewhere. It publishes its workers' addresses in the segment descriptor
// and, for every remote-visible buffer, a packed rkey; a peer connects lazily to
// one of those workers and posts each slice as one UcxOp.
//
// UCX over tcp and shared memory checks neither ranges nor write permission on the
// far side (verbs does, in hardware): every slice is checked here against the
// peer's descriptor before it is posted, and a buffer the peer published no rkey
// for is not served at all.
#pragma once

#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "transport/transport.h"
#include "transport/ucx/ucx_context.h"

namespace te {

class UcxTransport : public Transport {
 public:
  // The context, shared with the peers so that Stop can take it from them.
  struct Shared {
    std::shared_mutex mu;
    std::unique_ptr<UcxContext> context;  // guarded by mu; null once stopped
  };

  ~UcxTransport() override { Stop(); }
  const char* name() const override { return "ucx"; }
  Status Start(const TransportContext& context, SegmentDescriptor* local) override;
  Status OnRegister(const BufferInfo& buffer, std::string* public_data) override;
  void OnUnregister(const BufferInfo& buffer) override;
  void Stop() override;
  bool CanReach(const SegmentDescriptor& peer) const override;
  Status GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) override;

  // The options Start gives UCX for this config.
  static UcxOptions OptionsFor(const Config& config);

 private:
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
  std::mutex memory_mu_;
  std::unordered_map<uint64_t, std::unique_ptr<UcxMemory>> memory_;  // by base; memory_mu_
};

}  // namespace te
