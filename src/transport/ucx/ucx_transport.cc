#include "transport/ucx/ucx_transport.h"

#include <atomic>
#include <mutex>
#include <vector>

#include "common/strings.h"
#include "memory/memory.h"

namespace te {
namespace {

// The peer's packed rkeys, one per buffer of its descriptor (empty: none published),
// shared by the peer and its operations in flight, which point into them.
struct RemoteKeys {
  std::vector<std::string> by_buffer;
};

// One slice on the wire.
struct SliceOp {
  UcxOp op;
  Slice* slice = nullptr;
  std::shared_ptr<const RemoteKeys> keys;
};

class UcxPeer : public TransportPeer {
 public:
  UcxPeer(std::shared_ptr<UcxTransport::Shared> shared, SegmentDescriptor desc,
          std::vector<std::string> workers, std::shared_ptr<const RemoteKeys> keys)
      : shared_(std::move(shared)),
        desc_(std::move(desc)),
        workers_(std::move(workers)),
        keys_(std::move(keys)) {}

  // Only buffers the peer mapped for us: a range it did not publish has no rkey, and
  // UCX over tcp or shared memory would not refuse it on the far side.
  bool CanServe(const SegmentBuffer* b) const override {
    return b != nullptr && !b->TransportData("ucx").empty();
  }

  void Submit(Slice* const* slices, size_t count) override;

 private:
  // Refuses what the far side might not: ranges outside a published buffer, WRITE to a
  // read-only one. On success *rkey is the buffer's packed rkey.
  Status Check(const Slice& s, std::string_view* rkey) const;
  // The endpoint, opened (without waiting) when there is none or it failed.
  Status Endpoint(std::shared_ptr<UcxEndpoint>* out);
  static void OnDone(UcxOp* op, const Status& status);

  const std::shared_ptr<UcxTransport::Shared> shared_;
  const SegmentDescriptor desc_;
  const std::vector<std::string> workers_;  // the peer's worker addresses
  const std::shared_ptr<const RemoteKeys> keys_;
  std::mutex mu_;
  std::shared_ptr<UcxEndpoint> endpoint_;  // guarded by mu_
  size_t connects_ = 0;                    // guarded by mu_: spreads reconnects
};

Status UcxPeer::Check(const Slice& s, std::string_view* rkey) const {
  if (s.IsCancelled()) return Status::Cancelled("batch freed before the slice was posted");
  const SegmentBuffer* b = desc_.FindBuffer(s.remote, s.length);
  if (!b) return Status::OutOfRange("range is not inside a buffer of segment '" + desc_.name + "'");
  if (s.opcode == Request::WRITE && b->permission != Permission::kRemoteReadWrite) {
    return Status::PermissionDenied("buffer of segment '" + desc_.name +
                                    "' is read-only for peers");
  }
  const std::string& key = keys_->by_buffer[static_cast<size_t>(b - desc_.buffers.data())];
  if (key.empty()) {
    return Status::PermissionDenied("segment '" + desc_.name +
                                    "' published no ucx key for the buffer");
  }
  *rkey = key;
  return Status::OK();
}

Status UcxPeer::Endpoint(std::shared_ptr<UcxEndpoint>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!endpoint_ || endpoint_->failed()) {
    endpoint_.reset();
    std::shared_lock<std::shared_mutex> context_lock(shared_->mu);
    if (!shared_->context) return Status::Unavailable("ucx transport is stopped");
    const std::string& worker = workers_[connects_++ % workers_.size()];
    TE_RETURN_IF_ERROR(shared_->context->Connect(worker, &endpoint_));
  }
  *out = endpoint_;
  return Status::OK();
}

void UcxPeer::Submit(Slice* const* slices, size_t count) {
  std::shared_ptr<UcxEndpoint> endpoint;
  const Status connected = Endpoint(&endpoint);
  constexpr size_t kGroup = 64;  // ops handed to the worker per queue entry
  UcxOp* group[kGroup];
  size_t n = 0;
  for (size_t i = 0; i < count; ++i) {
    Slice* s = slices[i];
    std::string_view rkey;
    Status st = connected.ok() ? Check(*s, &rkey) : connected;
    if (!st.ok()) {
      s->on_done(s, st);
      continue;
    }
    auto* op = new SliceOp;
    op->slice = s;
    op->keys = keys_;
    op->op.kind = s->opcode == Request::WRITE ? UcxOp::kPut : UcxOp::kGet;
    op->op.local = s->local;
    op->op.remote = s->remote;
    op->op.length = s->length;
    op->op.rkey = rkey;
    op->op.done = &UcxPeer::OnDone;
    op->op.owner = op;
    group[n++] = &op->op;
    if (n == kGroup) {
      endpoint->Post(group, n);
      n = 0;
    }
  }
  if (n > 0) endpoint->Post(group, n);
}

void UcxPeer::OnDone(UcxOp* op, const Status& status) {
  auto* slice_op = static_cast<SliceOp*>(op->owner);
  Slice* s = slice_op->slice;
  delete slice_op;
  s->on_done(s, status);
}

// The peer's published worker addresses ("hex,hex,..."), decoded.
Status DecodeWorkers(const SegmentDescriptor& peer, std::vector<std::string>* out) {
  auto it = peer.transports.find("ucx");
  if (it == peer.transports.end() || it->second.empty())
    return Status::Unavailable("segment '" + peer.name + "' does not serve ucx");
  for (const std::string& hex : SplitList(it->second)) {
    std::string address;
    if (!HexDecode(hex, &address) || address.empty())
      return Status::InvalidArgument("segment '" + peer.name + "' has a malformed ucx address");
    out->push_back(std::move(address));
  }
  if (out->empty()) return Status::Unavailable("segment '" + peer.name + "' does not serve ucx");
  return Status::OK();
}

}  // namespace

UcxOptions UcxTransport::OptionsFor(const Config& config) {
  UcxOptions options;
  options.tls = config.ucx_tls;
  options.net_devices = config.ucx_net_devices;
  options.workers = config.ucx_workers;
  options.transfer_timeout_ms = config.transfer_timeout_ms;
  options.busy_poll_us = config.ucx_busy_poll_us;
  return options;
}

Status UcxTransport::Start(const TransportContext& context, SegmentDescriptor* local) {
  std::unique_ptr<UcxContext> ucx;
  TE_RETURN_IF_ERROR(UcxContext::Create(OptionsFor(*context.config), &ucx));
  std::string addresses;
  for (size_t i = 0; i < ucx->worker_count(); ++i) {
    if (i > 0) addresses += ',';
    addresses += HexEncode(ucx->worker_address(i));
  }
  local->transports[name()] = std::move(addresses);
  std::unique_lock<std::shared_mutex> lock(shared_->mu);
  shared_->context = std::move(ucx);
  return Status::OK();
}

Status UcxTransport::OnRegister(const BufferInfo& buffer, std::string* public_data) {
  // Local-only buffers are never a remote address; the local side of an operation
  // needs no mapping (UCX registers it itself where the device needs that).
  if (buffer.permission == Permission::kLocalOnly || IsDeviceLocation(buffer.location))
    return Status::OK();
  std::unique_ptr<UcxMemory> memory;
  {
    std::shared_lock<std::shared_mutex> lock(shared_->mu);
    if (!shared_->context) return Status::Unavailable("ucx transport is not started");
    TE_RETURN_IF_ERROR(shared_->context->Map(reinterpret_cast<void*>(buffer.base), buffer.length,
                                             buffer.permission == Permission::kRemoteReadWrite,
                                             &memory));
  }
  *public_data = HexEncode(memory->packed_rkey());
  std::lock_guard<std::mutex> lock(memory_mu_);
  memory_[buffer.base] = std::move(memory);
  return Status::OK();
}

void UcxTransport::OnUnregister(const BufferInfo& buffer) {
  std::unique_ptr<UcxMemory> memory;
  {
    std::lock_guard<std::mutex> lock(memory_mu_);
    auto it = memory_.find(buffer.base);
    if (it == memory_.end()) return;
    memory = std::move(it->second);
    memory_.erase(it);
  }
  // Unmapped here, outside the lock (ucp_mem_unmap may take a while on verbs).
}

void UcxTransport::Stop() {
  std::unique_ptr<UcxContext> context;
  {
    std::unique_lock<std::shared_mutex> lock(shared_->mu);
    context = std::move(shared_->context);
  }
  // Destroyed outside the lock: it completes operations in flight (Cancelled), whose
  // callbacks may submit again and so reach Endpoint().
  context.reset();
  std::lock_guard<std::mutex> lock(memory_mu_);
  memory_.clear();
}

bool UcxTransport::CanReach(const SegmentDescriptor& peer) const {
  auto it = peer.transports.find(name());
  return it != peer.transports.end() && !it->second.empty();
}

Status UcxTransport::GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) {
  std::vector<std::string> workers;
  TE_RETURN_IF_ERROR(DecodeWorkers(peer, &workers));
  auto keys = std::make_shared<RemoteKeys>();
  for (const SegmentBuffer& b : peer.buffers) {
    std::string rkey;
    // A malformed key leaves the buffer without one: not served.
    if (!HexDecode(b.TransportData(name()), &rkey)) rkey.clear();
    keys->by_buffer.push_back(std::move(rkey));
  }
  *out = std::make_shared<UcxPeer>(shared_, peer, std::move(workers), std::move(keys));
  return Status::OK();
}

}  // namespace te
