#include "transport/tcp/tcp_transport.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "transport/tcp/tcp_endpoint.h"

namespace te {
namespace {
// Threads of each handshake pool, and the handshakes that may wait for them.
constexpr size_t kHandshakeThreads = 2;
constexpr size_t kMaxWaitingHandshakes = 4096;
// Fewest slices of one Submit that go to a connection, unless its bytes are many
// (TcpPeer::Submit).
constexpr size_t kMinRun = 4;
constexpr uint64_t kBytesPerRun = 1 << 20;
}  // namespace

class TcpPeer : public TransportPeer {
 public:
  TcpPeer(const TcpConnectionOptions& options, uint32_t connections, IoLoop* loop, uint64_t owner,
          HandshakePool* handshakes) {
    for (uint32_t i = 0; i < connections; ++i) {
      connections_.push_back(std::make_shared<TcpConnection>(options, loop, owner, handshakes));
    }
  }
  ~TcpPeer() override { Close(); }

  // Fails what the connections carry and ends them for good (TcpConnection::Close).
  void Close() {
    for (const auto& c : connections_) c->Close();
  }

  void Submit(Slice* const* slices, size_t count) override {
    const size_t n = connections_.size();
    // Runs of at least kMinRun slices per connection: a run goes out in one sendmsg and
    // comes back as one stream, so the few slices a peer gets of a batch spread over
    // many peers cost one connection's system calls, not one each. Bytes enough for
    // several flows (kBytesPerRun each) still use several connections. A Submit that
    // makes one run goes to the least busy connection; several rotate over them.
    uint64_t bytes = 0;
    for (size_t i = 0; i < count; ++i) bytes += slices[i]->length;
    const size_t used =
        std::clamp<size_t>(std::max<uint64_t>(count / kMinRun, bytes / kBytesPerRun), 1, n);
    const size_t run = (count + used - 1) / used;
    const size_t runs = (count + run - 1) / run;
    // One chain per connection, each handed over with a single lock.
    std::vector<std::pair<Slice*, Slice*>> chains(n, {nullptr, nullptr});
    const size_t start = runs == 1 ? LeastBusy() : next_.fetch_add(runs, std::memory_order_relaxed);
    for (size_t i = 0; i < count; ++i) {
      const size_t c = (start + i / run) % n;
      auto& [head, tail] = chains[c];
      slices[i]->next = nullptr;
      slices[i]->carrier.store(connections_[c].get(), std::memory_order_relaxed);
      if (tail) {
        tail->next = slices[i];
      } else {
        head = slices[i];
      }
      tail = slices[i];
    }
    for (size_t c = 0; c < n; ++c) {
      if (chains[c].first) connections_[c]->Enqueue(chains[c].first, chains[c].second);
    }
  }

  // Device bytes are staged through pinned host chunks on both sides (payload_io.h).
  bool CarriesDeviceMemory() const override { return true; }

  bool ReceiveFor(const Slice& slice, const std::function<bool()>& done,
                  std::chrono::steady_clock::time_point deadline) override {
    TcpConnection* c = CarrierOf(slice);
    return c && c->ReceiveFor(done, deadline);
  }

  void Unattended(const Slice& slice) override {
    if (TcpConnection* c = CarrierOf(slice)) c->Unattended();
  }

  bool Idle() const {
    for (const auto& c : connections_) {
      if (!c->Idle()) return false;
    }
    return true;
  }

 private:
  // The first connection carrying less than kBytesPerRun, else the one carrying least.
  // What one connection carries well stays on one, so that a peer that gets a request
  // at a time (a batch spread over many peers) costs one socket at each end, not
  // tcp_connections_per_peer; the others open only when the bytes call for them.
  size_t LeastBusy() const {
    size_t best = 0;
    uint64_t least = UINT64_MAX;
    for (size_t c = 0; c < connections_.size(); ++c) {
      const uint64_t carried = connections_[c]->carried_bytes();
      if (carried < kBytesPerRun) return c;
      if (carried < least) {
        least = carried;
        best = c;
      }
    }
    return best;
  }

  // The connection of this peer that carries slice, or null (not, or no longer, ours).
  TcpConnection* CarrierOf(const Slice& slice) const {
    const void* carrier = slice.carrier.load(std::memory_order_relaxed);
    for (const auto& c : connections_) {
      if (c.get() == carrier) return c.get();
    }
    return nullptr;
  }

  std::vector<std::shared_ptr<TcpConnection>> connections_;
  std::atomic<size_t> next_{0};
};

Status TcpTransport::Start(const TransportContext& context, SegmentDescriptor* local) {
  context_ = context;
  const Config& config = *context.config;
  IoLoopSettings loop_settings;
  loop_settings.threads = config.tcp_io_threads;
  // A tick a tenth of the I/O timeout finds a stalled slice within 1.1 timeouts.
  loop_settings.tick =
      std::chrono::milliseconds(std::clamp<uint32_t>(config.transfer_timeout_ms / 10, 1, 100));
  loop_settings.busy_poll = std::chrono::microseconds(config.tcp_busy_poll_us);
  TE_RETURN_IF_ERROR(
      ResolveDataSocketTuning(config.tcp_congestion, config.tcp_rto_min_us, &tuning_));
  std::shared_ptr<IoLoop> loop;
  TE_RETURN_IF_ERROR(IoLoop::Shared(loop_settings, &loop));
  io_owner_ = loop->NewOwner();
  {
    MutexLock lock(&mu_);
    loop_ = loop;  // from here on, Stop ends what follows, should a step fail
  }
  connects_.Start(kHandshakeThreads, kMaxWaitingHandshakes);
  welcomes_.Start(kHandshakeThreads, kMaxWaitingHandshakes);
  TcpServerOptions server;
  server.registry = context.registry;
  server.secret = config.cluster_secret;
  server.handshake_timeout_ms = std::min(config.connect_timeout_ms, config.transfer_timeout_ms);
  server.io_timeout_ms = config.transfer_timeout_ms;
  server.max_connections = TcpServer::ConnectionLimit();
  server.metrics = context.metrics;
  server.tuning = tuning_;
  TE_RETURN_IF_ERROR(
      server_.Start(context.bind_host, std::move(server), loop.get(), io_owner_, &welcomes_));
  local->transports[name()] = TcpEndpoint::Format(
      AdvertisedHosts(context.advertise_any ? "" : context.advertise_host, context.advertise_host),
      server_.port());
  return Status::OK();
}

void TcpTransport::Stop() {
  std::shared_ptr<IoLoop> loop;
  std::map<std::string, std::shared_ptr<TcpPeer>> peers;
  {
    MutexLock lock(&mu_);
    loop.swap(loop_);
    peers.swap(peers_);
  }
  if (!loop) return;  // not started, or stopped already
  server_.Stop();
  // Handles of open segments may hold peers still: their connections fail what they
  // carry now and never touch the loop again, which may go with this transport.
  for (const auto& [endpoint, peer] : peers) peer->Close();
  peers.clear();
  // A handshake still running may add a connection to the loop; none comes after these.
  connects_.Stop();
  welcomes_.Stop();
  // Drops the rest of this transport's handlers (its server's listener and data
  // connections, its connections' watchers) and waits until none runs.
  loop->RemoveAll(io_owner_);
}  // the last transport with these settings stops the loop's threads

bool TcpTransport::CanReach(const SegmentDescriptor& peer) const {
  return peer.transports.count(name()) > 0;
}

Status TcpTransport::GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) {
  auto it = peer.transports.find(name());
  if (it == peer.transports.end()) {
    return Status::Unavailable("segment '" + peer.name + "' has no tcp endpoint");
  }
  TcpConnectionOptions options;
  options.endpoint = std::make_shared<TcpEndpoint>();
  Status parsed = TcpEndpoint::Parse(it->second, options.endpoint.get());
  if (!parsed.ok())
    return Status::ProtocolError("segment '" + peer.name + "': " + parsed.message());
  const Config& config = *context_.config;
  options.self = {context_.local_name, config.cluster_secret};
  options.connect_timeout_ms = config.connect_timeout_ms;
  options.io_timeout_ms = config.transfer_timeout_ms;
  options.idle_timeout_ms = config.tcp_idle_timeout_ms;
  options.busy_poll = std::chrono::microseconds(config.tcp_busy_poll_us);
  options.tuning = tuning_;
  if (context_.metrics) options.connections = context_.metrics->Connections("tcp", false);
  std::vector<std::shared_ptr<TcpPeer>> unused;  // destroyed after the lock
  MutexLock lock(&mu_);
  if (!loop_) return Status::Unavailable("tcp transport stopped");
  auto& slot = peers_[it->second];
  const bool created = !slot;
  if (created) {
    slot = std::make_shared<TcpPeer>(options, config.tcp_connections_per_peer, loop_.get(),
                                     io_owner_, &connects_);
  }
  *out = slot;  // first, so that the new peer is in use
  if (created) TakeUnusedPeers(&unused);
  return Status::OK();
}

void TcpTransport::TakeUnusedPeers(std::vector<std::shared_ptr<TcpPeer>>* unused) {
  // Only the map holds such a peer, so nothing can submit to it any more; an idle one
  // has no slice to fail either. A busy one is looked at again next time.
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (it->second.use_count() == 1 && it->second->Idle()) {
      unused->push_back(std::move(it->second));
      it = peers_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t TcpTransport::PeerCount() {
  MutexLock lock(&mu_);
  return peers_.size();
}

}  // namespace te
