// registration_bench: what registering buffers costs as their number grows, and what
// peers pay to open and refresh a segment that has that many.
//
// For each count N (--counts): an owner engine registers N-K buffers in one batch,
// then K = min(N, --singles) one at a time (per-registration cost at N buffers) and
// unregisters and re-registers those K (per-unregistration cost); a second engine in
// this process opens the owner's segment (open time) and refreshes it --refreshes
// times while nothing changed (refresh time), then once after one registration
// (changed refresh). With p2p (the default) peers ask the owner over RPC on loopback:
// the descriptor's size is the bytes of a full answer to the get-segment RPC, and an
// unchanged refresh answers with none. With a central backend (--metadata_type=redis,
// etcd or http and --metadata_servers) the owner writes changes to the store and the
// peer reads them there; the byte columns are then what the engines' statistics
// count: sent to the store per registration, read by the open and by the changed
// refresh (docs/metadata.md).
//
//   registration_bench                       10, 1000, 10000, 100000 buffers, p2p
//   registration_bench --counts=10,100 --singles=10 --refreshes=5   a quick check
//   registration_bench --metadata_type=redis --metadata_servers=127.0.0.1:6379
#include <gflags/gflags.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "metadata/metadata_client.h"
#include "rpc/rpc_client.h"
#include "te/transfer_engine.h"

DEFINE_string(counts, "10,1000,10000,100000", "Comma-separated buffer counts");
DEFINE_uint64(singles, 1000, "Buffers registered one by one at each count (the rest: a batch)");
DEFINE_uint64(refreshes, 100, "Unchanged refreshes timed at each count");
DEFINE_uint64(buffer_size, 256, "Bytes per buffer (buffers lie side by side in one region)");
DEFINE_string(metadata_type, "p2p", "p2p, redis, etcd or http");
DEFINE_string(metadata_servers, "", "Servers of a central backend (as Config::metadata_servers)");

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const char* what, const te::Status& status) {
  std::fprintf(stderr, "error: %s: %s\n", what, status.ToString().c_str());
  std::exit(1);
}

void Check(const char* what, const te::Status& status) {
  if (!status.ok()) Die(what, status);
}

double MicrosSince(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

bool Central() { return FLAGS_metadata_type != "p2p"; }

// name: the segment's name with a central backend (p2p names it host:port).
std::unique_ptr<te::TransferEngine> MakeEngine(uint64_t capacity, const std::string& name) {
  te::Config config;
  config.rpc_host = "127.0.0.1";
  config.metadata_type = FLAGS_metadata_type;
  config.metadata_servers = FLAGS_metadata_servers;
  if (Central()) config.local_segment_name = name;
  config.transports = {"tcp"};
  config.log_level = "error";
  config.max_registered_buffers = static_cast<uint32_t>(capacity);
  auto engine = std::make_unique<te::TransferEngine>(config);
  if (!engine->available()) Die("engine", engine->status());
  return engine;
}

// Bytes of the owner's full get-segment answer, and of the answer to a peer that
// names the tag it holds.
std::pair<size_t, size_t> AnswerSizes(const te::TransferEngine& owner) {
  te::RpcTarget target{"127.0.0.1", owner.getRpcPort(), 10000};
  std::string full, unchanged;
  Check("get segment", te::RpcCall(target, {}, te::wire::Opcode::kGetSegment, "", &full));
  Check("get segment (tag)", te::RpcCall(target, {}, te::wire::Opcode::kGetSegment,
                                         te::DescriptorTag(full), &unchanged));
  return {full.size(), unchanged.size()};
}

te::EngineStatistics Stats(const te::TransferEngine& engine) {
  te::EngineStatistics stats;
  Check("statistics", engine.getStatistics(&stats));
  return stats;
}

void RunCount(uint64_t n) {
  const uint64_t singles = std::min<uint64_t>(n, FLAGS_singles);
  const std::string suffix = std::to_string(::getpid()) + "-" + std::to_string(n);
  auto owner = MakeEngine(n + 1, "registration-bench-owner-" + suffix);
  auto peer = MakeEngine(16, "registration-bench-peer-" + suffix);
  std::vector<char> region(n * FLAGS_buffer_size + 1);  // +1: the changed-refresh buffer
  auto address = [&](uint64_t i) { return static_cast<void*>(&region[i * FLAGS_buffer_size]); };
  te::MemoryOptions options;
  options.permission = te::Permission::kRemoteReadWrite;

  std::vector<std::pair<void*, size_t>> batch;
  for (uint64_t i = 0; i < n - singles; ++i) batch.emplace_back(address(i), FLAGS_buffer_size);
  auto start = Clock::now();
  Check("batch register", owner->registerLocalMemoryBatch(batch, options));
  const double batch_us = MicrosSince(start);
  const uint64_t sent_before = Stats(*owner).metadata_bytes_sent;
  start = Clock::now();
  for (uint64_t i = n - singles; i < n; ++i) {
    Check("register", owner->registerLocalMemory(address(i), FLAGS_buffer_size, options));
  }
  const double register_us = MicrosSince(start) / singles;
  const uint64_t register_bytes = (Stats(*owner).metadata_bytes_sent - sent_before) / singles;
  start = Clock::now();
  for (uint64_t i = n - singles; i < n; ++i)
    Check("unregister", owner->unregisterLocalMemory(address(i)));
  const double unregister_us = MicrosSince(start) / singles;
  for (uint64_t i = n - singles; i < n; ++i) {
    Check("register", owner->registerLocalMemory(address(i), FLAGS_buffer_size, options));
  }

  te::SegmentHandle handle = 0;
  uint64_t received = Stats(*peer).metadata_bytes_received;
  start = Clock::now();
  Check("open", peer->openSegment(&handle, owner->getSegmentName()));
  const double open_us = MicrosSince(start);
  const uint64_t open_bytes = Stats(*peer).metadata_bytes_received - received;
  start = Clock::now();
  for (uint64_t i = 0; i < FLAGS_refreshes; ++i) Check("refresh", peer->refreshSegment(handle));
  const double refresh_us = MicrosSince(start) / std::max<uint64_t>(1, FLAGS_refreshes);
  Check("register", owner->registerLocalMemory(&region[n * FLAGS_buffer_size], 1, options));
  received = Stats(*peer).metadata_bytes_received;
  start = Clock::now();
  Check("refresh", peer->refreshSegment(handle));
  const double changed_us = MicrosSince(start);
  const uint64_t changed_bytes = Stats(*peer).metadata_bytes_received - received;
  te::SegmentInfo info;
  Check("segment info", peer->getSegmentInfo(handle, &info));
  if (info.buffers.size() != n + 1) {
    Die("refresh", te::Status::Internal("peer sees " + std::to_string(info.buffers.size()) +
                                        " buffers, not " + std::to_string(n + 1)));
  }
  if (!Central()) {
    const auto [full_bytes, unchanged_bytes] = AnswerSizes(*owner);
    std::printf("%8llu %12.2f %12.3f %12.2f %12zu %10zu %12.1f %12.1f %12.1f\n",
                static_cast<unsigned long long>(n), register_us,
                n > singles ? batch_us / (n - singles) : 0.0, unregister_us, full_bytes,
                unchanged_bytes, open_us, refresh_us, changed_us);
    return;
  }
  std::printf("%8llu %12.2f %12.3f %12.2f %10llu %12llu %12llu %12.1f %12.1f %12.1f\n",
              static_cast<unsigned long long>(n), register_us,
              n > singles ? batch_us / (n - singles) : 0.0, unregister_us,
              static_cast<unsigned long long>(register_bytes),
              static_cast<unsigned long long>(open_bytes),
              static_cast<unsigned long long>(changed_bytes), open_us, refresh_us, changed_us);
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("registration cost and segment open/refresh cost by buffer count");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_buffer_size == 0 || FLAGS_singles == 0) {
    std::fprintf(stderr, "error: --buffer_size and --singles must be positive\n");
    return 2;
  }
  if (Central() && FLAGS_metadata_servers.empty()) {
    std::fprintf(stderr, "error: --metadata_type=%s needs --metadata_servers\n",
                 FLAGS_metadata_type.c_str());
    return 2;
  }
  if (Central()) {
    std::printf("%8s %12s %12s %12s %10s %12s %12s %12s %12s %12s\n", "buffers", "register_us",
                "batch_us/buf", "unreg_us", "reg_bytes", "open_bytes", "chg_bytes", "open_us",
                "refresh_us", "changed_us");
  } else {
    std::printf("%8s %12s %12s %12s %12s %10s %12s %12s %12s\n", "buffers", "register_us",
                "batch_us/buf", "unreg_us", "desc_bytes", "unch_bytes", "open_us", "refresh_us",
                "changed_us");
  }
  std::stringstream counts(FLAGS_counts);
  for (std::string item; std::getline(counts, item, ',');) {
    char* end = nullptr;
    const unsigned long long n = std::strtoull(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || n == 0 || n > (1u << 24) - 1) {
      std::fprintf(stderr, "error: --counts: '%s' is not a count in [1, 16777215]\n", item.c_str());
      return 2;
    }
    RunCount(n);
  }
  return 0;
}
