#include "te/transfer_engine.h"

#include "engine/engine_impl.h"

namespace te {
namespace {
// Every call on an engine whose construction failed answers with that failure.
#define TE_REQUIRE_AVAILABLE() \
  if (!impl_->init_status().ok()) return impl_->init_status()
}  // namespace

const char* PermissionName(Permission p) {
  switch (p) {
    case Permission::kLocalOnly:
      return "local";
    case Permission::kRemoteRead:
      return "remote-read";
    case Permission::kRemoteReadWrite:
      return "remote-read-write";
  }
  return "unknown";
}

const char* TransferStateName(TransferState s) {
  switch (s) {
    case TransferState::kPending:
      return "PENDING";
    case TransferState::kCompleted:
      return "COMPLETED";
    case TransferState::kFailed:
      return "FAILED";
  }
  return "UNKNOWN";
}

TransferEngine::TransferEngine(const Config& config) : impl_(std::make_unique<EngineImpl>()) {
  impl_->Init(config);
}

TransferEngine::TransferEngine() : impl_(std::make_unique<EngineImpl>()) {
  Config config;
  Status s = Config::FromEnv(&config);
  if (s.ok()) {
    impl_->Init(config);
  } else {
    impl_->FailInit(s);
  }
}

TransferEngine::~TransferEngine() = default;

bool TransferEngine::available() const { return impl_->init_status().ok(); }
Status TransferEngine::status() const { return impl_->init_status(); }
const std::string& TransferEngine::getSegmentName() const { return impl_->segment_name(); }
const std::string& TransferEngine::getRpcAddress() const { return impl_->rpc_host(); }
uint16_t TransferEngine::getRpcPort() const { return impl_->rpc_port(); }

Status TransferEngine::allocateLocalMemory(void** addr, size_t size, const MemoryOptions& options) {
  TE_REQUIRE_AVAILABLE();
  return impl_->Allocate(addr, size, options);
}
Status TransferEngine::freeLocalMemory(void* addr) {
  TE_REQUIRE_AVAILABLE();
  return impl_->Free(addr);
}
Status TransferEngine::registerLocalMemory(void* addr, size_t size, const MemoryOptions& options) {
  TE_REQUIRE_AVAILABLE();
  return impl_->Register(addr, size, options);
}
Status TransferEngine::registerLocalMemoryBatch(
    const std::vector<std::pair<void*, size_t>>& buffers, const MemoryOptions& options) {
  TE_REQUIRE_AVAILABLE();
  return impl_->RegisterBatch(buffers, options);
}
Status TransferEngine::unregisterLocalMemory(void* addr) {
  TE_REQUIRE_AVAILABLE();
  return impl_->Unregister(addr);
}
Status TransferEngine::openSegment(SegmentHandle* handle, const std::string& name) {
  TE_REQUIRE_AVAILABLE();
  return impl_->OpenSegment(handle, name);
}
Status TransferEngine::closeSegment(SegmentHandle handle) {
  TE_REQUIRE_AVAILABLE();
  return impl_->CloseSegment(handle);
}
Status TransferEngine::refreshSegment(SegmentHandle handle) {
  TE_REQUIRE_AVAILABLE();
  return impl_->RefreshSegment(handle);
}
Status TransferEngine::getSegmentInfo(SegmentHandle handle, SegmentInfo* info) {
  TE_REQUIRE_AVAILABLE();
  return impl_->GetSegmentInfo(handle, info);
}
Status TransferEngine::allocateBatch(size_t max_requests, BatchID* batch_id) {
  TE_REQUIRE_AVAILABLE();
  return impl_->AllocateBatch(max_requests, batch_id);
}
Status TransferEngine::freeBatch(BatchID batch_id) {
  TE_REQUIRE_AVAILABLE();
  return impl_->FreeBatch(batch_id);
}
Status TransferEngine::submitTransfer(BatchID batch_id, const std::vector<Request>& requests) {
  TE_REQUIRE_AVAILABLE();
  return impl_->Submit(batch_id, requests);
}
Status TransferEngine::getTransferStatus(BatchID batch_id, size_t task_id, TransferStatus* status) {
  TE_REQUIRE_AVAILABLE();
  return impl_->TaskStatus(batch_id, task_id, status);
}
Status TransferEngine::getTransferStatus(BatchID batch_id, std::vector<TransferStatus>* statuses) {
  TE_REQUIRE_AVAILABLE();
  return impl_->TaskStatuses(batch_id, statuses);
}
Status TransferEngine::getTransferStatus(BatchID batch_id, TransferStatus* overall) {
  TE_REQUIRE_AVAILABLE();
  return impl_->BatchStatus(batch_id, overall);
}
Status TransferEngine::waitTransferStatus(BatchID batch_id, TransferStatus* overall,
                                          uint32_t timeout_ms) {
  TE_REQUIRE_AVAILABLE();
  return impl_->WaitBatch(batch_id, overall, timeout_ms);
}
Status TransferEngine::sendNotification(SegmentHandle handle, const std::string& message) {
  TE_REQUIRE_AVAILABLE();
  return impl_->SendNotification(handle, message);
}
Status TransferEngine::receiveNotification(std::vector<Notification>* notifications) {
  TE_REQUIRE_AVAILABLE();
  return impl_->ReceiveNotifications(notifications);
}
std::string TransferEngine::primaryTransport() const { return impl_->PrimaryTransport(); }
Status TransferEngine::getStatistics(EngineStatistics* statistics) const {
  if (!statistics) return Status::InvalidArgument("statistics is null");
  TE_REQUIRE_AVAILABLE();
  *statistics = impl_->Statistics();
  return Status::OK();
}

}  // namespace te
