// EngineImpl: the engine behind the public TransferEngine. It owns the local segment
// (memory, registry, descriptor), the control plane, the open segments and batches,
// and turns requests into slices for the transport chosen per segment.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/sharded_map.h"
#include "engine/batch.h"
#include "engine/routes.h"
#include "memory/buffer_registry.h"
#include "memory/memory.h"
#include "metadata/metadata_client.h"
#include "metrics/engine_metrics.h"
#include "metrics/metrics_server.h"
#include "rpc/rpc_server.h"
#include "te/transfer_engine.h"
#include "transport/transport.h"

namespace te {

class EngineImpl {
 public:
  EngineImpl() = default;
  ~EngineImpl();

  Status Init(const Config& config);
  // Marks the engine unusable without starting anything (e.g. a bad environment).
  void FailInit(const Status& why) { init_status_ = why; }
  const Status& init_status() const { return init_status_; }
  const std::string& segment_name() const { return segment_name_; }
  const std::string& rpc_host() const { return advertise_host_; }
  uint16_t rpc_port() const { return rpc_server_.port(); }

  Status Allocate(void** addr, size_t size, const MemoryOptions& options);
  Status Free(void* addr);
  Status Register(void* addr, size_t size, const MemoryOptions& options);
  // All or none; peers see the new buffers at once.
  Status RegisterBatch(const std::vector<std::pair<void*, size_t>>& buffers,
                       const MemoryOptions& options);
  Status Unregister(void* addr);

  Status OpenSegment(SegmentHandle* handle, const std::string& name);
  Status CloseSegment(SegmentHandle handle);
  Status RefreshSegment(SegmentHandle handle);
  Status GetSegmentInfo(SegmentHandle handle, SegmentInfo* info);

  Status AllocateBatch(size_t max_requests, BatchID* id);
  Status FreeBatch(BatchID id);
  Status Submit(BatchID id, const std::vector<Request>& requests);
  Status TaskStatus(BatchID id, size_t task, TransferStatus* status);
  Status TaskStatuses(BatchID id, std::vector<TransferStatus>* statuses);
  Status BatchStatus(BatchID id, TransferStatus* overall);
  Status WaitBatch(BatchID id, TransferStatus* overall, uint32_t timeout_ms);

  Status SendNotification(SegmentHandle handle, const std::string& message);
  Status ReceiveNotifications(std::vector<Notification>* out);

  std::string PrimaryTransport() const;
  EngineStatistics Statistics() const;

 private:
  struct OpenSegmentState {
    std::string name;
    std::mutex mu;
    std::shared_ptr<const SegmentRoutes> current;  // guarded by mu
    std::string descriptor_tag;                    // of current's descriptor; guarded by mu
    // Set by failed transfers; the next submission queues a background refresh.
    std::shared_ptr<std::atomic<bool>> stale = std::make_shared<std::atomic<bool>>(false);
  };

  SegmentDescriptor LocalDescriptor() const;
  Status Resolve(const std::string& name, SegmentDescriptor* out);
  // Collects every enabled transport that reaches the descriptor.
  // tag: of desc's JSON when it came from LookupIfChanged, else empty.
  Status Bind(SegmentDescriptor desc, OpenSegmentState* state, const std::string& tag = "");
  // Opening and refreshing on request: nothing but a tag travels when the peer's
  // descriptor is unchanged. (Refreshes after failures rebind in full.)
  Status Refresh(OpenSegmentState* state);
  static std::shared_ptr<const SegmentRoutes> RoutesOf(OpenSegmentState* state);
  // Background refresh of segments whose transfers failed: a peer restarted or
  // re-registered under the same name becomes reachable without an explicit refresh.
  void QueueRefresh(const std::shared_ptr<OpenSegmentState>& state);
  void RefreshLoop();
  // Removes shared-memory objects left by engines that died without cleaning up.
  static void RemoveStaleSharedMemory();
  // The local descriptor as JSON with its tag, rebuilt only when buffers changed.
  struct DescriptorText {
    uint64_t version;  // registry version it was built at
    std::string json;
    std::string tag;
  };
  std::shared_ptr<const DescriptorText> CurrentDescriptorText() const;
  Status RpcGetSegment(const std::string& request, std::string* response) const;
  Status Describe(void* addr, size_t size, const MemoryOptions& options, SegmentBuffer* info);
  Status RpcNotify(const std::string& peer, const std::string& request);
  // Tells the metadata backend which buffers were registered or unregistered.
  void PublishChanges(const std::vector<SegmentBuffer>& added,
                      const std::vector<uint64_t>& removed);
  // AlreadyExists when one of infos overlaps another or a registered buffer.
  Status CheckNoOverlap(const std::vector<SegmentBuffer>& infos) const;
  // Lets each transport see a buffer being registered and add its published data.
  Status AnnounceToTransports(SegmentBuffer* info);
  // Unregisters the buffers at bases, tells the transports, then publishes the
  // change; the first error comes back (the others are removed all the same).
  Status RemoveBuffers(const std::vector<uint64_t>& bases);
  // How long unregistering waits for peers' copies into the buffer to finish.
  uint32_t DrainTimeoutMs() const { return config_.transfer_timeout_ms + 1000; }

  Config config_;
  Status init_status_ = Status::FailedPrecondition("engine not initialized");
  std::string segment_name_;
  std::string advertise_host_;
  bool advertise_any_ = false;  // no host configured: advertise_host_ was picked
  std::string bind_host_;
  std::string machine_id_;
  SegmentDescriptor static_descriptor_;  // everything but buffers; fixed after Init
  // Set once Init has filled static_descriptor_; the RPC server runs before that.
  std::atomic<bool> ready_{false};

  BufferRegistry registry_;
  // Serializes registering and unregistering, so each transport's hooks see them in
  // the registry's order (an unregistration holds it while its pins drain).
  std::mutex register_mu_;
  mutable std::mutex descriptor_mu_;
  mutable std::shared_ptr<const DescriptorText> descriptor_text_;  // guarded by descriptor_mu_
  std::mutex alloc_mu_;
  std::map<uintptr_t, Allocation> allocations_;  // guarded by alloc_mu_

  std::unique_ptr<MetadataClient> metadata_;
  RpcServer rpc_server_;
  std::vector<std::unique_ptr<Transport>> transports_;
  std::unique_ptr<EngineMetrics> metrics_;  // indexed like transports_
  MetricsServer metrics_server_;

  ShardedMap<OpenSegmentState> segments_;
  std::atomic<uint64_t> next_segment_{1};
  ShardedMap<Batch> batches_;
  std::atomic<uint64_t> next_batch_{1};

  std::mutex refresh_mu_;
  std::condition_variable refresh_cv_;
  std::deque<std::weak_ptr<OpenSegmentState>> refresh_queue_;  // guarded by refresh_mu_
  bool refresh_stopping_ = false;                              // guarded by refresh_mu_
  std::thread refresher_;

  std::mutex notify_mu_;
  std::deque<Notification> notifications_;  // guarded by notify_mu_
};

}  // namespace te
