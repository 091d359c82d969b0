// The C++ side of the Python package: objects that own engine resources and give
// them back when Python drops them. Each holds the engine through a shared pointer,
// so the engine outlives every buffer, segment and transfer made from it. Methods
// are called with the GIL held and release it around engine calls that may wait.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "te/transfer_engine.h"
#include "waiting.h"

namespace te::python {

using EnginePtr = std::shared_ptr<TransferEngine>;

// Memory from allocateLocalMemory, registered with one permission. Freed when the
// Python object goes, which cannot happen while a memoryview or numpy array made
// from it lives (they reference it).
class Buffer {
 public:
  Buffer(EnginePtr engine, void* addr, size_t size, bool shm);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return addr_; }
  uint64_t address() const { return reinterpret_cast<uint64_t>(addr_); }
  size_t size() const { return size_; }
  bool shm() const { return shm_; }

 private:
  EnginePtr engine_;
  void* addr_;
  size_t size_;
  bool shm_;
};

// An open peer segment; closed by close() or when Python drops it.
class Segment {
 public:
  Segment(EnginePtr engine, SegmentHandle handle, std::string name);
  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  const std::string& name() const { return name_; }
  SegmentHandle handle() const { return handle_; }
  // Handles are numbers per engine: one from another engine would name some other
  // segment there.
  bool OpenedBy(const EnginePtr& engine) const { return engine_ == engine; }
  SegmentInfo Info() const;
  void Refresh();
  void Close();

 private:
  Status CloseOnce();

  EnginePtr engine_;
  const SegmentHandle handle_;
  const std::string name_;
  std::atomic<bool> closed_{false};
};

// One request as Python builds it; it keeps its segment open.
struct RequestSpec {
  Request::OpCode opcode = Request::READ;
  std::shared_ptr<Segment> segment;
  uint64_t local = 0;
  uint64_t remote = 0;
  uint64_t length = 0;
};

// A submitted batch. Once no task is pending, the final statuses are kept and the
// batch is freed; a future dropped before that frees the batch at once (unsent
// requests are cancelled, and no byte lands after the drop returns).
class TransferFuture {
 public:
  // Submits `requests` as one batch; throws StatusError when they are invalid.
  TransferFuture(EnginePtr engine, const std::vector<RequestSpec>& requests);
  ~TransferFuture();
  TransferFuture(const TransferFuture&) = delete;
  TransferFuture& operator=(const TransferFuture&) = delete;

  BatchID id() const { return batch_; }
  size_t size() const { return size_; }
  // Never blocks.
  bool Done();
  // Blocks (GIL released) until every task ended or the timeout passed.
  WaitResult Wait(std::optional<double> timeout_s);
  // After Done(): the bytes moved, or StatusError for the first failed task.
  uint64_t Result();
  // Per task, live while pending, final afterwards.
  std::vector<TransferStatus> Statuses();

 private:
  bool Poll();
  // Waits in the engine (waitTransferStatus) for up to `slice`: a batch of one small
  // request then has its response read by this very thread. True once finished.
  bool WaitSlice(std::chrono::milliseconds slice);
  // After a status read that was not pending: finishes the future (once).
  bool Settle(const Status& status);
  void FinishLocked();

  EnginePtr engine_;
  BatchID batch_ = 0;
  size_t size_ = 0;
  std::vector<std::shared_ptr<Segment>> segments_;  // released when finished
  // Taken only without the GIL: a thread holding it may need the GIL (warnings).
  std::mutex mu_;
  std::atomic<bool> finished_{false};
  std::vector<TransferStatus> final_;  // written once under mu_, before finished_
};

// The engine object of the module.
class Engine {
 public:
  // Config: the environment (TE_*) if from_env, then config_file if not empty, then
  // the fields of config_json. Throws StatusError when the engine cannot start.
  Engine(bool from_env, const std::string& config_file, const std::string& config_json);

  std::string segment_name() const;
  std::string rpc_address() const;
  uint16_t rpc_port() const;
  std::string primary_transport() const;
  EngineStatistics Statistics() const;

  std::shared_ptr<Buffer> Allocate(size_t size, bool shm, Permission permission,
                                   const std::string& location);
  void Register(uint64_t addr, uint64_t size, Permission permission, const std::string& location);
  // All or none, one descriptor update.
  void RegisterBatch(const std::vector<uint64_t>& addrs, const std::vector<uint64_t>& sizes,
                     Permission permission, const std::string& location);
  void Unregister(uint64_t addr);

  std::shared_ptr<Segment> OpenSegment(const std::string& name);

  std::shared_ptr<TransferFuture> Submit(const std::vector<RequestSpec>& requests);
  // Submits and waits; returns the bytes moved.
  uint64_t Transfer(const std::vector<RequestSpec>& requests);

  void Notify(const Segment& segment, const std::string& message);
  // Queued notifications; waits up to timeout_s for the first when there are none.
  std::vector<Notification> Notifications(double timeout_s);

  // Drops this object's hold on the engine: it stops once the buffers, segments and
  // transfers made from it are gone too. Later calls raise FailedPrecondition.
  void Close();

 private:
  // A reference for one call: Close() from another thread cannot pull the engine
  // from under a call that released the GIL.
  EnginePtr Get() const;

  EnginePtr engine_;
};

}  // namespace te::python
