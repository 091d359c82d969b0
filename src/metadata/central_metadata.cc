#include "metadata/central_metadata.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

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

std::string RandomInstance() {
  std::random_device random;
  const uint64_t value = (static_cast<uint64_t>(random()) << 32) ^ random();
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace

CentralMetadataClient::CentralMetadataClient(std::unique_ptr<KvBackend> backend,
                                             CentralOptions options)
    : backend_(std::move(backend)), options_(std::move(options)), instance_(RandomInstance()) {}

CentralMetadataClient::~CentralMetadataClient() { StopKeepAlive(); }

Status CentralMetadataClient::Publish(const SegmentDescriptor& local) {
  const SegmentKeys keys = SegmentKeys::Of(local.name);
  std::map<uint64_t, std::string> buffers;
  for (const SegmentBuffer& b : local.buffers) buffers[b.base] = SegmentBufferToJson(b);
  std::lock_guard<std::mutex> lock(mu_);
  if (published_ && keys_.header != keys.header) {
    return Status::InvalidArgument("segment '" + local.name + "' cannot be published: '" +
                                   segment_.name + "' is published already");
  }
  segment_ = local;
  segment_.buffers.clear();
  if (published_) {
    // A whole descriptor again: write the difference.
    KvWrite write;
    std::vector<uint64_t> bases;
    for (const auto& [base, entry] : buffers) {
      auto it = buffers_.find(base);
      if (it != buffers_.end() && it->second == entry) continue;
      bases.push_back(base);
      write.put.emplace_back(BufferId(base), entry);
    }
    for (const auto& [base, entry] : buffers_) {
      if (buffers.count(base) == 0) {
        bases.push_back(base);
        write.erase.push_back(BufferId(base));
      }
    }
    buffers_ = std::move(buffers);
    return Commit(bases, std::move(write));
  }
  state_ = HeaderState{instance_, 1, 1, {}};
  const std::string header = HeaderToJson(segment_, state_);
  TE_RETURN_IF_ERROR(Claim(local, keys.header, header));
  keys_ = keys;
  written_ = header;
  buffers_ = std::move(buffers);
  // The claim wrote the header alone; now the buffers, replacing any a predecessor left.
  Status s = Write(FullWrite());
  if (!s.ok()) {
    backend_->Remove(keys_, written_);
    return Status(s.code(), "publishing segment '" + local.name + "': " + s.message());
  }
  published_ = true;
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  stop_ = false;
  keepalive_ = std::thread([this] { KeepAliveLoop(); });
  return Status::OK();
}

Status CentralMetadataClient::PublishChanges(const std::vector<SegmentBuffer>& added,
                                             const std::vector<uint64_t>& removed) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!published_) return Status::FailedPrecondition("no segment is published");
  KvWrite write;
  std::vector<uint64_t> bases;
  for (const SegmentBuffer& b : added) {
    std::string entry = SegmentBufferToJson(b);
    write.put.emplace_back(BufferId(b.base), entry);
    buffers_[b.base] = std::move(entry);
    bases.push_back(b.base);
  }
  for (uint64_t base : removed) {
    if (buffers_.erase(base) == 0) continue;  // never published (local-only)
    write.erase.push_back(BufferId(base));
    bases.push_back(base);
  }
  if (bases.empty()) return Status::OK();
  return Commit(bases, std::move(write));
}

Status CentralMetadataClient::Commit(const std::vector<uint64_t>& bases, KvWrite write) {
  if (dirty_) {
    write = FullWrite();
  } else {
    state_.Record(bases);
    write.header = HeaderToJson(segment_, state_);
  }
  Status s = Write(write);
  if (s.ok()) return s;
  // The keep-alive rewrites everything (FullWrite), so the store catches up once it
  // answers.
  dirty_ = true;
  if (s.code() == Status::Code::kAlreadyExists) {
    return Status::AlreadyExists("segment name '" + segment_.name +
                                 "' was taken over by another engine: " + s.message());
  }
  return s;
}

KvWrite CentralMetadataClient::FullWrite() {
  KvWrite write;
  write.replace = true;
  write.put.reserve(buffers_.size());
  for (const auto& [base, entry] : buffers_) write.put.emplace_back(BufferId(base), entry);
  state_.Reset();
  write.header = HeaderToJson(segment_, state_);
  return write;
}

Status CentralMetadataClient::Write(const KvWrite& write) {
  Status s = backend_->Update(keys_, write, written_);
  if (s.code() == Status::Code::kNotFound) return Recreate();
  if (!s.ok()) return s;
  written_ = write.header;
  if (write.replace) dirty_ = false;
  return s;
}

Status CentralMetadataClient::Recreate() {
  // The header first (claiming the name again: kAlreadyExists if another engine was
  // faster), then everything in a newer version, so peers that read the header
  // alone meanwhile read everything on their next refresh.
  state_.Reset();
  const std::string header = HeaderToJson(segment_, state_);
  TE_RETURN_IF_ERROR(backend_->Create(keys_.header, header));
  written_ = header;
  const KvWrite write = FullWrite();
  TE_RETURN_IF_ERROR(backend_->Update(keys_, write, written_));
  written_ = write.header;
  dirty_ = false;
  return Status::OK();
}

Status CentralMetadataClient::Sync() {
  if (dirty_) return Write(FullWrite());
  Status s = backend_->KeepAlive(keys_, written_);
  if (s.code() == Status::Code::kNotFound) return Recreate();
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
    s = backend_->Read(key, /*with_expiry=*/true, &entry);
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
  if (!published_) return Status::OK();
  if (keys_.header != KeyOf(name)) {
    return Status::InvalidArgument("segment '" + name + "' is not the one published here");
  }
  Status s = backend_->Remove(keys_, written_);
  published_ = false;
  written_.clear();
  buffers_.clear();
  if (!s.ok()) return Status(s.code(), "removing segment '" + name + "': " + s.message());
  return s;
}

Status CentralMetadataClient::Lookup(const std::string& name, SegmentDescriptor* out) {
  std::string tag;
  bool unchanged = false;
  return LookupIfChanged(name, &tag, nullptr, out, &unchanged);
}

Status CentralMetadataClient::LookupIfChanged(const std::string& name, std::string* tag,
                                              const SegmentDescriptor* held, SegmentDescriptor* out,
                                              bool* unchanged) {
  *unchanged = false;
  KvEntry entry;
  Status s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    s = backend_->Read(KeyOf(name), /*with_expiry=*/false, &entry);
  }
  if (s.code() == Status::Code::kNotFound) {
    return Status::NotFound("segment '" + name + "' is not published in " + backend_->Describe());
  }
  if (!s.ok()) return Status(s.code(), "looking up segment '" + name + "': " + s.message());
  SegmentDescriptor found;
  std::string new_tag;
  s = ReadBuffersOf(entry.value, held ? *tag : "", held, &found, &new_tag);
  if (!s.ok()) return Status(s.code(), "segment '" + name + "': " + s.message());
  if (found.name != name) {
    return Status::ProtocolError("entry of segment '" + name + "' describes '" + found.name + "'");
  }
  if (held && new_tag == *tag) {
    *unchanged = true;
    return Status::OK();
  }
  *out = std::move(found);
  *tag = std::move(new_tag);
  return Status::OK();
}

Status CentralMetadataClient::ReadBuffersOf(const std::string& header, const std::string& tag,
                                            const SegmentDescriptor* held, SegmentDescriptor* out,
                                            std::string* new_tag) {
  HeaderState state;
  TE_RETURN_IF_ERROR(HeaderFromJson(header, out, &state));
  *new_tag = state.Tag();
  if (held && *new_tag == tag) return Status::OK();  // unchanged: nothing more to read
  const SegmentKeys keys = SegmentKeys::Of(out->name);
  std::vector<uint64_t> bases;
  if (held && state.ChangedSince(tag, &bases)) {
    std::vector<std::string> ids;
    for (uint64_t base : bases) ids.push_back(BufferId(base));
    std::vector<std::optional<std::string>> values;
    {
      std::lock_guard<std::mutex> lock(mu_);
      TE_RETURN_IF_ERROR(backend_->ReadSomeBuffers(keys, ids, &values));
    }
    return ApplyBufferChanges(held->buffers, bases, values, &out->buffers);
  }
  std::vector<std::string> values;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TE_RETURN_IF_ERROR(backend_->ReadBuffers(keys, &values));
  }
  out->buffers.resize(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    TE_RETURN_IF_ERROR(SegmentBufferFromJson(values[i], &out->buffers[i]));
  }
  return SortAndCheckBuffers(&out->buffers);
}

void CentralMetadataClient::KeepAliveLoop() {
  const auto period = std::chrono::milliseconds(std::max<uint32_t>(options_.ttl_ms / 3, 100));
  while (true) {
    {
      std::unique_lock<std::mutex> stop_lock(stop_mu_);
      if (stop_cv_.wait_for(stop_lock, period, [this] { return stop_; })) return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!published_) return;
    Status s = Sync();
    if (s.ok()) {
      if (failing_) TE_LOG(Info) << "metadata entry '" << keys_.header << "' is alive again";
      failing_ = false;
    } else if (!failing_) {
      // Logged once per outage; the loop keeps trying every period.
      TE_LOG(Warning) << "keeping metadata entry '" << keys_.header << "' alive: " << s.ToString();
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
