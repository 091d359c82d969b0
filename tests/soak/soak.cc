// te_soak: a long mixed READ/WRITE run with integrity checking against a te_test_peer
// target that is restarted periodically (SIGKILL and SIGTERM in turn), reporting
// integrity errors, stuck tasks and the memory of both processes. Not part of CI;
// scripts/soak.sh runs it (10 minutes by default).
//
// Each worker owns a disjoint region of the target's buffer. It writes a fresh
// pattern there, reads it back and compares. Operations that overlap a restart may
// fail (counted, expected); one that fails with no restart overlapping it fails the
// run, as do an integrity error and a stuck task. A READ that completes after a
// WRITE that completed, with no restart in between, must return exactly what was
// written.
#include <gflags/gflags.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "peer_process.h"
#include "te/transfer_engine.h"
#include "test_util.h"

DEFINE_int32(minutes, 10, "How long to run");
DEFINE_int32(threads, 8, "Worker threads");
DEFINE_int32(restart_every_s, 60, "Seconds between target restarts (0: never)");
DEFINE_uint64(region, 8 << 20, "Bytes of the target's buffer each worker owns");
DEFINE_uint64(max_request, 4 << 20, "Largest request (sizes are drawn from 1 B up to it)");
DEFINE_bool(same_host, false, "Target on the same machine id with shared memory (shm/cma path)");
DEFINE_int32(report_every_s, 30, "Seconds between progress lines");

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

uint64_t RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  uint64_t value = 0;
  while (in >> key) {
    if (key == "VmRSS:") {
      in >> value;
      return value;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

// The target as the workers see it; replaced on each restart.
struct Target {
  uint64_t generation = 0;  // odd while a restart is under way
  te::SegmentHandle segment = 0;
  uint64_t base = 0;
};

class Soak {
 public:
  Soak() {
    te::Config config;
    config.rpc_host = "127.0.0.1";
    config.machine_id = MachineId("initiator");
    engine_ = std::make_unique<te::TransferEngine>(config);
  }

  int Run() {
    if (!engine_->available()) return Fail("engine: " + engine_->status().ToString());
    const uint64_t local_size = 2 * FLAGS_region * static_cast<uint64_t>(FLAGS_threads);
    if (!engine_->allocateLocalMemory(&local_, local_size).ok() ||
        !engine_->registerLocalMemory(local_, local_size).ok()) {
      return Fail("cannot allocate local memory");
    }
    port_ = "--rpc_port=" + std::to_string(20000 + ::getpid() % 20000);
    if (!StartTarget()) return 1;

    std::vector<std::thread> workers;
    for (int i = 0; i < FLAGS_threads; ++i) workers.emplace_back([this, i] { Work(i); });
    const auto start = Clock::now(), end = start + std::chrono::minutes(FLAGS_minutes);
    auto next_restart = start + std::chrono::seconds(FLAGS_restart_every_s);
    auto next_report = start + std::chrono::seconds(FLAGS_report_every_s);
    std::printf("%8s %12s %12s %8s %10s %8s %8s %10s %10s\n", "seconds", "ops", "GiB", "failed",
                "unexpected", "corrupt", "stuck", "rss_self", "rss_target");
    while (Clock::now() < end && stuck_ == 0) {
      std::this_thread::sleep_for(100ms);
      if (FLAGS_restart_every_s > 0 && Clock::now() >= next_restart) {
        if (!Restart()) break;
        next_restart = Clock::now() + std::chrono::seconds(FLAGS_restart_every_s);
      }
      if (Clock::now() >= next_report) {
        Report(start);
        next_report += std::chrono::seconds(FLAGS_report_every_s);
      }
    }
    stop_ = true;
    for (auto& w : workers) w.join();
    Report(start);
    std::printf(
        "summary: %llu ops, %.1f GiB moved, %llu failed during restarts, %llu failed "
        "outside restarts, %d restarts, %llu integrity errors, %llu stuck tasks; RSS self "
        "%llu -> %llu KiB, target (since its last restart) %llu -> %llu KiB\n",
        ull(ops_), bytes_ / double(1ull << 30), ull(failed_), ull(unexpected_), restarts_,
        ull(corrupt_), ull(stuck_), ull(self_rss_first_), ull(RssKiB(::getpid())),
        ull(target_rss_first_), ull(RssKiB(target_->pid())));
    // Failures are expected only where a restart overlapped the operation.
    return corrupt_ == 0 && stuck_ == 0 && unexpected_ == 0 && !failed_to_restart_ ? 0 : 1;
  }

 private:
  static unsigned long long ull(uint64_t v) { return v; }
  static int Fail(const std::string& why) {
    std::fprintf(stderr, "error: %s\n", why.c_str());
    return 1;
  }
  std::string MachineId(const char* who) const {
    return FLAGS_same_host ? "te-soak-" + std::to_string(::getpid())
                           : std::string("te-soak-") + who + "-" + std::to_string(::getpid());
  }

  bool StartTarget() {
    auto peer = std::make_unique<te_test::PeerProcess>();
    const uint64_t size = FLAGS_region * static_cast<uint64_t>(FLAGS_threads);
    std::vector<std::string> args = {"--buffers=1", "--size=" + std::to_string(size), port_,
                                     "--machine_id=" + MachineId("target")};
    if (FLAGS_same_host) args.push_back("--shm=1");
    std::string error;
    if (!peer->Start(args, &error, 30s)) {
      failed_to_restart_ = true;
      std::fprintf(stderr, "error: target did not start: %s\n", error.c_str());
      return false;
    }
    te::SegmentHandle segment;
    te::Status s = engine_->openSegment(&segment, peer->segment_name());
    if (!s.ok()) {
      failed_to_restart_ = true;
      std::fprintf(stderr, "error: openSegment: %s\n", s.ToString().c_str());
      return false;
    }
    target_ = std::move(peer);
    target_rss_first_ = 0;
    std::lock_guard<std::mutex> lock(mu_);
    if (current_.segment != 0) engine_->closeSegment(current_.segment);
    current_ = {(current_.generation | 1) + 1, segment, target_->buffers()[0].base};
    return true;
  }

  bool Restart() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++current_.generation;  // odd: in-flight pairs will not be compared
    }
    target_->Signal(restarts_ % 2 == 0 ? SIGKILL : SIGTERM);
    target_->WaitExit(10s);
    target_.reset();
    ++restarts_;
    return StartTarget();
  }

  void NoteError(const std::string& error) {
    std::lock_guard<std::mutex> lock(mu_);
    if (last_error_.empty()) std::fprintf(stderr, "first failure: %s\n", error.c_str());
    last_error_ = error;
  }

  Target Current() {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }

  // Runs one request to completion; false when it failed. A task still pending long
  // after the transfer timeout is stuck.
  bool Transfer(te::Request::OpCode op, char* local, const Target& t, uint64_t offset,
                uint64_t len) {
    te::BatchID batch;
    if (!engine_->allocateBatch(1, &batch).ok()) return false;
    te::Request r{op, local, t.segment, t.base + offset, len};
    bool ok = false;
    if (engine_->submitTransfer(batch, {r}).ok()) {
      te::TransferStatus st;
      te::Status waited = engine_->waitTransferStatus(batch, &st, 15000);
      if (!waited.ok()) {
        st.state = te::TransferState::kFailed;
        st.error = "waitTransferStatus: " + waited.ToString();
      } else if (st.state == te::TransferState::kPending) {
        ++stuck_;
        std::fprintf(stderr, "stuck: %s of %llu bytes pending for 15 s\n",
                     op == te::Request::READ ? "READ" : "WRITE", ull(len));
      }
      ok = st.state == te::TransferState::kCompleted;
      if (st.state == te::TransferState::kFailed) NoteError(st.error);
    } else {
      NoteError("submitTransfer failed");
    }
    engine_->freeBatch(batch);
    return ok;
  }

  void Work(int index) {
    std::mt19937_64 rng(0x5eed + index);
    char* src = static_cast<char*>(local_) + 2 * FLAGS_region * index;
    char* dst = src + FLAGS_region;
    const uint64_t region = FLAGS_region * index;
    uint64_t seed = static_cast<uint64_t>(index) << 40;
    while (!stop_) {
      const uint64_t len = 1 + rng() % std::min<uint64_t>(FLAGS_max_request, FLAGS_region);
      const uint64_t offset = rng() % (FLAGS_region - len + 1);
      te_test::FillPattern(src, len, ++seed);
      const Target before = Current();
      if (before.generation % 2 == 1) {
        std::this_thread::sleep_for(10ms);
        continue;
      }
      bool ok = Transfer(te::Request::WRITE, src, before, region + offset, len) &&
                Transfer(te::Request::READ, dst, before, region + offset, len);
      ++ops_;
      if (!ok) {
        if (Current().generation == before.generation) {
          // No restart began or ended while it ran: the target was up throughout.
          ++unexpected_;
          std::fprintf(stderr, "failure outside a restart: worker %d, %llu bytes at %llu\n", index,
                       ull(len), ull(offset));
        } else {
          ++failed_;
        }
        std::this_thread::sleep_for(10ms);
        continue;
      }
      bytes_ += 2 * len;
      if (Current().generation != before.generation) continue;  // a restart overlapped
      if (te_test::FirstPatternMismatch(dst, len, seed) != -1) {
        ++corrupt_;
        std::fprintf(stderr, "integrity error: worker %d, %llu bytes at offset %llu\n", index,
                     ull(len), ull(offset));
      }
    }
  }

  void Report(Clock::time_point start) {
    const uint64_t self = RssKiB(::getpid()), target = target_ ? RssKiB(target_->pid()) : 0;
    if (self_rss_first_ == 0) self_rss_first_ = self;
    if (target_rss_first_ == 0) target_rss_first_ = target;
    std::printf("%8lld %12llu %12.1f %8llu %10llu %8llu %8llu %10llu %10llu\n",
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count()),
                ull(ops_), bytes_ / double(1ull << 30), ull(failed_), ull(unexpected_),
                ull(corrupt_), ull(stuck_), ull(self), ull(target));
    std::fflush(stdout);
  }

  std::unique_ptr<te::TransferEngine> engine_;
  void* local_ = nullptr;
  std::string port_;
  std::unique_ptr<te_test::PeerProcess> target_;  // touched by the main thread only
  std::mutex mu_;
  Target current_;          // guarded by mu_
  std::string last_error_;  // guarded by mu_
  int restarts_ = 0;
  bool failed_to_restart_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> ops_{0}, bytes_{0}, failed_{0}, unexpected_{0}, corrupt_{0}, stuck_{0};
  uint64_t self_rss_first_ = 0, target_rss_first_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("Soak test of the transfer engine; see scripts/soak.sh.");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (argc > 1 || FLAGS_minutes < 1 || FLAGS_threads < 1 || FLAGS_region < 4096 ||
      FLAGS_max_request < 1 || FLAGS_report_every_s < 1 || FLAGS_restart_every_s < 0) {
    std::fprintf(stderr, "error: bad arguments (see --help)\n");
    return 1;
  }
  return Soak().Run();
}
