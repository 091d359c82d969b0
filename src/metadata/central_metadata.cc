#include "metadata/central_metadata.h"

#include <algorithm>
#include <chrono>

#include "common/logging.h"
#include "rpc/rpc_client.h"

namespace te {
namespace {

using Clock = std::chrono::steady_clock;

// Two descriptors come from the same engine instance. Buffers change over an engine's
// life and are left out; the data endpoints are fixed at start and usually differ
// between instances, which tells a restarted engine from its predecessor.
bool SameEngine(const SegmentDescriptor& a, const SegmentDescriptor& b) {
  return a.name == b.name && a.machine_id == b.machine_id && a.pid == b.pid &&
         a.rpc_host == b.rpc_host && a.rpc_port == b.rpc_port && a.transports == b.transports;
}

std::string Endpoint(const SegmentDescriptor& d) {
  const bool v6 = d.rpc_host.find(':') != std::string::npos;
  return (v6 ? "[" + d.rpc_host + "]" : d.rpc_host) + ":" + std::to_string(d.rpc_port);
}

}  // namespace

CentralMetadataClient::CentralMetadataClient(std::unique_ptr<KvBackend> backend,
                                             CentralOptions options)
    : backend_(std::move(backend)), options_(std::move(options)) {}

CentralMetadataClient::~CentralMetadataClient() { StopKeepAlive(); }

Status CentralMetadataClient::Publish(const SegmentDescriptor& local) {
  const std::string key = KeyOf(local.name);
  const std::string value = local.ToJson();
  std::lock_guard<std::mutex> lock(mu_);
  if (!key_.empty() && key_ != key) {
    return Status::InvalidArgument("segment '" + local.name + "' cannot be published: '" +
                                   key_.substr(KeyOf("").size()) + "' is published already");
  }
  desired_ = value;
  if (key_.empty()) {
    TE_RETURN_IF_ERROR(Claim(local, key, value));
    key_ = key;
    written_ = value;
    std::lock_guard<std::mutex> stop_lock(stop_mu_);
    stop_ = false;
    keepalive_ = std::thread([this] { KeepAliveLoop(); });
    return Status::OK();
  }
  Status s = backend_->Update(key_, value, written_);
  if (s.ok()) {
    written_ = value;
    return s;
  }
  // The keep-alive retries with desired_, so the store catches up once it answers.
  if (s.code() == Status::Code::kAlreadyExists) {
    return Status::AlreadyExists("segment name '" + local.name +
                                 "' was taken over by another engine: " + s.message());
  }
  return s;
}

Status CentralMetadataClient::Claim(const SegmentDescriptor& local, const std::string& key,
                                    const std::string& value) {
  bool waiting = false;
  Clock::time_point deadline;
  // Each round either returns or sees the entry vanish or stay held by a silent
  // engine; the deadline (or the attempt cap, against an entry flapping forever)
  // ends the loop.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    Status s = backend_->Create(key, value);
    if (s.ok()) return s;
    if (s.code() != Status::Code::kAlreadyExists) {
      return Status(s.code(), "publishing segment '" + local.name + "': " + s.message());
    }
    KvEntry entry;
    s = backend_->Read(key, &entry);
    if (s.code() == Status::Code::kNotFound) continue;  // expired or removed meanwhile
    if (!s.ok()) return Status(s.code(), "publishing segment '" + local.name + "': " + s.message());

    std::string who;
    if (Inspect(entry.value, local, &who) == Holder::kAlive) {
      return Status::AlreadyExists("segment name '" + local.name + "' is taken by a live engine " +
                                   who + " (" + backend_->Describe() + ")");
    }
    if (entry.expires_in_ms < 0) {
      // No TTL: nothing else would ever remove a dead engine's entry.
      TE_LOG(Info) << "segment '" << local.name << "': taking over the entry of the engine " << who
                   << ", which does not answer";
      s = backend_->Overwrite(key, value);
      if (!s.ok())
        return Status(s.code(), "publishing segment '" + local.name + "': " + s.message());
      return s;
    }
    // The holder does not answer but its entry lives: either it died (the entry
    // expires soon) or it is alive and cut off from us (it keeps renewing the entry).
    const auto now = Clock::now();
    if (!waiting) {
      waiting = true;
      // The margin covers stores that expire lazily (etcd checks leases every 500 ms
      // and reports whole seconds).
      const int64_t wait_ms = std::min<int64_t>(entry.expires_in_ms, options_.ttl_ms) + 2000;
      deadline = now + std::chrono::milliseconds(wait_ms);
      TE_LOG(Info) << "segment '" << local.name << "' is held by an engine " << who
                   << ", which does not answer; waiting up to " << wait_ms
                   << " ms for its entry to expire";
    } else if (now >= deadline) {
      return Status::AlreadyExists("segment name '" + local.name + "' is held by an engine " + who +
                                   ", which does not answer but keeps its entry alive (" +
                                   backend_->Describe() + ")");
    }
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(200), deadline - now));
  }
  return Status::Unavailable("segment name '" + local.name + "': its entry keeps changing");
}

CentralMetadataClient::Holder CentralMetadataClient::Inspect(const std::string& value,
                                                             const SegmentDescriptor& local,
                                                             std::string* who) {
  SegmentDescriptor holder;
  Status s = SegmentDescriptor::FromJson(value, &holder);
  if (!s.ok()) {
    *who = "(unreadable entry)";
    TE_LOG(Warning) << "segment '" << local.name << "': existing entry is not a descriptor ("
                    << s.message() << ")";
    return Holder::kGone;
  }
  *who = "at " + Endpoint(holder) + " (pid " + std::to_string(holder.pid) + ")";
  RpcTarget target{holder.rpc_host, holder.rpc_port, options_.timeout_ms};
  std::string reply;
  SegmentDescriptor live;
  s = RpcCall(target, options_.self, wire::Opcode::kGetSegment, "", &reply);
  if (s.code() == Status::Code::kPermissionDenied) {
    // An engine of another cluster (or with another secret) answers there; never
    // take a name from an engine we cannot identify. A dead holder's entry expires.
    TE_LOG(Warning) << "segment '" << local.name << "': holder " << *who
                    << " refused our handshake: " << s.message();
    return Holder::kAlive;
  }
  if (s.ok()) s = SegmentDescriptor::FromJson(reply, &live);
  if (!s.ok()) {
    TE_LOG(Info) << "segment '" << local.name << "': holder " << *who
                 << " does not answer: " << s.ToString();
    return Holder::kGone;
  }
  // The holder's address may now be ours (a restart on a fixed port, even with the
  // same pid in a container): then the previous instance is gone.
  if (SameEngine(live, local)) return Holder::kGone;
  return SameEngine(live, holder) ? Holder::kAlive : Holder::kGone;
}

Status CentralMetadataClient::Unpublish(const std::string& name) {
  StopKeepAlive();
  std::lock_guard<std::mutex> lock(mu_);
  if (key_.empty()) return Status::OK();
  if (key_ != KeyOf(name)) {
    return Status::InvalidArgument("segment '" + name + "' is not the one published here");
  }
  Status s = backend_->Remove(key_, written_);
  key_.clear();
  written_.clear();
  desired_.clear();
  if (!s.ok()) return Status(s.code(), "removing segment '" + name + "': " + s.message());
  return s;
}

Status CentralMetadataClient::Lookup(const std::string& name, SegmentDescriptor* out) {
  KvEntry entry;
  Status s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    s = backend_->Read(KeyOf(name), &entry);
  }
  if (s.code() == Status::Code::kNotFound) {
    return Status::NotFound("segment '" + name + "' is not published in " + backend_->Describe());
  }
  if (!s.ok()) return Status(s.code(), "looking up segment '" + name + "': " + s.message());
  s = SegmentDescriptor::FromJson(entry.value, out);
  if (!s.ok()) return Status(s.code(), "segment '" + name + "': " + s.message());
  if (out->name != name) {
    return Status::ProtocolError("entry of segment '" + name + "' describes '" + out->name + "'");
  }
  return Status::OK();
}

void CentralMetadataClient::KeepAliveLoop() {
  const auto period = std::chrono::milliseconds(std::max<uint32_t>(options_.ttl_ms / 3, 100));
  while (true) {
    {
      std::unique_lock<std::mutex> stop_lock(stop_mu_);
      if (stop_cv_.wait_for(stop_lock, period, [this] { return stop_; })) return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (key_.empty()) return;
    Status s = backend_->KeepAlive(key_, desired_, written_);
    if (s.ok()) {
      written_ = desired_;
      if (failing_) TE_LOG(Info) << "metadata entry '" << key_ << "' is alive again";
      failing_ = false;
    } else if (!failing_) {
      // Logged once per outage; the loop keeps trying every period.
      TE_LOG(Warning) << "keeping metadata entry '" << key_ << "' alive: " << s.ToString();
      failing_ = true;
    }
  }
}

void CentralMetadataClient::StopKeepAlive() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (keepalive_.joinable()) keepalive_.join();
}

}  // namespace te
