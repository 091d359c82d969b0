// Batch and Task: completion tracking for submitted requests. A task completes when
// all its slices are done; the first failing slice's error is kept. Slices report
// through OnSliceDone from transport threads; status reads are lock-free.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "engine/routes.h"
#include "te/types.h"
#include "transport/transport.h"

namespace te {

class Batch;

struct Task {
  std::atomic<uint32_t> pending_slices{0};
  std::atomic<uint64_t> transferred{0};
  std::atomic<TransferState> state{TransferState::kPending};
  std::atomic<bool> has_error{false};
  std::string error;  // written once, by the slice that set has_error
  Batch* batch = nullptr;
  Slice inline_slice;  // the common case: a request that is not split
  std::unique_ptr<Slice[]> split_slices;
  // Raised when a slice fails (other than by cancellation): the target segment's
  // cached descriptor may be out of date.
  std::shared_ptr<std::atomic<bool>> segment_stale;
  // The target's routes when submitted: a failed slice moves to the next one that
  // can serve it before the task is failed. Weak: closing the segment (or the engine)
  // must still destroy its transport peers, which fail what they hold.
  std::weak_ptr<const SegmentRoutes> routes;

  // Prepares `count` slices owned by this task and returns them.
  Slice* PrepareSlices(uint32_t count);
  TransferStatus Status() const;

 private:
  friend class Batch;
  // Resubmits a failed slice on the next route; false when there is none or the
  // failure would repeat on any transport.
  bool Retry(Slice* slice, const te::Status& status);
};

class Batch {
 public:
  // counters (optional) receive retried slices and their bytes.
  explicit Batch(size_t capacity, EngineCounters* counters = nullptr);
  size_t capacity() const { return capacity_; }
  size_t size() const { return size_.load(std::memory_order_acquire); }
  Task& task(size_t i) { return tasks_[i]; }
  const Task& task(size_t i) const { return tasks_[i]; }

  // Claims `count` task slots; false when the batch would exceed its capacity.
  // Call Publish once the tasks are set up so readers see them.
  bool Reserve(size_t count, size_t* first);
  void Publish(size_t end) { size_.store(end, std::memory_order_release); }
  void Unreserve(size_t first) { reserved_ = first; }

  void AddInFlight(int64_t slices) { in_flight_.fetch_add(slices, std::memory_order_relaxed); }
  int64_t in_flight() const { return in_flight_.load(std::memory_order_acquire); }
  const std::atomic<bool>* cancel_flag() const { return &cancelled_; }
  void Cancel() { cancelled_.store(true); }

  // The overall state: pending while any task is, failed if any failed.
  TransferStatus Overall() const;

  // Transport callback for slices owned by this batch's tasks.
  static void OnSliceDone(Slice* slice, const te::Status& status);

  std::mutex submit_mu;  // serializes submissions to this batch only

 private:
  friend struct Task;  // Task::Retry counts into counters_
  const size_t capacity_;
  EngineCounters* const counters_;
  std::unique_ptr<Task[]> tasks_;
  size_t reserved_ = 0;  // guarded by submit_mu
  std::atomic<size_t> size_{0};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<bool> cancelled_{false};
};

}  // namespace te
