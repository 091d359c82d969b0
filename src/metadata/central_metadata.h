// CentralMetadataClient: segment discovery through a central store (redis, etcd or an
// http metadata server), on top of a KvBackend.
//
// - A segment is a header entry (the descriptor without buffers, a version and a log
//   of the latest changes) and one entry per buffer (segment_entries.h), so that
//   PublishChanges writes only what changed and a peer refreshing an older version
//   reads only the buffers changed since.
// - The first Publish claims the name: it fails with kAlreadyExists when a live engine
//   holds it (the holder's RPC endpoint answers with the holder's identity). A holder
//   that does not answer is waited out while its TTL runs (at most our own TTL), or
//   taken over at once when its entry has no TTL.
// - Once published, a keep-alive thread renews the entries every ttl/3 and re-creates
//   them when the store lost them or a write failed, so a killed engine's entries
//   disappear within the TTL (redis, etcd) and a restarted server learns them again.
// - Unpublish stops the keep-alive and deletes the entries if they are still ours.
// Every backend call is bounded by the backend's per-server timeout.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "metadata/kv_backend.h"
#include "metadata/metadata_client.h"
#include "rpc/handshake.h"

namespace te {

struct CentralOptions {
  wire::Credentials self;      // proven in the HELLO of holder probes
  uint32_t timeout_ms = 3000;  // bounds each holder probe
  uint32_t ttl_ms = 10000;     // keep-alive period is ttl_ms / 3
};

class CentralMetadataClient : public MetadataClient {
 public:
  CentralMetadataClient(std::unique_ptr<KvBackend> backend, CentralOptions options);
  ~CentralMetadataClient() override;
  CentralMetadataClient(const CentralMetadataClient&) = delete;
  CentralMetadataClient& operator=(const CentralMetadataClient&) = delete;

  Status Publish(const SegmentDescriptor& local) override;
  Status PublishChanges(const std::vector<SegmentBuffer>& added,
                        const std::vector<uint64_t>& removed) override;
  Status Unpublish(const std::string& name) override;
  Status Lookup(const std::string& name, SegmentDescriptor* out) override;
  Status LookupIfChanged(const std::string& name, std::string* tag, const SegmentDescriptor* held,
                         SegmentDescriptor* out, bool* unchanged) override;
  KvTraffic Traffic() const override { return backend_->Traffic(); }

  static std::string KeyOf(const std::string& name) { return SegmentKeys::Of(name).header; }

 private:
  enum class Holder { kAlive, kGone };

  Status Claim(const SegmentDescriptor& local, const std::string& key, const std::string& value);
  // Asks the engine described by `value` whether it still serves its segment.
  Holder Inspect(const std::string& value, const SegmentDescriptor& local, std::string* who);
  // Writes the change of `bases` (entries in put, ids in erase), or everything when
  // an earlier write failed. Callers hold mu_.
  Status Commit(const std::vector<uint64_t>& bases, KvWrite write);
  // Every buffer entry, replacing what the store has, in a new version.
  KvWrite FullWrite();
  // Update, or when the store lost the header, Recreate. Callers hold mu_.
  Status Write(const KvWrite& write);
  Status Recreate();
  // The keep-alive's step: renew, or catch up after failures.
  Status Sync();
  // The buffers of `header`'s segment, from `held` and the changes since *tag when
  // the log reaches back to it, else all read again.
  Status ReadBuffersOf(const std::string& header, const std::string& tag,
                       const SegmentDescriptor* held, SegmentDescriptor* out, std::string* new_tag);
  void KeepAliveLoop();
  void StopKeepAlive();

  std::unique_ptr<KvBackend> backend_;
  const CentralOptions options_;
  const std::string instance_;  // random: tells this client's headers from a predecessor's

  std::mutex mu_;  // serializes backend calls; guards the fields below
  bool published_ = false;
  SegmentKeys keys_;                         // of the published segment
  SegmentDescriptor segment_;                // the published descriptor but its buffers
  std::map<uint64_t, std::string> buffers_;  // base -> entry: what the store should hold
  HeaderState state_;                        // of the latest header
  std::string written_;                      // the header the store holds from us
  bool dirty_ = false;    // a write failed: the store may lack changes, rewrite it all
  bool failing_ = false;  // the last keep-alive failed (log state changes only)

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by stop_mu_
  std::thread keepalive_;
};

}  // namespace te
