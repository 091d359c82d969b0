// The UCP context, memory mapping, endpoints and the UCT resource listing.
#include "transport/ucx/ucx_context.h"

#include <uct/api/uct.h>

#include <atomic>
#include <mutex>
#include <set>

#include "common/strings.h"
#include "transport/ucx/ucx_worker.h"

namespace te {
namespace {

// Owns the ucp_context_h; shared by the context and every mapping made from it, so
// the last of them cleans it up.
struct UcpContextHandle {
  ucp_context_h context = nullptr;
  std::mutex map_mu;  // ucp_mem_map/unmap and rkey packing, one at a time
  ~UcpContextHandle() {
    if (context) ucp_cleanup(context);
  }
};

class UcxMemoryImpl : public UcxMemory {
 public:
  UcxMemoryImpl(std::shared_ptr<UcpContextHandle> context, ucp_mem_h memh, std::string rkey)
      : context_(std::move(context)), memh_(memh), packed_rkey_(std::move(rkey)) {}
  ~UcxMemoryImpl() override {
    std::lock_guard<std::mutex> lock(context_->map_mu);
    ucp_mem_unmap(context_->context, memh_);
  }
  const std::string& packed_rkey() const override { return packed_rkey_; }

 private:
  std::shared_ptr<UcpContextHandle> context_;
  ucp_mem_h memh_;
  std::string packed_rkey_;
};

class UcxEndpointImpl : public UcxEndpoint {
 public:
  explicit UcxEndpointImpl(std::shared_ptr<UcxEndpointState> state) : state_(std::move(state)) {}
  ~UcxEndpointImpl() override { state_->worker->Release(state_); }
  void Post(UcxOp* const* ops, size_t count) override { state_->worker->Post(state_, ops, count); }
  bool failed() const override { return state_->failed.load(std::memory_order_acquire); }

 private:
  std::shared_ptr<UcxEndpointState> state_;
};

class UcxContextImpl : public UcxContext {
 public:
  ~UcxContextImpl() override {
    for (auto& worker : workers_) worker->Stop();
  }
  Status Init(const UcxOptions& options);
  size_t worker_count() const override { return workers_.size(); }
  const std::string& worker_address(size_t i) const override { return workers_.at(i)->address(); }
  Status Map(void* base, size_t length, bool remote_write,
             std::unique_ptr<UcxMemory>* out) override;
  Status Connect(std::string_view peer_address, std::shared_ptr<UcxEndpoint>* out) override;

 private:
  std::shared_ptr<UcpContextHandle> context_ = std::make_shared<UcpContextHandle>();
  std::vector<std::shared_ptr<UcxWorker>> workers_;
  std::atomic<size_t> next_worker_{0};
};

// UCX's configuration (its environment, then options' TLS and devices).
Status ReadConfig(const UcxOptions& options, ucp_config_t** config) {
  ucs_status_t status = ucp_config_read(nullptr, nullptr, config);
  if (status != UCS_OK) return UcxStatus("ucx: ucp_config_read", status);
  for (auto [name, value] :
       {std::pair{"TLS", &options.tls}, {"NET_DEVICES", &options.net_devices}}) {
    if (value->empty()) continue;
    status = ucp_config_modify(*config, name, value->c_str());
    if (status != UCS_OK) {
      ucp_config_release(*config);
      return UcxStatus("ucx: UCX_" + std::string(name) + "=" + *value + " refused", status);
    }
  }
  return Status::OK();
}

Status UcxContextImpl::Init(const UcxOptions& options) {
  if (options.workers == 0 || options.workers > kMaxUcxWorkers)
    return Status::InvalidArgument("ucx: workers must be 1.." + std::to_string(kMaxUcxWorkers));
  if (options.transfer_timeout_ms == 0)
    return Status::InvalidArgument("ucx: transfer_timeout_ms must be above 0");
  ucp_config_t* config = nullptr;
  TE_RETURN_IF_ERROR(ReadConfig(options, &config));
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
  // Callers map memory from their threads while workers run: let UCX lock the
  // context's shared state.
  params.mt_workers_shared = 1;
  ucs_status_t status = ucp_init(&params, config, &context_->context);
  ucp_config_release(config);
  if (status != UCS_OK) {
    context_->context = nullptr;
    return UcxStatus("ucx: ucp_init (UCX_TLS='" + options.tls + "', UCX_NET_DEVICES='" +
                         options.net_devices + "')",
                     status);
  }
  for (uint32_t i = 0; i < options.workers; ++i) {
    auto worker = std::make_shared<UcxWorker>();
    TE_RETURN_IF_ERROR(worker->Start(context_->context, options));
    workers_.push_back(std::move(worker));
  }
  return Status::OK();
}

Status UcxContextImpl::Map(void* base, size_t length, bool remote_write,
                           std::unique_ptr<UcxMemory>* out) {
  if (!base || length == 0) return Status::InvalidArgument("ucx: cannot map an empty buffer");
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                      UCP_MEM_MAP_PARAM_FIELD_PROT;
  params.address = base;
  params.length = length;
  params.prot = UCP_MEM_MAP_PROT_LOCAL_READ | UCP_MEM_MAP_PROT_LOCAL_WRITE |
                UCP_MEM_MAP_PROT_REMOTE_READ | (remote_write ? UCP_MEM_MAP_PROT_REMOTE_WRITE : 0);
  std::lock_guard<std::mutex> lock(context_->map_mu);
  ucp_mem_h memh = nullptr;
  ucs_status_t status = ucp_mem_map(context_->context, &params, &memh);
  if (status != UCS_OK) return UcxStatus("ucx: ucp_mem_map", status);
  void* packed = nullptr;
  size_t packed_length = 0;
  status = ucp_rkey_pack(context_->context, memh, &packed, &packed_length);
  if (status != UCS_OK) {
    ucp_mem_unmap(context_->context, memh);
    return UcxStatus("ucx: ucp_rkey_pack", status);
  }
  std::string rkey(static_cast<const char*>(packed), packed_length);
  ucp_rkey_buffer_release(packed);
  *out = std::make_unique<UcxMemoryImpl>(context_, memh, std::move(rkey));
  return Status::OK();
}

Status UcxContextImpl::Connect(std::string_view peer_address, std::shared_ptr<UcxEndpoint>* out) {
  if (peer_address.empty()) return Status::InvalidArgument("ucx: empty peer worker address");
  auto state = std::make_shared<UcxEndpointState>();
  state->worker = workers_[next_worker_.fetch_add(1, std::memory_order_relaxed) % workers_.size()];
  state->peer_address.assign(peer_address);
  *out = std::make_shared<UcxEndpointImpl>(std::move(state));
  return Status::OK();
}

// Verbs transports: what makes UCX worth preferring over our own tcp.
bool IsRdmaTransport(std::string_view tl) {
  static const std::set<std::string_view> kRdma = {"rc",      "rc_mlx5",  "dc_mlx5", "ud",
                                                   "ud_mlx5", "rc_verbs", "ud_verbs"};
  return kRdma.count(tl) > 0;
}

// Whether UCX_NET_DEVICES-style `filter` ("" or "all": any) names `device`.
bool DeviceAllowed(const std::string& filter, std::string_view device) {
  if (filter.empty() || filter == "all") return true;
  for (const std::string& name : SplitList(filter)) {
    if (name == device) return true;
  }
  return false;
}

// Appends the transports of one memory domain to *info.
void ListMdResources(uct_component_h component, const char* md_name, const UcxOptions& options,
                     UcxInfo* info) {
  uct_md_config_t* config = nullptr;
  if (uct_md_config_read(component, nullptr, nullptr, &config) != UCS_OK) return;
  uct_md_h md = nullptr;
  ucs_status_t status = uct_md_open(component, md_name, config, &md);
  uct_config_release(config);
  if (status != UCS_OK) return;
  uct_tl_resource_desc_t* resources = nullptr;
  unsigned count = 0;
  if (uct_md_query_tl_resources(md, &resources, &count) == UCS_OK) {
    for (unsigned i = 0; i < count; ++i) {
      info->resources.push_back(std::string(resources[i].tl_name) + "/" + resources[i].dev_name);
      if (IsRdmaTransport(resources[i].tl_name) &&
          DeviceAllowed(options.net_devices, resources[i].dev_name))
        info->rdma = true;
    }
    uct_release_tl_resource_list(resources);
  }
  uct_md_close(md);
}

}  // namespace

bool UcxBuilt() { return true; }

Status QueryUcx(const UcxOptions& options, UcxInfo* info) {
  *info = UcxInfo{};
  info->version = ucp_get_version_string();
  uct_component_h* components = nullptr;
  unsigned count = 0;
  ucs_status_t status = uct_query_components(&components, &count);
  if (status != UCS_OK) return UcxStatus("ucx: uct_query_components", status);
  for (unsigned i = 0; i < count; ++i) {
    uct_component_attr_t attr{};
    attr.field_mask = UCT_COMPONENT_ATTR_FIELD_MD_RESOURCE_COUNT;
    if (uct_component_query(components[i], &attr) != UCS_OK) continue;
    std::vector<uct_md_resource_desc_t> mds(attr.md_resource_count);
    attr.field_mask = UCT_COMPONENT_ATTR_FIELD_MD_RESOURCES;
    attr.md_resources = mds.data();
    if (uct_component_query(components[i], &attr) != UCS_OK) continue;
    for (const auto& md : mds) ListMdResources(components[i], md.md_name, options, info);
  }
  uct_release_component_list(components);
  return Status::OK();
}

Status UcxContext::Create(const UcxOptions& options, std::unique_ptr<UcxContext>* out) {
  auto context = std::make_unique<UcxContextImpl>();
  TE_RETURN_IF_ERROR(context->Init(options));
  *out = std::move(context);
  return Status::OK();
}

}  // namespace te
