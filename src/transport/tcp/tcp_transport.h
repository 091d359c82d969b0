// TCP transport: reaches any peer that advertises a tcp endpoint. Each peer gets a
// fixed set of channels (connections); slices are spread over them round-robin so a
// large request moves over several connections at once. Peers live while an open
// segment's routes use them; one no longer used is dropped, once idle, when the next
// new endpoint comes (a restarted target usually comes back on a new port).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "common/connection_server.h"
#include "transport/tcp/tcp_channel.h"
#include "transport/transport.h"

namespace te {

class TcpPeer;

class TcpTransport : public Transport {
 public:
  ~TcpTransport() override { Stop(); }
  const char* name() const override { return "tcp"; }
  Status Start(const TransportContext& context, SegmentDescriptor* local) override;
  void Stop() override;
  bool CanReach(const SegmentDescriptor& peer) const override;
  Status GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) override;
  // Endpoints with a peer kept, used or not yet dropped.
  size_t PeerCount();

 private:
  // Under mu_: moves out the peers nothing uses any more and that are idle.
  void TakeUnusedPeers(std::vector<std::shared_ptr<TcpPeer>>* unused);

  TransportContext context_;
  ConnectionServer server_;
  std::mutex mu_;
  // Endpoint -> peer; shared by every open handle of the same segment.
  std::map<std::string, std::shared_ptr<TcpPeer>> peers_;  // guarded by mu_
};

}  // namespace te
