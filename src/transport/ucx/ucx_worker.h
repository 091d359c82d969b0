// A UCP worker and the one thread that progresses it (internal to the UCX layer).
// The thread sleeps in epoll on the worker's event fd and an eventfd that callers
// write after queueing work, so an idle worker costs no CPU; after progress it first
// polls for busy_poll_us, since waking a sleeping thread costs more (tens of
// microseconds, more on a VM) than the gap between operations under load. Everything
// UCX is done on that thread; its state below is that thread's alone unless marked
// otherwise.
#pragma once

#include <ucp/api/ucp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "transport/ucx/ucx_context.h"

namespace te {

class UcxWorker;

// Lets the rkey cache be searched with a string_view.
struct UcxStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// One endpoint's state, shared by the caller's handle and the worker.
struct UcxEndpointState {
  std::shared_ptr<UcxWorker> worker;
  std::string peer_address;
  std::atomic<bool> failed{false};  // set by the worker thread, read by anyone
  // The worker thread's alone:
  ucp_ep_h ep = nullptr;
  void* closing = nullptr;  // its ucp_ep_close_nbx request, until complete
  int64_t close_deadline_ns = 0;
  bool released = false;  // the caller dropped its handle
  Status failure;         // why it failed: what later ops report
  std::unordered_map<std::string, ucp_rkey_h, UcxStringHash, std::equal_to<>> rkeys;
  int64_t progress_ns = 0;  // when an operation last completed
  UcxOp* head = nullptr;    // in flight, oldest first (deadlines ascend)
  UcxOp* tail = nullptr;
};

// A Status for a failed UCX call: "<what>: <UCX's words>".
Status UcxStatus(std::string_view what, ucs_status_t status);

class UcxWorker {
 public:
  UcxWorker() = default;
  ~UcxWorker() { Stop(); }
  UcxWorker(const UcxWorker&) = delete;
  UcxWorker& operator=(const UcxWorker&) = delete;

  Status Start(ucp_context_h context, const UcxOptions& options);
  // Fails what is in flight and queued (Cancelled), closes the endpoints, joins the
  // thread and destroys the UCP worker; later Posts fail at once.
  void Stop();
  const std::string& address() const { return address_; }

  // Any thread: queue work for the worker thread.
  void Post(const std::shared_ptr<UcxEndpointState>& ep, UcxOp* const* ops, size_t count);
  void Release(const std::shared_ptr<UcxEndpointState>& ep);

 private:
  struct Command {
    std::shared_ptr<UcxEndpointState> ep;
    UcxOp* ops = nullptr;  // a chain through UcxOp::next; null: release ep
  };

  void Enqueue(Command command);
  void Run();
  // Runs the queued commands; false once stopping. *ran: whether there were any.
  bool RunCommands(bool* ran);
  void Sleep(int timeout_ms);
  // Milliseconds until the next deadline (-1: none); fails endpoints past theirs.
  int ExpireDeadlines();
  void Submit(const std::shared_ptr<UcxEndpointState>& ep, UcxOp* ops);
  void PostGet(UcxEndpointState* ep, UcxOp* op, ucp_rkey_h rkey);
  bool PostPut(UcxEndpointState* ep, UcxOp* op, ucp_rkey_h rkey);
  void Flush(UcxEndpointState* ep, const std::vector<UcxOp*>& puts);
  bool Open(const std::shared_ptr<UcxEndpointState>& ep);
  // The unpacked rkey (cached per endpoint and packed bytes); null with *status.
  ucp_rkey_h RemoteKey(UcxEndpointState* ep, std::string_view packed, Status* status);
  static void DestroyRemoteKeys(UcxEndpointState* ep);
  void Fail(UcxEndpointState* ep, const Status& status);
  // Closes failed and released endpoints and forgets the closed ones.
  void Sweep();
  bool SweepOne(UcxEndpointState* ep);  // true: forget it
  void Shutdown();

  void Link(UcxEndpointState* ep, UcxOp* op, void* request);
  static void Unlink(UcxEndpointState* ep, UcxOp* op);
  static void OnGet(void* request, ucs_status_t status, void* user_data);
  static void OnFlush(void* request, ucs_status_t status, void* user_data);
  static void OnEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status);
  // Completes `op` (the UCX request it waited on is done) with `status`, or the
  // endpoint's failure when the request failed after it.
  static void Complete(UcxOp* op, ucs_status_t status);
  bool Orphaned(void* request);

  ucp_worker_h worker_ = nullptr;
  std::string address_;
  int event_fd_ = -1;  // the worker's, from ucp_worker_get_efd
  int wake_fd_ = -1;   // ours: written when work is queued for a sleeping thread
  int epoll_fd_ = -1;
  int64_t timeout_ns_ = 0;
  int64_t busy_poll_ns_ = 0;
  std::thread thread_;

  std::mutex mu_;
  std::vector<Command> queue_;  // guarded by mu_
  bool stopping_ = false;       // guarded by mu_
  bool sleeping_ = false;       // guarded by mu_: the thread is (about to be) in epoll_wait
  // Set under mu_ when queue_ grows or stopping_ is set; cleared by the thread as it
  // takes the queue.
  std::atomic<bool> queued_{false};

  // The worker thread's alone:
  std::vector<std::shared_ptr<UcxEndpointState>> endpoints_;
  // Requests of ops we failed ourselves because closing their endpoint did not
  // complete them; their callbacks, should they come, free them and do nothing else.
  std::unordered_set<void*> orphans_;
};

}  // namespace te
