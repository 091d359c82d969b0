// CentralMetadataClient: segment discovery through a central store (redis, etcd or an
// http metadata server), on top of a KvBackend.
//
// - A segment is stored under KeyOf(name) = "te/segments/<name>" as its descriptor JSON.
// - The first Publish claims the name: it fails with kAlreadyExists when a live engine
//   holds it (the holder's RPC endpoint answers with the holder's identity). A holder
//   that does not answer is waited out while its TTL runs (at most our own TTL), or
//   taken over at once when its entry has no TTL.
// - Once published, a keep-alive thread renews the entry every ttl/3 and re-creates
//   it when the store lost it, so a killed engine's entry disappears within the TTL
//   (redis, etcd) and a restarted server learns the entry again.
// - Unpublish stops the keep-alive and deletes the entry if it is still ours.
// Every backend call is bounded by the backend's per-server timeout.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

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
  Status Unpublish(const std::string& name) override;
  Status Lookup(const std::string& name, SegmentDescriptor* out) override;

  static std::string KeyOf(const std::string& name) { return "te/segments/" + name; }

 private:
  enum class Holder { kAlive, kGone };

  Status Claim(const SegmentDescriptor& local, const std::string& key, const std::string& value);
  // Asks the engine described by `value` whether it still serves its segment.
  Holder Inspect(const std::string& value, const SegmentDescriptor& local, std::string* who);
  void KeepAliveLoop();
  void StopKeepAlive();

  std::unique_ptr<KvBackend> backend_;
  const CentralOptions options_;

  std::mutex mu_;         // serializes backend calls; guards the fields below
  std::string key_;       // the published entry's key; empty while unpublished
  std::string desired_;   // the latest descriptor JSON
  std::string written_;   // what the store holds from us (the last successful write)
  bool failing_ = false;  // the last keep-alive failed (log state changes only)

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by stop_mu_
  std::thread keepalive_;
};

}  // namespace te
