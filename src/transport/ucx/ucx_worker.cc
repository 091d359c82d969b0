#include "transport/ucx/ucx_worker.h"

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "common/logging.h"

namespace te {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The worker whose thread this is: UCX callbacks carry only their request and data.
thread_local UcxWorker* current_worker = nullptr;

// How long a stopping worker waits for UCX to finish closing its endpoints.
constexpr int64_t kShutdownNs = 2'000'000'000;
// ucp_worker_progress calls between looks at the queue.
constexpr int kProgressRounds = 64;
// Unpacked rkeys kept per endpoint (one per remote buffer used).
constexpr size_t kMaxRemoteKeys = 4096;

}  // namespace

Status UcxStatus(std::string_view what, ucs_status_t status) {
  std::string message = std::string(what) + ": " + ucs_status_string(status);
  switch (status) {
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_REJECTED:
      return Status::Unavailable(message);
    case UCS_ERR_CANCELED:
      return Status::Cancelled(message);
    case UCS_ERR_TIMED_OUT:
      return Status::Timeout(message);
    case UCS_ERR_NO_MEMORY:
    case UCS_ERR_NO_RESOURCE:
      return Status::ResourceExhausted(message);
    case UCS_ERR_INVALID_PARAM:
      return Status::InvalidArgument(message);
    case UCS_ERR_UNSUPPORTED:
      return Status::NotSupported(message);
    default:
      return Status::IoError(message);
  }
}

Status UcxWorker::Start(ucp_context_h context, const UcxOptions& options) {
  timeout_ns_ = int64_t{options.transfer_timeout_ms} * 1'000'000;
  busy_poll_ns_ = int64_t{options.busy_poll_us} * 1'000;
  ucp_worker_params_t params{};
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  params.thread_mode = UCS_THREAD_MODE_SINGLE;  // only our thread touches it
  ucs_status_t status = ucp_worker_create(context, &params, &worker_);
  if (status != UCS_OK) return UcxStatus("ucx: ucp_worker_create", status);
  ucp_address_t* address = nullptr;
  size_t length = 0;
  status = ucp_worker_get_address(worker_, &address, &length);
  if (status != UCS_OK) return UcxStatus("ucx: ucp_worker_get_address", status);
  address_.assign(reinterpret_cast<const char*>(address), length);
  ucp_worker_release_address(worker_, address);
  status = ucp_worker_get_efd(worker_, &event_fd_);
  if (status != UCS_OK) return UcxStatus("ucx: ucp_worker_get_efd", status);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (wake_fd_ < 0 || epoll_fd_ < 0) return Status::FromErrno("ucx: eventfd/epoll", errno);
  for (int fd : {event_fd_, wake_fd_}) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0)
      return Status::FromErrno("ucx: epoll_ctl", errno);
  }
  thread_ = std::thread([this] { Run(); });
  return Status::OK();
}

void UcxWorker::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    queued_.store(true, std::memory_order_release);  // a polling thread looks then
  }
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (worker_) ucp_worker_destroy(worker_);
  worker_ = nullptr;
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  epoll_fd_ = wake_fd_ = -1;
}

void UcxWorker::Post(const std::shared_ptr<UcxEndpointState>& ep, UcxOp* const* ops, size_t count) {
  if (count == 0) return;
  for (size_t i = 0; i + 1 < count; ++i) ops[i]->next = ops[i + 1];
  ops[count - 1]->next = nullptr;
  Enqueue({ep, ops[0]});
}

void UcxWorker::Release(const std::shared_ptr<UcxEndpointState>& ep) { Enqueue({ep, nullptr}); }

void UcxWorker::Enqueue(Command command) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      queue_.push_back(std::move(command));
      // Only a sleeping thread needs the fd; under mu_, so Stop cannot close it in
      // between. A polling one sees the flag.
      if (sleeping_) {
        sleeping_ = false;
        uint64_t one = 1;
        (void)!write(wake_fd_, &one, sizeof(one));
      }
      queued_.store(true, std::memory_order_release);
      return;
    }
  }
  // Stopped: the thread is gone, so the ops fail here.
  for (UcxOp* op = command.ops; op;) {
    UcxOp* next = op->next;
    op->done(op, Status::Cancelled("ucx: the UCX context was stopped"));
    op = next;
  }
}

void UcxWorker::Run() {
  current_worker = this;
  int64_t poll_until_ns = 0;
  bool active = false;
  while (RunCommands(&active)) {
    // Bounded, so queued work is not starved while traffic flows.
    for (int i = 0; i < kProgressRounds && ucp_worker_progress(worker_) != 0; ++i) active = true;
    Sweep();
    int timeout_ms = ExpireDeadlines();
    if (timeout_ms == 0) continue;
    if (busy_poll_ns_ > 0) {
      int64_t now = NowNs();
      if (active) poll_until_ns = now + busy_poll_ns_;
      if (now < poll_until_ns) {
        sched_yield();  // the CPU's other threads (the target's, the caller) go first
        continue;
      }
    }
    Sleep(timeout_ms);
  }
  Shutdown();
}

void UcxWorker::Sleep(int timeout_ms) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!queue_.empty() || stopping_) return;
    sleeping_ = true;
  }
  // Arming fails with BUSY when events are pending: progress again instead.
  int n = 0;
  epoll_event events[2];
  if (ucp_worker_arm(worker_) != UCS_ERR_BUSY) n = epoll_wait(epoll_fd_, events, 2, timeout_ms);
  {
    std::lock_guard<std::mutex> lock(mu_);
    sleeping_ = false;
  }
  for (int i = 0; i < n; ++i) {
    if (events[i].data.fd != wake_fd_) continue;
    uint64_t count;
    (void)!read(wake_fd_, &count, sizeof(count));
  }
}

bool UcxWorker::RunCommands(bool* ran) {
  *ran = false;
  // Without the lock while nothing is queued: a polling thread taking mu_ on every
  // round would make posters (and itself) wait on it.
  if (!queued_.load(std::memory_order_acquire)) return true;
  std::vector<Command> commands;
  bool stopping;
  {
    std::lock_guard<std::mutex> lock(mu_);
    commands.swap(queue_);
    queued_.store(false, std::memory_order_relaxed);
    stopping = stopping_;
  }
  *ran = !commands.empty();
  for (Command& command : commands) {
    if (command.ops) {
      if (stopping && !command.ep->failed.load())
        Fail(command.ep.get(), Status::Cancelled("ucx: the UCX context was stopped"));
      Submit(command.ep, command.ops);
    } else {
      command.ep->released = true;
    }
  }
  return !stopping;
}

int UcxWorker::ExpireDeadlines() {
  int64_t now = NowNs();
  int64_t next = -1;
  for (const auto& ep : endpoints_) {
    if (ep->closing) {
      int64_t left = std::max<int64_t>(ep->close_deadline_ns - now, 0);
      if (next < 0 || left < next) next = left;
    }
    if (!ep->head || ep->failed.load(std::memory_order_relaxed)) continue;
    // Progress counts: a long queue behind a busy link is not a dead peer.
    int64_t left = std::max(ep->head->deadline_ns, ep->progress_ns + timeout_ns_) - now;
    if (left <= 0) {
      Fail(ep.get(), Status::Timeout("ucx: no completion within transfer_timeout_ms (" +
                                     std::to_string(timeout_ns_ / 1'000'000) + " ms)"));
      return 0;  // Sweep closes it; come back at once
    }
    if (next < 0 || left < next) next = left;
  }
  return next < 0 ? -1 : static_cast<int>((next + 999'999) / 1'000'000);
}

bool UcxWorker::Open(const std::shared_ptr<UcxEndpointState>& ep) {
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.address = reinterpret_cast<const ucp_address_t*>(ep->peer_address.data());
  params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  params.err_handler.cb = &UcxWorker::OnEndpointError;
  params.err_handler.arg = ep.get();
  ucs_status_t status = ucp_ep_create(worker_, &params, &ep->ep);
  if (status == UCS_ERR_UNREACHABLE) {
    // UCX 1.13's shared-memory transports (posix, sysv) cannot report a peer's
    // failure, so PEER mode finds no lane there; without it, only the deadline
    // notices a dead peer.
    TE_LOG(Info) << "ucx: no lane with peer failure handling; a dead peer is found by "
                    "transfer_timeout_ms only";
    params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
    status = ucp_ep_create(worker_, &params, &ep->ep);
  }
  if (status != UCS_OK) {
    ep->ep = nullptr;
    Fail(ep.get(), UcxStatus("ucx: ucp_ep_create", status));
    return false;
  }
  endpoints_.push_back(ep);
  return true;
}

ucp_rkey_h UcxWorker::RemoteKey(UcxEndpointState* ep, std::string_view packed, Status* status) {
  auto it = ep->rkeys.find(packed);
  if (it != ep->rkeys.end()) return it->second;
  // Bounded: a peer that maps and unmaps buffers forever would grow the cache. It is
  // emptied only while nothing is in flight, as posted operations use their rkeys.
  if (ep->rkeys.size() >= kMaxRemoteKeys && !ep->head) DestroyRemoteKeys(ep);
  ucp_rkey_h rkey = nullptr;
  ucs_status_t result = ucp_ep_rkey_unpack(ep->ep, packed.data(), &rkey);
  if (result != UCS_OK) {
    *status = UcxStatus("ucx: the peer's rkey does not unpack", result);
    return nullptr;
  }
  ep->rkeys.emplace(std::string(packed), rkey);
  return rkey;
}

// GETs go out one by one; PUTs complete locally, so one flush after them (its
// completion: all have reached the peer) completes them all.
void UcxWorker::Submit(const std::shared_ptr<UcxEndpointState>& ep, UcxOp* ops) {
  std::vector<UcxOp*> puts;
  for (UcxOp* op = ops; op;) {
    UcxOp* next = op->next;
    op->endpoint = ep.get();
    if (ep->failed.load(std::memory_order_relaxed) || (!ep->ep && !Open(ep))) {
      op->done(op, ep->failure);
    } else {
      Status status;
      ucp_rkey_h rkey = RemoteKey(ep.get(), op->rkey, &status);
      if (!rkey) {
        op->done(op, status);
      } else if (op->kind == UcxOp::kGet) {
        PostGet(ep.get(), op, rkey);
      } else if (PostPut(ep.get(), op, rkey)) {
        puts.push_back(op);
      }
    }
    op = next;
  }
  if (!puts.empty()) Flush(ep.get(), puts);
}

void UcxWorker::PostGet(UcxEndpointState* ep, UcxOp* op, ucp_rkey_h rkey) {
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = &UcxWorker::OnGet;
  param.user_data = op;
  ucs_status_ptr_t request = ucp_get_nbx(ep->ep, op->local, op->length, op->remote, rkey, &param);
  if (request == nullptr) {
    op->done(op, Status::OK());
  } else if (UCS_PTR_IS_ERR(request)) {
    op->done(op, UcxStatus("ucx: ucp_get_nbx", UCS_PTR_STATUS(request)));
  } else {
    Link(ep, op, request);
  }
}

bool UcxWorker::PostPut(UcxEndpointState* ep, UcxOp* op, ucp_rkey_h rkey) {
  ucp_request_param_t param{};
  ucs_status_ptr_t request = ucp_put_nbx(ep->ep, op->local, op->length, op->remote, rkey, &param);
  if (UCS_PTR_IS_ERR(request)) {
    op->done(op, UcxStatus("ucx: ucp_put_nbx", UCS_PTR_STATUS(request)));
    return false;
  }
  // The flush reports the outcome; a request still in progress is freed by UCX
  // once it completes.
  if (request != nullptr) ucp_request_free(request);
  return true;
}

void UcxWorker::Flush(UcxEndpointState* ep, const std::vector<UcxOp*>& puts) {
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = &UcxWorker::OnFlush;
  param.user_data = puts[0];
  ucs_status_ptr_t request = ucp_ep_flush_nbx(ep->ep, &param);
  if (request == nullptr || UCS_PTR_IS_ERR(request)) {
    Status status =
        request ? UcxStatus("ucx: ucp_ep_flush_nbx", UCS_PTR_STATUS(request)) : Status::OK();
    for (UcxOp* op : puts) op->done(op, status);
    return;
  }
  // Linked together, so the callback finds the group from its first op.
  for (UcxOp* op : puts) Link(ep, op, request);
}

void UcxWorker::Link(UcxEndpointState* ep, UcxOp* op, void* request) {
  op->request = request;
  op->deadline_ns = NowNs() + timeout_ns_;
  op->prev = ep->tail;
  op->next = nullptr;
  (ep->tail ? ep->tail->next : ep->head) = op;
  ep->tail = op;
}

void UcxWorker::Unlink(UcxEndpointState* ep, UcxOp* op) {
  (op->prev ? op->prev->next : ep->head) = op->next;
  (op->next ? op->next->prev : ep->tail) = op->prev;
  op->prev = op->next = nullptr;
}

void UcxWorker::Complete(UcxOp* op, ucs_status_t status) {
  auto* ep = static_cast<UcxEndpointState*>(op->endpoint);
  Unlink(ep, op);
  ep->progress_ns = NowNs();
  Status result;
  if (status != UCS_OK)
    result = ep->failure.ok() ? UcxStatus("ucx: transfer failed", status) : ep->failure;
  op->done(op, result);
}

void UcxWorker::DestroyRemoteKeys(UcxEndpointState* ep) {
  for (auto& [packed, rkey] : ep->rkeys) ucp_rkey_destroy(rkey);
  ep->rkeys.clear();
}

bool UcxWorker::Orphaned(void* request) {
  if (orphans_.empty() || orphans_.erase(request) == 0) return false;
  ucp_request_free(request);
  return true;
}

void UcxWorker::OnGet(void* request, ucs_status_t status, void* user_data) {
  if (current_worker->Orphaned(request)) return;
  Complete(static_cast<UcxOp*>(user_data), status);
  ucp_request_free(request);
}

void UcxWorker::OnFlush(void* request, ucs_status_t status, void* user_data) {
  if (current_worker->Orphaned(request)) return;
  auto* first = static_cast<UcxOp*>(user_data);
  UcxOp* op = first;
  while (op && op->request == request) {
    UcxOp* next = op->next;
    Complete(op, status);
    op = next;
  }
  ucp_request_free(request);
}

void UcxWorker::OnEndpointError(void* arg, ucp_ep_h, ucs_status_t status) {
  auto* ep = static_cast<UcxEndpointState*>(arg);
  TE_LOG(Warning) << "ucx: endpoint failed: " << ucs_status_string(status);
  ep->worker->Fail(ep, UcxStatus("ucx: the peer is unreachable", status));
}

void UcxWorker::Fail(UcxEndpointState* ep, const Status& status) {
  if (ep->failed.load(std::memory_order_relaxed)) return;
  ep->failure = status;
  ep->failed.store(true, std::memory_order_release);
}

void UcxWorker::Sweep() {
  for (size_t i = 0; i < endpoints_.size();) {
    if (SweepOne(endpoints_[i].get())) {
      endpoints_[i] = std::move(endpoints_.back());
      endpoints_.pop_back();
    } else {
      ++i;
    }
  }
}

bool UcxWorker::SweepOne(UcxEndpointState* ep) {
  bool failed = ep->failed.load(std::memory_order_relaxed);
  if (ep->ep && (failed || (ep->released && !ep->head))) {
    // Forced: a peer that died would never confirm. In PEER mode UCX completes
    // what is still in flight on the endpoint with an error.
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = UCP_EP_CLOSE_FLAG_FORCE;
    ucs_status_ptr_t request = ucp_ep_close_nbx(ep->ep, &param);
    ep->ep = nullptr;
    if (UCS_PTR_IS_PTR(request)) ep->closing = request;
    ep->close_deadline_ns = NowNs() + timeout_ns_;
  }
  if (ep->closing) {
    if (ucp_request_check_status(ep->closing) != UCS_INPROGRESS) {
      ucp_request_free(ep->closing);
    } else if (NowNs() < ep->close_deadline_ns) {
      return false;
    } else {
      // A close that never ends must not hold the endpoint's operations: leave the
      // request to UCX (freed with the worker) and fail them below.
      TE_LOG(Warning) << "ucx: closing an endpoint did not complete in transfer_timeout_ms";
    }
    ep->closing = nullptr;
  }
  if (ep->ep) return false;
  // Closed. Whatever UCX did not complete, we fail; its callback would find it gone.
  while (UcxOp* op = ep->head) {
    orphans_.insert(op->request);
    Unlink(ep, op);
    op->done(op, ep->failure.ok() ? Status::Cancelled("ucx: endpoint closed") : ep->failure);
  }
  DestroyRemoteKeys(ep);
  return true;
}

void UcxWorker::Shutdown() {
  // Nothing is queued: Run leaves its loop only from a RunCommands that saw stopping_
  // and ran (failing) the whole queue, and Enqueue fails ops itself after that.
  for (const auto& ep : endpoints_)
    Fail(ep.get(), Status::Cancelled("ucx: the UCX context was stopped"));
  int64_t give_up = NowNs() + kShutdownNs;
  while (!endpoints_.empty() && NowNs() < give_up) {
    ucp_worker_progress(worker_);
    Sweep();
  }
  for (const auto& ep : endpoints_) {
    while (UcxOp* op = ep->head) {
      orphans_.insert(op->request);
      Unlink(ep.get(), op);
      op->done(op, ep->failure);
    }
    DestroyRemoteKeys(ep.get());
  }
  endpoints_.clear();
  // Here, not in Stop: callbacks UCX may still run while destroying find this thread's
  // orphans.
  ucp_worker_destroy(worker_);
  worker_ = nullptr;
}

}  // namespace te
