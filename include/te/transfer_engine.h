// TransferEngine: moves bytes between registered memory of this process and the
// segments of peers. One engine per process is the intended use; every method is
// thread-safe, and none blocks on the network except openSegment/refreshSegment and
// sendNotification (bounded by connect_timeout_ms), and waitTransferStatus, which
// waits for transfers by design (bounded by its timeout).
//
//   te::TransferEngine engine(config);
//   if (!engine.available()) { ... engine.status() says why ... }
//   engine.allocateLocalMemory(&buf, size);  engine.registerLocalMemory(buf, size);
//   engine.openSegment(&seg, "10.0.0.2:17000");
//   engine.allocateBatch(16, &batch);  engine.submitTransfer(batch, requests);
//   ... poll engine.getTransferStatus(batch, &overall) until not kPending, or
//       engine.waitTransferStatus(batch, &overall, timeout_ms) ...
//   engine.freeBatch(batch);
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "te/config.h"
#include "te/status.h"
#include "te/types.h"

namespace te {

class EngineImpl;

class TransferEngine {
 public:
  // Starts the RPC server and transports and publishes the local segment.
  explicit TransferEngine(const Config& config);
  // Config from the environment (see Config::FromEnv).
  TransferEngine();
  // Unpublishes the segment, fails what is in flight, frees allocated memory.
  ~TransferEngine();
  TransferEngine(const TransferEngine&) = delete;
  TransferEngine& operator=(const TransferEngine&) = delete;

  // False when construction failed; status() then says why.
  bool available() const;
  Status status() const;

  const std::string& getSegmentName() const;
  const std::string& getRpcAddress() const;  // advertised host
  uint16_t getRpcPort() const;

  // Page-aligned DRAM (in POSIX shared memory with options.shm), zeroed and resident
  // (prefaulted) so transfers take no page faults. Not registered: call
  // registerLocalMemory to expose it.
  Status allocateLocalMemory(void** addr, size_t size, const MemoryOptions& options = {});
  // Frees memory from allocateLocalMemory, unregistering it first if needed.
  Status freeLocalMemory(void* addr);

  // Makes [addr, addr+size) usable in transfers with options.permission. Overlapping
  // an existing registration is kAlreadyExists.
  Status registerLocalMemory(void* addr, size_t size, const MemoryOptions& options = {});
  // Registers every (addr, size) with the same options, all or none; peers see them
  // at once. The way to register thousands of buffers (one descriptor update).
  Status registerLocalMemoryBatch(const std::vector<std::pair<void*, size_t>>& buffers,
                                  const MemoryOptions& options = {});
  // Waits for peers' requests touching the buffer to finish; later ones fail.
  Status unregisterLocalMemory(void* addr);

  // Looks the segment up (p2p: asks "host:port") and caches its descriptor.
  // Opening this engine's own name gives an in-process handle.
  Status openSegment(SegmentHandle* handle, const std::string& name);
  Status closeSegment(SegmentHandle handle);
  // Fetches the descriptor again (new or removed buffers become visible).
  Status refreshSegment(SegmentHandle handle);
  Status getSegmentInfo(SegmentHandle handle, SegmentInfo* info);

  // A batch holds up to max_requests tasks over its life.
  Status allocateBatch(size_t max_requests, BatchID* batch_id);
  // Cancels what has not been sent, waits (bounded by transfer_timeout_ms) for what
  // is on the wire so no byte lands after return, then releases the batch.
  Status freeBatch(BatchID batch_id);
  // Validates and queues requests; returns without waiting for the network. Task ids
  // continue from the batch's previous submissions. Invalid requests fail the whole
  // call and queue nothing.
  Status submitTransfer(BatchID batch_id, const std::vector<Request>& requests);
  // Never blocks.
  Status getTransferStatus(BatchID batch_id, size_t task_id, TransferStatus* status);
  Status getTransferStatus(BatchID batch_id, std::vector<TransferStatus>* statuses);
  // Overall: kPending while any task is, else kFailed if any failed, else kCompleted;
  // transferred_bytes is the sum over tasks.
  Status getTransferStatus(BatchID batch_id, TransferStatus* overall);
  // Like the overall getTransferStatus, but first waits until no task is pending or
  // timeout_ms passed (then the state is still kPending). It spins for about a round
  // trip, then sleeps until a task completes: a waiting caller burns no core.
  Status waitTransferStatus(BatchID batch_id, TransferStatus* overall, uint32_t timeout_ms);

  // Delivers message to the segment's engine; it is queued there until received.
  Status sendNotification(SegmentHandle handle, const std::string& message);
  // Appends and removes all queued notifications.
  Status receiveNotification(std::vector<Notification>* notifications);

  // Name of the transport that carried most of the traffic so far ("tcp", "local").
  std::string primaryTransport() const;
  // Counters since the engine started (bytes per transport, retries).
  Status getStatistics(EngineStatistics* statistics) const;

 private:
  std::unique_ptr<EngineImpl> impl_;
};

}  // namespace te
