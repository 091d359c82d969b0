#include "engine/engine_impl.h"

#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/logging.h"
#include "common/machine.h"
#include "common/strings.h"
#include "memory/device_memory.h"
#include "metrics/counting_metadata_client.h"
#include "rpc/rpc_client.h"
#include "transport/transport_registry.h"

namespace te {
namespace {

std::string HexAddr(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%p", p);
  return buf;
}

// Splits host[:port] given as the p2p segment name.
Status ParseP2pName(const std::string& name, std::string* host, uint16_t* port) {
  if (name.find(':') == std::string::npos || (name.front() == '[' && name.back() == ']')) {
    *host = name;
    return Status::OK();
  }
  if (!ParseHostPort(name, host, port)) {
    return Status::InvalidArgument("p2p local segment '" + name + "' must be host or host:port");
  }
  return Status::OK();
}

// The location to publish for memory at addr: its device, or its NUMA node. `asked`
// (MemoryOptions::location) must agree with what the memory is: a device address
// published as DRAM would be handed to memcpy.
Status LocateBuffer(const void* addr, const std::string& asked, std::string* location) {
  const int device = DeviceOf(addr);
  const std::string where =
      device == kHostMemory ? "host memory" : "cuda:" + std::to_string(device);
  if (IsDeviceLocation(asked)) {
    int wanted;
    TE_RETURN_IF_ERROR(ParseDeviceLocation(asked, &wanted));
    if (wanted != device) {
      return Status::InvalidArgument("location '" + asked + "' given for " + where);
    }
  } else if (device != kHostMemory && !asked.empty()) {
    return Status::InvalidArgument("location '" + asked + "' given for " + where);
  }
  if (device != kHostMemory) {
    *location = where;
    return Status::OK();
  }
  int node;
  if (asked.empty()) {
    node = NumaNodeOf(addr);
  } else {
    TE_RETURN_IF_ERROR(ParseCpuLocation(asked, &node));
  }
  *location = "cpu:" + std::to_string(node);
  return Status::OK();
}

}  // namespace

EngineImpl::~EngineImpl() {
  metrics_server_.Stop();  // scrapes read what follows
  {
    std::lock_guard<std::mutex> lock(refresh_mu_);
    refresh_stopping_ = true;
  }
  refresh_cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  if (init_status_.ok()) {
    Status s = metadata_->Unpublish(segment_name_);
    if (!s.ok()) TE_LOG(Warning) << "unpublishing segment: " << s.ToString();
  }
  rpc_server_.Stop();
  // Peers go first so transports can end in-flight slices while batches still exist.
  segments_.Clear();
  for (auto& t : transports_) t->Stop();
  transports_.clear();
  batches_.Clear();
  std::lock_guard<std::mutex> lock(alloc_mu_);
  for (auto& [addr, a] : allocations_) FreeMemory(a);
  allocations_.clear();
}

Status EngineImpl::Init(const Config& config) {
  init_status_ = [&]() -> Status {
    TE_RETURN_IF_ERROR(config.Validate());
    config_ = config;
    LogLevel level = LogLevel::kWarning;
    ParseLogLevel(config.log_level, &level);
    SetLogLevel(level);
    machine_id_ = config.machine_id.empty() ? ReadMachineId() : config.machine_id;
    RaiseOpenFileLimit();  // sockets for hundreds of peers
    metrics_ = std::make_unique<EngineMetrics>(config.transports, config.metadata_type,
                                               config.metrics_port != 0);

    std::string host = config.rpc_host;
    uint16_t port = config.rpc_port;
    if (config.metadata_type == "p2p" && !config.local_segment_name.empty()) {
      TE_RETURN_IF_ERROR(ParseP2pName(config.local_segment_name, &host, &port));
    }
    if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
    bind_host_ = !config.rpc_bind_host.empty() ? config.rpc_bind_host
                 : host.empty()                ? "0.0.0.0"
                                               : host;
    // An engine that picks its address itself may have others its peers reach better.
    advertise_any_ = host.empty() || host == "0.0.0.0";
    advertise_host_ = advertise_any_ ? DefaultAdvertiseAddress() : host;

    // The metadata backend is created first: a backend this build lacks is reported
    // before any port is opened.
    std::unique_ptr<MetadataClient> probe;
    TE_RETURN_IF_ERROR(CreateMetadataClient(config, "", &probe));

    rpc_server_.Register(
        wire::Opcode::kGetSegment,
        [this](const std::string&, const std::string& request, std::string* response) {
          return RpcGetSegment(request, response);
        });
    rpc_server_.Register(wire::Opcode::kNotify,
                         [this](const std::string& peer, const std::string& request, std::string*) {
                           return RpcNotify(peer, request);
                         });
    rpc_server_.set_metrics(metrics_.get());
    Status s = rpc_server_.Start(bind_host_, port, config.cluster_secret);
    if (!s.ok()) return Status(s.code(), "rpc server: " + s.message());

    std::string host_part = advertise_host_.find(':') != std::string::npos
                                ? "[" + advertise_host_ + "]"
                                : advertise_host_;
    segment_name_ = config.metadata_type == "p2p" || config.local_segment_name.empty()
                        ? host_part + ":" + std::to_string(rpc_server_.port())
                        : config.local_segment_name;
    TE_RETURN_IF_ERROR(CreateMetadataClient(config, segment_name_, &metadata_));
    metadata_ = std::make_unique<CountingMetadataClient>(std::move(metadata_), metrics_.get());
    if (config.cluster_secret.empty()) {
      TE_LOG(Warning) << "segment '" << segment_name_
                      << "': no cluster secret configured; any peer that reaches this "
                         "engine's ports may use its remote-visible buffers";
    }

    static_descriptor_.name = segment_name_;
    static_descriptor_.machine_id = machine_id_;
    static_descriptor_.pid = static_cast<uint32_t>(::getpid());
    static_descriptor_.rpc_host = advertise_host_;
    static_descriptor_.rpc_port = rpc_server_.port();
    TE_RETURN_IF_ERROR(registry_.SetCapacity(config.max_registered_buffers));
    bool same_host = false;
    for (const std::string& name : config.transports) {
      same_host |= FindTransport(name)->reach == TransportReach::kSameHost;  // Validate'd
    }
    if (same_host) {
      // Same-host peers copy into our buffers directly; they pin them in this table.
      RemoveStaleSharedMemory();
      // Named after the pid (so stale ones can be found) and unique per engine.
      static std::atomic<uint32_t> engines{0};
      TE_RETURN_IF_ERROR(registry_.SharePinTable("/te." + std::to_string(::getpid()) + ".pins" +
                                                 std::to_string(engines++)));
      static_descriptor_.pin_table = registry_.pin_table_name();
    }
    TransportContext context{&config_,   &registry_,     segment_name_, advertise_host_,
                             bind_host_, metrics_.get(), advertise_any_};
    for (const std::string& name : config.transports) {
      std::unique_ptr<Transport> t;
      TE_RETURN_IF_ERROR(CreateTransport(name, &t));
      s = t->Start(context, &static_descriptor_);
      if (!s.ok()) return Status(s.code(), "transport " + name + ": " + s.message());
      transports_.push_back(std::move(t));
    }
    refresher_ = std::thread([this] { RefreshLoop(); });
    ready_.store(true, std::memory_order_release);
    TE_RETURN_IF_ERROR(metadata_->Publish(LocalDescriptor()));
    if (config.metrics_port == 0) return Status::OK();
    return metrics_server_.Start(
        bind_host_, config.metrics_port, [this] { return Statistics(); },
        [this] {
          return ready_.load(std::memory_order_acquire) ? Status::OK()
                                                        : Status::Unavailable("engine is starting");
        });
  }();
  if (!init_status_.ok()) {
    metrics_server_.Stop();
    rpc_server_.Stop();
    for (auto& t : transports_) t->Stop();
  }
  return init_status_;
}

void EngineImpl::RemoveStaleSharedMemory() {
  // Our objects are named /te.<pid>.<suffix>; only those of dead processes go.
  DIR* dir = ::opendir("/dev/shm");
  if (!dir) return;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name.rfind("te.", 0) != 0) continue;
    size_t dot = name.find('.', 3);
    uint64_t pid;
    if (dot == std::string::npos || !ParseUint64(name.substr(3, dot - 3), &pid)) continue;
    if (pid > 0 && pid < (1u << 31) && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      TE_LOG(Info) << "removing stale shared memory /" << name << " of dead process " << pid;
      ::shm_unlink(("/" + name).c_str());
    }
  }
  ::closedir(dir);
}

SegmentDescriptor EngineImpl::LocalDescriptor() const {
  SegmentDescriptor d = static_descriptor_;
  d.buffers = registry_.RemoteVisible();
  return d;
}

void EngineImpl::PublishChanges(const std::vector<SegmentBuffer>& added,
                                const std::vector<uint64_t>& removed) {
  // p2p peers ask us (RpcGetSegment): nothing to publish. Central backends write
  // only what changed, so a registration costs the same with 10 or 100,000 buffers.
  if (!metadata_->Publishes() || (added.empty() && removed.empty())) return;
  Status s = metadata_->PublishChanges(added, removed);
  if (!s.ok()) TE_LOG(Warning) << "publishing segment '" << segment_name_ << "': " << s.ToString();
}

Status EngineImpl::RpcGetSegment(const std::string& request, std::string* response) const {
  if (!ready_.load(std::memory_order_acquire)) return Status::Unavailable("engine is starting");
  std::shared_ptr<const DescriptorText> text = CurrentDescriptorText();
  // A peer that names the tag of what it holds gets an empty answer when that is
  // still current (docs/wire-protocol.md, kGetSegment).
  if (!request.empty() && request == text->tag) {
    response->clear();
    return Status::OK();
  }
  *response = text->json;
  return Status::OK();
}

std::shared_ptr<const EngineImpl::DescriptorText> EngineImpl::CurrentDescriptorText() const {
  std::lock_guard<std::mutex> lock(descriptor_mu_);
  // Read before building: a registration meanwhile leaves a stale version behind,
  // so the next call rebuilds; the tag always matches the text it belongs to.
  const uint64_t version = registry_.version();
  if (!descriptor_text_ || descriptor_text_->version != version) {
    auto text = std::make_shared<DescriptorText>();
    text->version = version;
    text->json = LocalDescriptor().ToJson();
    text->tag = DescriptorTag(text->json);
    descriptor_text_ = std::move(text);
  }
  return descriptor_text_;
}

Status EngineImpl::RpcNotify(const std::string& peer, const std::string& request) {
  auto j = nlohmann::json::parse(request, nullptr, false);
  if (!j.is_object() || !j.contains("message") || !j["message"].is_string()) {
    return Status::InvalidArgument("malformed notification");
  }
  std::lock_guard<std::mutex> lock(notify_mu_);
  notifications_.push_back({peer, j["message"].get<std::string>()});
  return Status::OK();
}

// ---- memory ----

Status EngineImpl::Allocate(void** addr, size_t size, const MemoryOptions& options) {
  if (!addr) return Status::InvalidArgument("addr is null");
  Allocation a;
  if (IsDeviceLocation(options.location)) {
    if (options.shm) {
      return Status::InvalidArgument(
          "shm is for DRAM; device memory is shared with same-host peers through CUDA IPC");
    }
    int device;
    TE_RETURN_IF_ERROR(ParseDeviceLocation(options.location, &device));
    TE_RETURN_IF_ERROR(AllocateDeviceMemory(size, device, &a));
  } else {
    int node;
    TE_RETURN_IF_ERROR(ParseCpuLocation(options.location, &node));
    TE_RETURN_IF_ERROR(AllocateMemory(size, node, options.shm, &a));
  }
  std::lock_guard<std::mutex> lock(alloc_mu_);
  allocations_[reinterpret_cast<uintptr_t>(a.addr)] = a;
  *addr = a.addr;
  return Status::OK();
}

Status EngineImpl::Free(void* addr) {
  Allocation a;
  {
    std::lock_guard<std::mutex> lock(alloc_mu_);
    auto it = allocations_.find(reinterpret_cast<uintptr_t>(addr));
    if (it == allocations_.end()) {
      return Status::NotFound("no memory allocated by this engine at " + HexAddr(addr));
    }
    a = it->second;
    allocations_.erase(it);
  }
  // Unregister any part of it still registered, so no peer touches freed memory.
  std::vector<uint64_t> inside;
  const auto table = registry_.Snapshot();  // held: the loop must not outlive it
  table->ForEach([&](const BufferTable::Entry& b) {
    if (b->info.base >= reinterpret_cast<uint64_t>(a.addr) &&
        b->info.base < reinterpret_cast<uint64_t>(a.addr) + a.size) {
      inside.push_back(b->info.base);
    }
  });
  RemoveBuffers(inside);
  FreeMemory(a);
  return Status::OK();
}

Status EngineImpl::Describe(void* addr, size_t size, const MemoryOptions& options,
                            SegmentBuffer* info) {
  if (!addr) return Status::InvalidArgument("cannot register a null address");
  if (size == 0) return Status::InvalidArgument("cannot register 0 bytes");
  if (reinterpret_cast<uint64_t>(addr) + size < reinterpret_cast<uint64_t>(addr)) {
    return Status::InvalidArgument("buffer range wraps around the address space");
  }
  info->base = reinterpret_cast<uint64_t>(addr);
  info->length = size;
  info->permission = options.permission;
  TE_RETURN_IF_ERROR(LocateBuffer(addr, options.location, &info->location));
  std::lock_guard<std::mutex> lock(alloc_mu_);
  auto it = allocations_.upper_bound(info->base);
  if (it != allocations_.begin()) {
    --it;
    if (info->base < it->first + it->second.size) info->shm_name = it->second.shm_name;
  }
  return Status::OK();
}

Status EngineImpl::Register(void* addr, size_t size, const MemoryOptions& options) {
  return RegisterBatch({{addr, size}}, options);
}

Status EngineImpl::RegisterBatch(const std::vector<std::pair<void*, size_t>>& buffers,
                                 const MemoryOptions& options) {
  std::vector<SegmentBuffer> infos(buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    TE_RETURN_IF_ERROR(Describe(buffers[i].first, buffers[i].second, options, &infos[i]));
  }
  // Transports see registrations and unregistrations one at a time, and only of
  // buffers that can be registered: never one overlapping a registered buffer.
  std::lock_guard<std::mutex> lock(register_mu_);
  TE_RETURN_IF_ERROR(CheckNoOverlap(infos));
  size_t announced = 0;
  Status s;
  while (announced < infos.size()) {
    s = AnnounceToTransports(&infos[announced]);
    if (!s.ok()) break;  // it withdrew itself from the transports before the failing one
    ++announced;
  }
  if (s.ok()) s = registry_.AddBatch(infos);  // all or nothing
  if (!s.ok()) {
    for (size_t i = 0; i < announced; ++i) {
      for (auto& t : transports_) t->OnUnregister(infos[i]);
    }
    return s;
  }
  if (options.permission == Permission::kLocalOnly || !metadata_->Publishes()) return s;
  // As registered: with the pin slots the registry gave them.
  std::vector<SegmentBuffer> published;
  published.reserve(infos.size());
  const auto table = registry_.Snapshot();
  for (const SegmentBuffer& info : infos) {
    if (const auto* found = table->Find(info.base)) published.push_back((*found)->info);
  }
  PublishChanges(published, {});  // under register_mu_: in the registry's order
  return Status::OK();
}

Status EngineImpl::CheckNoOverlap(const std::vector<SegmentBuffer>& infos) const {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [base, end) of each, sorted
  ranges.reserve(infos.size());
  for (const SegmentBuffer& info : infos) ranges.emplace_back(info.base, info.base + info.length);
  std::sort(ranges.begin(), ranges.end());
  const auto table = registry_.Snapshot();
  for (size_t i = 0; i < ranges.size(); ++i) {
    const bool with_batch = i > 0 && ranges[i].first < ranges[i - 1].second;
    if (with_batch || table->Overlaps(ranges[i].first, ranges[i].second - ranges[i].first)) {
      return Status::AlreadyExists("region " + HexAddr(reinterpret_cast<void*>(ranges[i].first)) +
                                   "+" + std::to_string(ranges[i].second - ranges[i].first) +
                                   " overlaps a registered buffer");
    }
  }
  return Status::OK();
}

Status EngineImpl::AnnounceToTransports(SegmentBuffer* info) {
  for (size_t i = 0; i < transports_.size(); ++i) {
    std::string data;
    Status s = transports_[i]->OnRegister(*info, &data);
    if (!s.ok()) {
      const std::string refused = std::string("transport ") + transports_[i]->name() + ": ";
      while (i-- > 0) transports_[i]->OnUnregister(*info);
      return Status(s.code(), refused + s.message());
    }
    if (!data.empty()) info->transport_data[transports_[i]->name()] = std::move(data);
  }
  return Status::OK();
}

Status EngineImpl::RemoveBuffers(const std::vector<uint64_t>& bases) {
  std::lock_guard<std::mutex> lock(register_mu_);
  std::vector<uint64_t> published;
  Status first;
  for (uint64_t base : bases) {
    SegmentBuffer removed;
    if (const auto* found = registry_.Snapshot()->Find(base)) removed = (*found)->info;
    Status s = registry_.Remove(base, DrainTimeoutMs());
    // A drain timeout still removed the buffer: transports let go of it, and peers
    // must stop seeing it, either way.
    if (s.code() != Status::Code::kNotFound) {
      for (auto& t : transports_) t->OnUnregister(removed);
      if (removed.permission != Permission::kLocalOnly) published.push_back(base);
    }
    if (first.ok()) first = s;
  }
  PublishChanges({}, published);  // under register_mu_: in the registry's order
  return first;
}

Status EngineImpl::Unregister(void* addr) {
  return RemoveBuffers({reinterpret_cast<uint64_t>(addr)});
}

// ---- segments ----

Status EngineImpl::Resolve(const std::string& name, SegmentDescriptor* out) {
  if (name.empty()) return Status::InvalidArgument("segment name is empty");
  if (name == segment_name_) {
    *out = LocalDescriptor();
    return Status::OK();
  }
  return metadata_->Lookup(name, out);
}

Status EngineImpl::Bind(SegmentDescriptor descriptor, OpenSegmentState* state,
                        const std::string& tag) {
  auto routes = std::make_shared<SegmentRoutes>();
  routes->descriptor = std::make_shared<SegmentDescriptor>(std::move(descriptor));
  const SegmentDescriptor& desc = *routes->descriptor;
  std::string declined;
  for (size_t i = 0; i < transports_.size(); ++i) {
    if (!transports_[i]->CanReach(desc)) continue;
    std::shared_ptr<TransportPeer> peer;
    Status s = transports_[i]->GetPeer(desc, &peer);
    if (!s.ok()) {
      TE_LOG(Info) << "transport " << transports_[i]->name() << " declines '" << desc.name
                   << "': " << s.ToString();
      declined += std::string("; ") + transports_[i]->name() + ": " + s.message();
      continue;
    }
    routes->routes.push_back({i, std::move(peer)});
  }
  if (routes->routes.empty()) {
    return Status::Unavailable("no enabled transport reaches segment '" + desc.name + "'" +
                               declined);
  }
  std::lock_guard<std::mutex> lock(state->mu);
  state->current = std::move(routes);
  state->descriptor_tag = tag;  // empty (never matches) when the fetch had none
  return Status::OK();
}

void EngineImpl::QueueRefresh(const std::shared_ptr<OpenSegmentState>& state) {
  {
    std::lock_guard<std::mutex> lock(refresh_mu_);
    refresh_queue_.push_back(state);
  }
  refresh_cv_.notify_one();
}

void EngineImpl::RefreshLoop() {
  for (;;) {
    std::shared_ptr<OpenSegmentState> state;
    {
      std::unique_lock<std::mutex> lock(refresh_mu_);
      refresh_cv_.wait(lock, [this] { return refresh_stopping_ || !refresh_queue_.empty(); });
      if (refresh_stopping_) return;
      state = refresh_queue_.front().lock();
      refresh_queue_.pop_front();
    }
    if (!state) continue;  // closed meanwhile
    SegmentDescriptor desc;
    Status s = Resolve(state->name, &desc);
    if (s.ok()) s = Bind(std::move(desc), state.get());
    if (!s.ok()) {
      TE_LOG(Info) << "refreshing segment '" << state->name << "': " << s.ToString();
      state->stale->store(true, std::memory_order_relaxed);  // try again on next use
    }
  }
}

std::shared_ptr<const SegmentRoutes> EngineImpl::RoutesOf(OpenSegmentState* state) {
  std::lock_guard<std::mutex> lock(state->mu);
  return state->current;
}

Status EngineImpl::OpenSegment(SegmentHandle* handle, const std::string& name) {
  if (!handle) return Status::InvalidArgument("handle is null");
  auto state = std::make_shared<OpenSegmentState>();
  state->name = name;
  TE_RETURN_IF_ERROR(Refresh(state.get()));
  *handle = next_segment_.fetch_add(1);
  segments_.Insert(*handle, std::move(state));
  return Status::OK();
}

Status EngineImpl::CloseSegment(SegmentHandle handle) {
  if (!segments_.Take(handle)) return Status::NotFound("unknown segment handle");
  return Status::OK();
}

Status EngineImpl::RefreshSegment(SegmentHandle handle) {
  auto state = segments_.Find(handle);
  if (!state) return Status::NotFound("unknown segment handle");
  return Refresh(state.get());
}

Status EngineImpl::Refresh(OpenSegmentState* state) {
  if (state->name.empty() || state->name == segment_name_) {
    SegmentDescriptor desc;
    TE_RETURN_IF_ERROR(Resolve(state->name, &desc));
    return Bind(std::move(desc), state);
  }
  std::string tag;
  std::shared_ptr<const SegmentDescriptor> held;  // what the tag is of
  {
    std::lock_guard<std::mutex> lock(state->mu);
    tag = state->descriptor_tag;
    if (state->current) held = state->current->descriptor;
  }
  SegmentDescriptor desc;
  bool unchanged = false;
  TE_RETURN_IF_ERROR(metadata_->LookupIfChanged(state->name, &tag, held.get(), &desc, &unchanged));
  if (unchanged) return Status::OK();  // the routes bound to it stay
  return Bind(std::move(desc), state, tag);
}

Status EngineImpl::GetSegmentInfo(SegmentHandle handle, SegmentInfo* info) {
  if (!info) return Status::InvalidArgument("info is null");
  auto state = segments_.Find(handle);
  if (!state) return Status::NotFound("unknown segment handle");
  std::shared_ptr<const SegmentDescriptor> d = RoutesOf(state.get())->descriptor;
  info->name = d->name;
  info->machine_id = d->machine_id;
  info->transports.clear();
  for (const auto& [t, endpoint] : d->transports) info->transports.push_back(t);
  info->buffers.assign(d->buffers.begin(), d->buffers.end());
  return Status::OK();
}

// ---- batches ----

Status EngineImpl::AllocateBatch(size_t max_requests, BatchID* id) {
  if (!id) return Status::InvalidArgument("batch id is null");
  if (max_requests == 0 || max_requests > (1u << 20)) {
    return Status::InvalidArgument("max_requests must be in [1, 1048576]");
  }
  *id = next_batch_.fetch_add(1);
  batches_.Insert(*id, std::make_shared<Batch>(max_requests, metrics_.get()));
  return Status::OK();
}

Status EngineImpl::FreeBatch(BatchID id) {
  std::shared_ptr<Batch> batch = batches_.Take(id);
  if (!batch) return Status::NotFound("unknown batch " + std::to_string(id));
  batch->Cancel();
  batch->LeaveUnattended();
  // Slices on the wire end within the transfer timeout (or sooner, cancelled); wait
  // so that no byte lands in the caller's memory after we return.
  const auto freed = std::chrono::steady_clock::now();
  const auto deadline = freed + std::chrono::milliseconds(config_.transfer_timeout_ms +
                                                          config_.connect_timeout_ms + 1000);
  while (batch->in_flight() > 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      TE_LOG(Error) << "batch " << id << " still has " << batch->in_flight()
                    << " slices in flight after the timeout";
      // Leak it rather than free memory a transport may still complete into.
      new std::shared_ptr<Batch>(std::move(batch));
      return Status::Timeout("batch " + std::to_string(id) + " did not drain");
    }
    // The usual wait is for the last completion's final bookkeeping, a moment after
    // its task turned done: yield first, sleep only for slices still on the wire.
    if (std::chrono::steady_clock::now() - freed < std::chrono::microseconds(50)) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  return Status::OK();
}

Status EngineImpl::Submit(BatchID id, const std::vector<Request>& requests) {
  std::shared_ptr<Batch> batch = batches_.Find(id);
  if (!batch) return Status::NotFound("unknown batch " + std::to_string(id));
  if (requests.empty()) return Status::OK();

  // Validate and route everything before queuing anything. One allocation for all
  // the per-request state: allocations were most of a small batch's cost.
  struct Routed {
    int route = -1;                                // index into segment->routes
    int local_device = kHostMemory;                // where the request's local bytes are
    std::shared_ptr<const SegmentRoutes> segment;  // keeps the route alive; tasks keep
                                                   // a weak reference for retries
    std::shared_ptr<std::atomic<bool>> stale;
    const Route& Get() const { return segment->routes[static_cast<size_t>(route)]; }
  };
  std::vector<Routed> routed(requests.size());
  auto local_table = registry_.Snapshot();
  SegmentHandle cached_handle = 0;
  std::shared_ptr<const SegmentRoutes> segment;
  std::shared_ptr<std::atomic<bool>> stale_flag;
  std::shared_ptr<OpenSegmentState> cached_state, refreshed;
  for (size_t i = 0; i < requests.size(); ++i) {
    const Request& r = requests[i];
    // Error text only: built on failure, not per request.
    auto which = [i] { return "request " + std::to_string(i) + ": "; };
    if (r.opcode != Request::READ && r.opcode != Request::WRITE) {
      return Status::InvalidArgument(which() + "opcode must be READ or WRITE");
    }
    if (r.length == 0) return Status::InvalidArgument(which() + "length is 0");
    // Validation only: the caller owns its memory, so nothing is pinned here.
    const std::shared_ptr<RegisteredBuffer>* local = nullptr;
    Status s = BufferRegistry::CheckRange(*local_table, reinterpret_cast<uint64_t>(r.source),
                                          r.length, Access::kLocal, &local);
    if (!s.ok()) {
      return Status::InvalidArgument(which() + "local " + s.message());
    }
    routed[i].local_device = LocationDevice((*local)->info.location);
    if (!segment || r.target_id != cached_handle) {
      auto state = segments_.Find(r.target_id);
      if (!state)
        return Status::NotFound(which() + "unknown segment handle " + std::to_string(r.target_id));
      cached_handle = r.target_id;
      cached_state = state;
      segment = RoutesOf(state.get());
      stale_flag = state->stale;
      // Never waits: the refresh runs in the background and later submissions use it.
      if (stale_flag->exchange(false, std::memory_order_relaxed)) QueueRefresh(state);
    }
    // Per request: e.g. shared memory for a buffer in shm, CMA for plain memory.
    const SegmentBuffer* remote = segment->descriptor->FindBuffer(r.target_offset, r.length);
    if (!remote && refreshed != cached_state) {
      // A range outside the cached descriptor: the peer registered something since.
      QueueRefresh(cached_state);
      refreshed = cached_state;
    }
    routed[i].route = segment->NextRoute(-1, routed[i].local_device, remote);
    routed[i].segment = segment;
    routed[i].stale = stale_flag;
    if (routed[i].route < 0) {
      return Status::OutOfRange(which() + "remote range is not inside a known buffer of segment '" +
                                segment->descriptor->name +
                                "', and no enabled transport can check it remotely");
    }
  }

  std::lock_guard<std::mutex> lock(batch->submit_mu);
  size_t first;
  if (!batch->Reserve(requests.size(), &first)) {
    return Status::InvalidArgument("batch capacity " + std::to_string(batch->capacity()) +
                                   " exceeded");
  }
  const uint64_t slice_size = config_.slice_size;
  std::vector<Slice*> run;
  int64_t total_slices = 0;
  for (const Request& r : requests)
    total_slices += static_cast<int64_t>((r.length + slice_size - 1) / slice_size);
  batch->AddInFlight(total_slices);
  const uint64_t now_ns = metrics_->timing() ? EngineMetrics::NowNs() : 0;
  if (now_ns) batch->MarkSubmitted(now_ns);
  run.reserve(static_cast<size_t>(total_slices));
  // Consecutive requests to the same peer go to the transport in one call.
  for (size_t i = 0; i < requests.size();) {
    run.clear();
    size_t j = i;
    const Route& route = routed[i].Get();
    for (; j < requests.size() && routed[j].Get().peer == route.peer; ++j) {
      const Request& r = requests[j];
      Task& task = batch->task(first + j);
      const uint32_t count = static_cast<uint32_t>((r.length + slice_size - 1) / slice_size);
      Slice* slices = task.PrepareSlices(count);
      task.segment_stale = std::move(routed[j].stale);
      task.routes = routed[j].segment;
      task.transport.store(static_cast<uint32_t>(route.transport_index), std::memory_order_relaxed);
      task.submitted_ns = now_ns;
      for (uint32_t k = 0; k < count; ++k) {
        const uint64_t offset = k * slice_size;
        Slice& s = slices[k];
        s.opcode = r.opcode;
        s.local = static_cast<char*>(r.source) + offset;
        s.remote = r.target_offset + offset;
        s.length = std::min<uint64_t>(slice_size, r.length - offset);
        s.local_device = routed[j].local_device;
        s.cancelled = batch->cancel_flag();
        s.on_done = &Batch::OnSliceDone;
        s.owner = &task;
        s.route = routed[j].route;
        // A batch of one single-slice request: its submitter most likely waits for it
        // next (waitTransferStatus), and reads the response itself (LoneSlice).
        s.awaited.store(first == 0 && requests.size() == 1 && count == 1,
                        std::memory_order_relaxed);
        run.push_back(&s);
      }
      metrics_->CountRequest(route.transport_index, r.opcode, r.length);
    }
    batch->Publish(first + j);
    route.peer->Submit(run.data(), run.size());
    i = j;
  }
  return Status::OK();
}

Status EngineImpl::TaskStatus(BatchID id, size_t task, TransferStatus* status) {
  if (!status) return Status::InvalidArgument("status is null");
  std::shared_ptr<Batch> batch = batches_.Find(id);
  if (!batch) return Status::NotFound("unknown batch " + std::to_string(id));
  if (task >= batch->size()) {
    return Status::OutOfRange("task " + std::to_string(task) + " not submitted in batch " +
                              std::to_string(id));
  }
  *status = batch->task(task).Status();
  if (status->state == TransferState::kPending) batch->LeaveUnattended();
  return Status::OK();
}

Status EngineImpl::TaskStatuses(BatchID id, std::vector<TransferStatus>* statuses) {
  if (!statuses) return Status::InvalidArgument("statuses is null");
  std::shared_ptr<Batch> batch = batches_.Find(id);
  if (!batch) return Status::NotFound("unknown batch " + std::to_string(id));
  const size_t n = batch->size();
  statuses->resize(n);
  for (size_t i = 0; i < n; ++i) (*statuses)[i] = batch->task(i).Status();
  if (!batch->Done()) batch->LeaveUnattended();
  return Status::OK();
}

Status EngineImpl::BatchStatus(BatchID id, TransferStatus* overall) {
  if (!overall) return Status::InvalidArgument("status is null");
  std::shared_ptr<Batch> batch = batches_.Find(id);
  if (!batch) return Status::NotFound("unknown batch " + std::to_string(id));
  *overall = batch->Overall();
  if (overall->state == TransferState::kPending) batch->LeaveUnattended();
  return Status::OK();
}

Status EngineImpl::WaitBatch(BatchID id, TransferStatus* overall, uint32_t timeout_ms) {
  if (!overall) return Status::InvalidArgument("status is null");
  std::shared_ptr<Batch> batch = batches_.Find(id);
  if (!batch) return Status::NotFound("unknown batch " + std::to_string(id));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  // A one-request batch: receive its response in this thread when the transport
  // carrying it lets us, which spares the hand-off from the transport's thread. The
  // slice's route may change under us (a retry), so each route is asked; only the
  // one carrying it accepts. Each round that returns true received something.
  auto receive = [&](const Slice& lone, const SegmentRoutes& routes) {
    for (const Route& route : routes.routes) {
      if (route.peer->ReceiveFor(
              lone, [&batch] { return batch->Done(); }, deadline))
        return true;
    }
    return false;
  };
  std::shared_ptr<const SegmentRoutes> routes;
  for (const Slice* lone; !batch->Done() && (lone = batch->LoneSlice(&routes)) != nullptr &&
                          receive(*lone, *routes);) {
    if (std::chrono::steady_clock::now() >= deadline) break;
  }
  if (!batch->Done()) batch->LeaveUnattended();
  // Per thread: a thread's waits are alike (its batches), other threads' need not be.
  thread_local SpinBudget spin;
  batch->WaitDone(deadline, &spin);
  *overall = batch->Overall();
  return Status::OK();
}

// ---- notifications ----

Status EngineImpl::SendNotification(SegmentHandle handle, const std::string& message) {
  auto state = segments_.Find(handle);
  if (!state) return Status::NotFound("unknown segment handle");
  std::shared_ptr<const SegmentDescriptor> d = RoutesOf(state.get())->descriptor;
  nlohmann::json j = {{"message", message}};
  if (j.dump().size() > wire::kMaxControlPayload - 64) {
    return Status::InvalidArgument("notification larger than the control payload limit");
  }
  if (d->name == segment_name_) return RpcNotify(segment_name_, j.dump());
  RpcTarget target{d->rpc_host, d->rpc_port, config_.connect_timeout_ms};
  std::string reply;
  return RpcCall(target, {segment_name_, config_.cluster_secret}, wire::Opcode::kNotify, j.dump(),
                 &reply);
}

Status EngineImpl::ReceiveNotifications(std::vector<Notification>* out) {
  if (!out) return Status::InvalidArgument("notifications is null");
  std::lock_guard<std::mutex> lock(notify_mu_);
  while (!notifications_.empty()) {
    out->push_back(std::move(notifications_.front()));
    notifications_.pop_front();
  }
  return Status::OK();
}

std::string EngineImpl::PrimaryTransport() const {
  std::string best = "none";
  uint64_t most = 0;
  for (const auto& [name, bytes] : Statistics().bytes_by_transport) {
    if (bytes > most) {
      most = bytes;
      best = name;
    }
  }
  return best;
}

EngineStatistics EngineImpl::Statistics() const {
  EngineStatistics stats;
  if (!metrics_) return stats;  // Init failed before it got that far
  metrics_->Fill(&stats);
  if (metadata_) {
    const KvTraffic traffic = metadata_->Traffic();
    stats.metadata_requests = traffic.requests;
    stats.metadata_bytes_sent = traffic.bytes_sent;
    stats.metadata_bytes_received = traffic.bytes_received;
  }
  segments_.ForEach([&stats](uint64_t, const auto&) { ++stats.open_segments; });
  const auto table = registry_.Snapshot();
  stats.registered_buffers = table->size();
  table->ForEach(
      [&stats](const BufferTable::Entry& b) { stats.registered_bytes += b->info.length; });
  return stats;
}

}  // namespace te
