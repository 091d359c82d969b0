// TCP transport: reaches any peer that advertises a tcp endpoint. All of its socket
// work runs on a fixed set of I/O threads (tcp_io_threads, io_loop.h), which every
// transport of the process with the same settings shares, and two small handshake
// pools of its own, however many peers there are; the target's connections are served
// on the same threads. Each peer gets a fixed set of connections, opened on first use
// and closed when idle; a Submit's slices go to them in runs (few slices share one
// connection's system calls; a large request moves over several connections at once).
// Peers live while an open segment's routes use them; one no longer used is dropped, once idle,
// when the next new endpoint comes (a restarted target usually comes back on a new port).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/thread_annotations.h"
#include "transport/tcp/handshake_pool.h"
#include "transport/tcp/io_loop.h"
#include "transport/tcp/tcp_connection.h"
#include "transport/tcp/tcp_server.h"
#include "transport/transport.h"

namespace te {

class TcpPeer;

class TcpTransport : public Transport {
 public:
  ~TcpTransport() override { Stop(); }
  const char* name() const override { return "tcp"; }
  // May follow a Stop: the transport then starts anew.
  Status Start(const TransportContext& context, SegmentDescriptor* local) override;
  // Ends every peer's connections (also those of handles that open segments still
  // hold) and, once it returns, none of the transport's handlers runs or is held by the
  // shared loop, whose other transports go on. On one of the loop's threads (from a
  // handler of another transport) that thread's part is done in place; two such calls
  // at once, on two threads of one loop, would wait for each other.
  void Stop() override;
  bool CanReach(const SegmentDescriptor& peer) const override;
  Status GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) override;
  // Endpoints with a peer kept, used or not yet dropped.
  size_t PeerCount() EXCLUDES(mu_);

 private:
  // Moves out the peers nothing uses any more and that are idle.
  void TakeUnusedPeers(std::vector<std::shared_ptr<TcpPeer>>* unused) REQUIRES(mu_);

  TransportContext context_;
  DataSocketTuning tuning_;  // of data connections, resolved at Start
  // Connects (this engine's HELLOs) and welcomes (its peers'), apart: a connect waits
  // for a welcome, and an engine may connect to itself.
  HandshakePool connects_;
  HandshakePool welcomes_;
  TcpServer server_;
  uint64_t io_owner_ = 0;  // this transport's registrations in the loop
  Mutex mu_;
  // The process's loop for this transport's settings, from Start to Stop.
  std::shared_ptr<IoLoop> loop_ GUARDED_BY(mu_);
  // Endpoint -> peer; shared by every open handle of the same segment.
  std::map<std::string, std::shared_ptr<TcpPeer>> peers_ GUARDED_BY(mu_);
};

}  // namespace te
