#include "engine/batch.h"

#include <thread>

namespace te {

Slice* Task::PrepareSlices(uint32_t count) {
  pending_slices.store(count, std::memory_order_relaxed);
  if (count == 1) return &inline_slice;
  split_slices.reset(new Slice[count]);
  return split_slices.get();
}

TransferStatus Task::Status() const {
  TransferStatus s;
  s.state = state.load(std::memory_order_acquire);
  s.transferred_bytes = transferred.load(std::memory_order_relaxed);
  if (s.state == TransferState::kFailed) s.error = error;
  return s;
}

bool Task::Retry(Slice* slice, const te::Status& status) {
  using Code = te::Status::Code;
  if (status.code() == Code::kCancelled || status.code() == Code::kInvalidArgument ||
      slice->IsCancelled()) {
    return false;
  }
  std::shared_ptr<const SegmentRoutes> routes = this->routes.lock();
  if (!routes) return false;  // the segment was closed or refreshed meanwhile
  const int next = routes->NextRoute(slice->route, slice->local_device,
                                     routes->descriptor->FindBuffer(slice->remote, slice->length));
  if (next < 0) return false;
  slice->route = next;
  const Route& route = routes->routes[static_cast<size_t>(next)];
  transport.store(static_cast<uint32_t>(route.transport_index), std::memory_order_relaxed);
  if (EngineMetrics* metrics = batch->metrics_) {
    metrics->CountRetry(route.transport_index, slice->opcode, slice->length);
  }
  route.peer->Submit(&slice, 1);
  return true;
}

Batch::Batch(size_t capacity, EngineMetrics* metrics)
    : capacity_(capacity), metrics_(metrics), tasks_(new Task[capacity]) {
  for (size_t i = 0; i < capacity; ++i) tasks_[i].batch = this;
}

bool Batch::Reserve(size_t count, size_t* first) {
  if (count > capacity_ - reserved_) return false;
  *first = reserved_;
  reserved_ += count;
  return true;
}

TransferStatus Batch::Overall() const {
  TransferStatus overall;
  overall.state = TransferState::kCompleted;
  bool failed = false;
  const size_t n = size();
  for (size_t i = 0; i < n; ++i) {
    const Task& t = tasks_[i];
    TransferState st = t.state.load(std::memory_order_acquire);
    overall.transferred_bytes += t.transferred.load(std::memory_order_relaxed);
    if (st == TransferState::kPending) {
      overall.state = TransferState::kPending;
    } else if (st == TransferState::kFailed && !failed) {
      failed = true;
      overall.error = "task " + std::to_string(i) + ": " + t.error;
    }
  }
  if (overall.state != TransferState::kPending && failed) overall.state = TransferState::kFailed;
  if (overall.state != TransferState::kFailed) overall.error.clear();
  return overall;
}

void Batch::OnSliceDone(Slice* slice, const te::Status& status) {
  Task* task = static_cast<Task*>(slice->owner);
  if (status.ok()) {
    task->transferred.fetch_add(slice->length, std::memory_order_relaxed);
  } else {
    if (task->segment_stale && status.code() != te::Status::Code::kCancelled) {
      task->segment_stale->store(true, std::memory_order_relaxed);
    }
    if (task->Retry(slice, status)) return;
    if (!task->has_error.exchange(true, std::memory_order_acq_rel)) task->error = status.ToString();
  }
  Batch* batch = task->batch;
  std::shared_ptr<Batch> wake;  // set when a sleeper waits for this completion
  bool batch_done = false;
  if (task->pending_slices.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    task->state.store(task->has_error.load(std::memory_order_acquire) ? TransferState::kFailed
                                                                      : TransferState::kCompleted,
                      std::memory_order_release);
    // seq_cst on both sides: either the sleeper sees this task done, or we see it.
    batch_done = batch->done_tasks_.fetch_add(1, std::memory_order_seq_cst) + 1 == batch->size();
    // Only the last task's completion wakes a sleeper: it waits for Done(), and a
    // wake-up per task (a context switch each) cost a batch of 16 as many.
    if (batch_done && batch->sleepers_.load(std::memory_order_seq_cst) > 0) {
      wake = batch->shared_from_this();
    }
  }
  if (batch->metrics_) batch->CountDone(task, status, batch_done);
  // Last touch of the batch unless `wake` holds it: once in-flight reaches zero,
  // freeBatch may release it. The sleeper is woken only after this, so that it never
  // finds the batch done but still in flight and has to wait in freeBatch.
  batch->in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  if (wake) {
    // Taking the lock orders us after a sleeper that checked Done() but is not yet
    // waiting; notifying after unlocking spares the woken thread blocking on it.
    { std::lock_guard<std::mutex> lock(wake->wait_mu_); }
    wake->task_done_.notify_all();
  }
}

void Batch::CountDone(Task* task, const te::Status& status, bool batch_done) {
  const size_t transport = task->transport.load(std::memory_order_relaxed);
  if (!status.ok()) metrics_->CountFailure(transport, status.code());
  metrics_->AddInFlight(-1);
  if (!metrics_->timing()) return;
  const uint64_t now = EngineMetrics::NowNs();
  metrics_->ObserveSlice(transport, now - task->submitted_ns);
  if (batch_done) {
    metrics_->ObserveBatch(transport, now - started_ns_.load(std::memory_order_relaxed));
  }
}

const Slice* Batch::LoneSlice(std::shared_ptr<const SegmentRoutes>* routes) const {
  // A batch of one request: where the round trip is the latency. The last slice of a
  // larger batch is left to the transport's threads, which are reading anyway; a
  // waiter reading there would make them step aside for the next batch.
  if (size() != 1 || in_flight() != 1) return nullptr;
  const Task& t = tasks_[0];
  if (t.split_slices) return nullptr;
  *routes = t.routes.lock();
  return *routes ? &t.inline_slice : nullptr;
}

void Batch::LeaveUnattended() {
  // Task 0 is set up once size() says so; only its single slice is ever awaited.
  if (size() == 0 || left_unattended_.load(std::memory_order_relaxed) ||
      left_unattended_.exchange(true)) {
    return;
  }
  Task& t = tasks_[0];
  if (!t.inline_slice.awaited.exchange(false)) return;
  if (std::shared_ptr<const SegmentRoutes> routes = t.routes.lock()) {
    // Each route is told: a retry may have moved the slice; only its carrier acts.
    for (const Route& route : routes->routes) route.peer->Unattended(t.inline_slice);
  }
}

bool Batch::WaitDone(std::chrono::steady_clock::time_point deadline, SpinBudget* budget) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto spin_end = std::min(deadline, start + budget->Next());
  // Yielding, not pausing: the threads that finish a small transfer (the receiver, a
  // same-host target) often run on this very CPU, woken by the waiter's own send;
  // a pausing spinner would hold them off until its budget ran out.
  while (!Done() && Clock::now() < spin_end) std::this_thread::yield();
  if (Done()) {
    budget->Learn(true, Clock::now() - start);
    return true;
  }
  budget->Learn(false, std::chrono::nanoseconds(0));
  std::unique_lock<std::mutex> lock(wait_mu_);
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  while (!Done() && task_done_.wait_until(lock, deadline) == std::cv_status::no_timeout) {
  }
  sleepers_.fetch_sub(1, std::memory_order_relaxed);
  return Done();
}
}  // namespace te
