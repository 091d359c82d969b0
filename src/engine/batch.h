// Batch and Task: completion tracking for submitted requests. A task completes when
// all its slices are done; the first failing slice's error is kept. Slices report
// through OnSliceDone from transport threads; status reads are lock-free. A waiting
// caller spins briefly, then sleeps until a task completes; completions look for
// sleepers with one load and take a lock only when there is one.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "engine/routes.h"
#include "metrics/engine_metrics.h"
#include "te/types.h"
#include "transport/transport.h"

namespace te {

class Batch;

// How long a waiter spins before it sleeps, learnt per waiting thread. Spinning
// catches a short transfer without the sleep and wake-up (each a system call and a
// context switch), but for a long transfer, or on a busy machine, it only burns CPU
// that other threads could use. So a wait that ended while spinning keeps a budget of
// twice what it took, one that had to sleep halves it, and every 32nd wait spins the
// full budget again to see whether spinning pays once more.
class SpinBudget {
 public:
  static constexpr std::chrono::nanoseconds kMax = std::chrono::microseconds(50);
  static constexpr uint32_t kProbeEvery = 32;

  // The budget for the next wait.
  std::chrono::nanoseconds Next() { return ++waits_ % kProbeEvery == 0 ? kMax : budget_; }
  // What that wait found: done after `took` while spinning (`caught`), or not.
  void Learn(bool caught, std::chrono::nanoseconds took) {
    budget_ = caught ? std::min(kMax, std::max(budget_, 2 * took)) : budget_ / 2;
  }

 private:
  std::chrono::nanoseconds budget_ = kMax;
  uint32_t waits_ = 0;
};

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
  // For the metrics: the transport (index) carrying the task's slices, moved by
  // retries, and when it was submitted (EngineMetrics::NowNs, while timing).
  std::atomic<uint32_t> transport{0};
  uint64_t submitted_ns = 0;

  // Prepares `count` slices owned by this task and returns them.
  Slice* PrepareSlices(uint32_t count);
  TransferStatus Status() const;

 private:
  friend class Batch;
  // Resubmits a failed slice on the next route; false when there is none or the
  // failure would repeat on any transport.
  bool Retry(Slice* slice, const te::Status& status);
};

// Lives in a shared_ptr: a completion that wakes a sleeper keeps the batch alive
// past its last in-flight decrement.
class Batch : public std::enable_shared_from_this<Batch> {
 public:
  // metrics (optional) receive slices in flight, retries, failures and latencies.
  explicit Batch(size_t capacity, EngineMetrics* metrics = nullptr);
  size_t capacity() const { return capacity_; }
  size_t size() const { return size_.load(std::memory_order_acquire); }
  Task& task(size_t i) { return tasks_[i]; }
  const Task& task(size_t i) const { return tasks_[i]; }

  // Claims `count` task slots; false when the batch would exceed its capacity.
  // Call Publish once the tasks are set up so readers see them.
  bool Reserve(size_t count, size_t* first);
  void Publish(size_t end) { size_.store(end, std::memory_order_release); }
  void Unreserve(size_t first) { reserved_ = first; }

  void AddInFlight(int64_t slices) {
    in_flight_.fetch_add(slices, std::memory_order_relaxed);
    if (metrics_) metrics_->AddInFlight(slices);
  }
  // A submission at now_ns starts the batch's latency unless it was still busy.
  void MarkSubmitted(uint64_t now_ns) {
    if (Done()) started_ns_.store(now_ns, std::memory_order_relaxed);
  }
  int64_t in_flight() const { return in_flight_.load(std::memory_order_acquire); }
  const std::atomic<bool>* cancel_flag() const { return &cancelled_; }
  void Cancel() { cancelled_.store(true); }

  // The overall state: pending while any task is, failed if any failed.
  TransferStatus Overall() const;
  // The slice in flight of a batch of one single-slice request, with the routes of
  // its segment; else nullptr. Only for a thread that keeps the batch alive.
  const Slice* LoneSlice(std::shared_ptr<const SegmentRoutes>* routes) const;
  // For a thread that will not receive the lone slice's response itself (a status
  // read, a wait that could not, freeBatch): if the slice was submitted as awaited
  // (Slice::awaited), its transport is told to receive it (TransportPeer::Unattended).
  // Once per batch; a load after that.
  void LeaveUnattended();
  // True once every published task is done.
  bool Done() const {
    return done_tasks_.load(std::memory_order_seq_cst) >= size_.load(std::memory_order_acquire);
  }
  // Waits until Done() or `deadline`: spinning (yielding the CPU) for up to the
  // budget's next spin, then sleeping until a task completes. Returns Done().
  bool WaitDone(std::chrono::steady_clock::time_point deadline, SpinBudget* budget);

  // Transport callback for slices owned by this batch's tasks.
  static void OnSliceDone(Slice* slice, const te::Status& status);

  std::mutex submit_mu;  // serializes submissions to this batch only

 private:
  friend struct Task;  // Task::Retry counts into metrics_
  // The metrics of a slice done for good: failure, latencies, in flight.
  void CountDone(Task* task, const te::Status& status, bool batch_done);
  const size_t capacity_;
  EngineMetrics* const metrics_;
  std::atomic<uint64_t> started_ns_{0};  // see MarkSubmitted
  std::unique_ptr<Task[]> tasks_;
  size_t reserved_ = 0;  // guarded by submit_mu
  std::atomic<size_t> size_{0};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> left_unattended_{false};  // see LeaveUnattended
  std::atomic<size_t> done_tasks_{0};
  std::atomic<uint32_t> sleepers_{0};  // threads in WaitDone's sleeping phase
  std::mutex wait_mu_;
  std::condition_variable task_done_;
};

}  // namespace te
