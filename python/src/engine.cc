#include "engine.h"

#include <algorithm>

#include "status_error.h"

namespace te::python {
namespace py = pybind11;
namespace {

// For failures in destructors, which cannot raise: a RuntimeWarning, or an
// "unraisable" report when warnings are turned into errors.
void WarnFailure(const char* what, const Status& status) {
  if (status.ok()) return;
  GilAcquire acquire;
  const std::string text = std::string(what) + ": " + status.ToString();
  if (PyErr_WarnEx(PyExc_RuntimeWarning, text.c_str(), 1) != 0) PyErr_WriteUnraisable(nullptr);
}

}  // namespace

// ---- Buffer ----

Buffer::Buffer(EnginePtr engine, void* addr, size_t size, bool shm)
    : engine_(std::move(engine)), addr_(addr), size_(size), shm_(shm) {}

Buffer::~Buffer() {
  Status status;
  // Unregistering waits for peers' copies into the buffer to finish.
  WithoutGil([&] { status = engine_->freeLocalMemory(addr_); });
  WarnFailure("freeing a transfer_engine.Buffer", status);
}

// ---- Segment ----

Segment::Segment(EnginePtr engine, SegmentHandle handle, std::string name)
    : engine_(std::move(engine)), handle_(handle), name_(std::move(name)) {}

Segment::~Segment() { WarnFailure("closing a transfer_engine.Segment", CloseOnce()); }

Status Segment::CloseOnce() {
  if (closed_.exchange(true)) return Status::OK();
  Status status;
  WithoutGil([&] { status = engine_->closeSegment(handle_); });
  return status;
}

SegmentInfo Segment::Info() const {
  SegmentInfo info;
  ThrowIfError(engine_->getSegmentInfo(handle_, &info));
  return info;
}

void Segment::Refresh() {
  Status status;
  WithoutGil([&] { status = engine_->refreshSegment(handle_); });
  ThrowIfError(status);
}

void Segment::Close() { ThrowIfError(CloseOnce()); }

// ---- TransferFuture ----

TransferFuture::TransferFuture(EnginePtr engine, const std::vector<RequestSpec>& specs)
    : engine_(std::move(engine)), size_(specs.size()) {
  if (specs.empty()) throw StatusError(Status::InvalidArgument("no requests to transfer"));
  std::vector<Request> requests(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const RequestSpec& spec = specs[i];
    if (!spec.segment || !spec.segment->OpenedBy(engine_)) {
      throw StatusError(Status::InvalidArgument("request " + std::to_string(i) +
                                                ": the segment was not opened by this engine"));
    }
    requests[i].opcode = spec.opcode;
    requests[i].source = reinterpret_cast<void*>(spec.local);
    requests[i].target_id = spec.segment->handle();
    requests[i].target_offset = spec.remote;
    requests[i].length = spec.length;
    // Few distinct segments per batch: a linear search beats hashing.
    if (std::find(segments_.begin(), segments_.end(), spec.segment) == segments_.end()) {
      segments_.push_back(spec.segment);
    }
  }
  Status status;
  WithoutGil([&] {
    status = engine_->allocateBatch(requests.size(), &batch_);
    if (!status.ok()) return;
    status = engine_->submitTransfer(batch_, requests);
    if (!status.ok()) engine_->freeBatch(batch_);
  });
  ThrowIfError(status);  // the destructor does not run: nothing is left to free
}

TransferFuture::~TransferFuture() {
  if (finished_.load(std::memory_order_acquire)) return;
  Status status;
  WithoutGil([&] { status = engine_->freeBatch(batch_); });
  WarnFailure("dropping an unfinished transfer_engine.TransferFuture", status);
}

bool TransferFuture::Poll() {
  if (finished_.load(std::memory_order_acquire)) return true;
  TransferStatus overall;
  Status status = engine_->getTransferStatus(batch_, &overall);
  if (status.ok() && overall.state == TransferState::kPending) return false;
  return Settle(status);
}

bool TransferFuture::WaitSlice(std::chrono::milliseconds slice) {
  if (finished_.load(std::memory_order_acquire)) return true;
  TransferStatus overall;
  Status status =
      engine_->waitTransferStatus(batch_, &overall, static_cast<uint32_t>(slice.count()));
  if (status.ok() && overall.state == TransferState::kPending) return false;
  return Settle(status);
}

bool TransferFuture::Settle(const Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  // Another thread may have finished (and freed the batch) since the check above.
  if (!finished_.load(std::memory_order_relaxed)) {
    ThrowIfError(status);
    FinishLocked();
  }
  return true;
}

void TransferFuture::FinishLocked() {
  Status status = engine_->getTransferStatus(batch_, &final_);
  if (!status.ok()) {
    final_.assign(size_, TransferStatus{TransferState::kFailed, 0, status.ToString()});
  }
  finished_.store(true, std::memory_order_release);
  // Every task ended, so this returns at once.
  WarnFailure("freeing a finished batch", engine_->freeBatch(batch_));
  segments_.clear();  // the requests no longer need them open
}

bool TransferFuture::Done() {
  bool done = false;
  WithoutGil([&] { done = Poll(); });
  return done;
}

WaitResult TransferFuture::Wait(std::optional<double> timeout_s) {
  return WaitInSlicesWithoutGil(
      [this](std::chrono::milliseconds slice) { return WaitSlice(slice); }, timeout_s);
}

uint64_t TransferFuture::Result() {
  if (!finished_.load(std::memory_order_acquire)) {
    throw StatusError(Status::FailedPrecondition("the transfer is still pending"));
  }
  uint64_t bytes = 0;
  for (size_t i = 0; i < final_.size(); ++i) {
    if (final_[i].state == TransferState::kFailed) {
      const Status why = StatusFromTaskError(final_[i].error);
      throw StatusError(Status(why.code(), "task " + std::to_string(i) + ": " + why.message()));
    }
    bytes += final_[i].transferred_bytes;
  }
  return bytes;
}

std::vector<TransferStatus> TransferFuture::Statuses() {
  std::vector<TransferStatus> statuses;
  Status status;
  WithoutGil([&] {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_.load(std::memory_order_relaxed)) {
      statuses = final_;
    } else {
      status = engine_->getTransferStatus(batch_, &statuses);
    }
  });
  ThrowIfError(status);
  return statuses;
}

// ---- Engine ----

Engine::Engine(bool from_env, const std::string& config_file, const std::string& config_json) {
  Config config;
  if (from_env) ThrowIfError(Config::FromEnv(&config));
  if (!config_file.empty()) ThrowIfError(Config::FromJsonFile(config_file, &config));
  ThrowIfError(Config::FromJson(config_json, &config));
  TransferEngine* created = nullptr;
  // Starting publishes the segment, a network call with central metadata.
  WithoutGil([&] { created = new TransferEngine(config); });
  // Whoever drops the last reference stops the engine, without the GIL: stopping
  // joins threads and may wait for peers.
  EnginePtr engine(created, [](TransferEngine* e) { WithoutGil([e] { delete e; }); });
  ThrowIfError(engine->status());
  engine_ = std::move(engine);
}

EnginePtr Engine::Get() const {
  if (!engine_) throw StatusError(Status::FailedPrecondition("the engine is closed"));
  return engine_;
}

std::string Engine::segment_name() const { return Get()->getSegmentName(); }
std::string Engine::rpc_address() const { return Get()->getRpcAddress(); }
uint16_t Engine::rpc_port() const { return Get()->getRpcPort(); }
std::string Engine::primary_transport() const { return Get()->primaryTransport(); }

EngineStatistics Engine::Statistics() const {
  EngineStatistics stats;
  ThrowIfError(Get()->getStatistics(&stats));
  return stats;
}

std::shared_ptr<Buffer> Engine::Allocate(size_t size, bool shm, Permission permission,
                                         const std::string& location) {
  EnginePtr engine = Get();
  MemoryOptions options;
  options.location = location;
  options.shm = shm;
  options.permission = permission;
  void* addr = nullptr;
  Status status;
  WithoutGil([&] {
    status = engine->allocateLocalMemory(&addr, size, options);
    if (!status.ok()) return;
    status = engine->registerLocalMemory(addr, size, options);
    if (!status.ok()) engine->freeLocalMemory(addr);
  });
  ThrowIfError(status);
  return std::make_shared<Buffer>(std::move(engine), addr, size, shm);
}

void Engine::Register(uint64_t addr, uint64_t size, Permission permission,
                      const std::string& location) {
  EnginePtr engine = Get();
  MemoryOptions options;
  options.location = location;
  options.permission = permission;
  Status status;
  WithoutGil(
      [&] { status = engine->registerLocalMemory(reinterpret_cast<void*>(addr), size, options); });
  ThrowIfError(status);
}

void Engine::RegisterBatch(const std::vector<uint64_t>& addrs, const std::vector<uint64_t>& sizes,
                           Permission permission, const std::string& location) {
  if (addrs.size() != sizes.size()) {
    ThrowIfError(Status::InvalidArgument("addresses and lengths differ in count"));
  }
  EnginePtr engine = Get();
  MemoryOptions options;
  options.location = location;
  options.permission = permission;
  std::vector<std::pair<void*, size_t>> buffers(addrs.size());
  for (size_t i = 0; i < addrs.size(); ++i) {
    buffers[i] = {reinterpret_cast<void*>(addrs[i]), sizes[i]};
  }
  Status status;
  WithoutGil([&] { status = engine->registerLocalMemoryBatch(buffers, options); });
  ThrowIfError(status);
}

void Engine::Unregister(uint64_t addr) {
  EnginePtr engine = Get();
  Status status;
  WithoutGil([&] { status = engine->unregisterLocalMemory(reinterpret_cast<void*>(addr)); });
  ThrowIfError(status);
}

std::shared_ptr<Segment> Engine::OpenSegment(const std::string& name) {
  EnginePtr engine = Get();
  SegmentHandle handle = 0;
  Status status;
  WithoutGil([&] { status = engine->openSegment(&handle, name); });
  ThrowIfError(status);
  return std::make_shared<Segment>(std::move(engine), handle, name);
}

std::shared_ptr<TransferFuture> Engine::Submit(const std::vector<RequestSpec>& requests) {
  return std::make_shared<TransferFuture>(Get(), requests);
}

uint64_t Engine::Transfer(const std::vector<RequestSpec>& requests) {
  TransferFuture future(Get(), requests);
  if (future.Wait(std::nullopt) == WaitResult::kInterrupted) throw py::error_already_set();
  return future.Result();
}

void Engine::Notify(const Segment& segment, const std::string& message) {
  EnginePtr engine = Get();
  if (!segment.OpenedBy(engine)) {
    throw StatusError(Status::InvalidArgument("the segment was not opened by this engine"));
  }
  Status status;
  WithoutGil([&] { status = engine->sendNotification(segment.handle(), message); });
  ThrowIfError(status);
}

std::vector<Notification> Engine::Notifications(double timeout_s) {
  EnginePtr engine = Get();
  std::vector<Notification> received;
  Status status;
  auto receive = [&] {
    status = engine->receiveNotification(&received);
    return !status.ok() || !received.empty();
  };
  if (timeout_s <= 0) {
    receive();
  } else if (WaitWithoutGil(receive, timeout_s) == WaitResult::kInterrupted) {
    throw py::error_already_set();
  }
  ThrowIfError(status);
  return received;
}

void Engine::Close() { engine_.reset(); }

}  // namespace te::python
