#include "transport/tcp/tcp_transport.h"

#include <atomic>
#include <vector>

#include "common/strings.h"
#include "transport/tcp/tcp_target.h"

namespace te {
namespace {
constexpr uint32_t kMaxDataConnections = 4096;
}  // namespace

class TcpPeer : public TransportPeer {
 public:
  TcpPeer(const TcpChannelOptions& options, uint32_t channels) {
    for (uint32_t i = 0; i < channels; ++i) {
      channels_.push_back(std::make_unique<TcpChannel>(options));
    }
  }

  void Submit(Slice* const* slices, size_t count) override {
    const size_t n = channels_.size();
    // Build one chain per channel, then hand each over with a single lock.
    std::vector<std::pair<Slice*, Slice*>> chains(n, {nullptr, nullptr});
    size_t start = next_.fetch_add(count, std::memory_order_relaxed);
    for (size_t i = 0; i < count; ++i) {
      const size_t c = (start + i) % n;
      auto& [head, tail] = chains[c];
      slices[i]->next = nullptr;
      slices[i]->carrier.store(channels_[c].get(), std::memory_order_relaxed);
      if (tail) {
        tail->next = slices[i];
      } else {
        head = slices[i];
      }
      tail = slices[i];
    }
    for (size_t c = 0; c < n; ++c) {
      if (chains[c].first) channels_[c]->Enqueue(chains[c].first, chains[c].second);
    }
  }

  // Device bytes are staged through pinned host chunks on both sides (payload_io.h).
  bool CarriesDeviceMemory() const override { return true; }

  bool ReceiveFor(const Slice& slice, const std::function<bool()>& done,
                  std::chrono::steady_clock::time_point deadline) override {
    const void* carrier = slice.carrier.load(std::memory_order_relaxed);
    for (const auto& channel : channels_) {
      if (channel.get() == carrier) return channel->ReceiveFor(done, deadline);
    }
    return false;
  }

  bool Idle() const {
    for (const auto& channel : channels_) {
      if (!channel->Idle()) return false;
    }
    return true;
  }

 private:
  std::vector<std::unique_ptr<TcpChannel>> channels_;
  std::atomic<size_t> next_{0};
};

Status TcpTransport::Start(const TransportContext& context, SegmentDescriptor* local) {
  context_ = context;
  BufferRegistry* registry = context.registry;
  const Config* config = context.config;
  EngineMetrics* metrics = context.metrics;
  TE_RETURN_IF_ERROR(server_.Start(
      context.bind_host, 0, kMaxDataConnections, [registry, config, metrics](int fd) {
        ServeTcpDataConnection(fd, registry, config->transfer_timeout_ms, config->cluster_secret,
                               metrics);
      }));
  std::string host = context.advertise_host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  local->transports[name()] = host + ":" + std::to_string(server_.port());
  return Status::OK();
}

void TcpTransport::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    peers_.clear();  // channels fail their slices and join their threads
  }
  server_.Stop();
}

bool TcpTransport::CanReach(const SegmentDescriptor& peer) const {
  return peer.transports.count(name()) > 0;
}

Status TcpTransport::GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) {
  auto it = peer.transports.find(name());
  if (it == peer.transports.end()) {
    return Status::Unavailable("segment '" + peer.name + "' has no tcp endpoint");
  }
  TcpChannelOptions options;
  if (!ParseHostPort(it->second, &options.host, &options.port) || options.port == 0) {
    return Status::ProtocolError("segment '" + peer.name + "': bad tcp endpoint '" + it->second +
                                 "'");
  }
  options.self = {context_.local_name, context_.config->cluster_secret};
  options.connect_timeout_ms = context_.config->connect_timeout_ms;
  options.io_timeout_ms = context_.config->transfer_timeout_ms;
  if (context_.metrics) options.connections = context_.metrics->Connections("tcp", false);
  std::vector<std::shared_ptr<TcpPeer>> unused;  // destroyed after the lock: joins threads
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = peers_[it->second];
  const bool created = !slot;
  if (created) slot = std::make_shared<TcpPeer>(options, context_.config->tcp_connections_per_peer);
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
  std::lock_guard<std::mutex> lock(mu_);
  return peers_.size();
}

}  // namespace te
