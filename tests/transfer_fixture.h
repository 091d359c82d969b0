// Shared by the cross-process tests: bounded waits, batch helpers, and a fixture that
// runs one engine in the test process and spawns te_test_peer processes.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "peer_process.h"
#include "te/transfer_engine.h"
#include "test_util.h"

namespace te_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using te::Permission;
using te::Request;
using te::TransferState;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;

// Default config on 127.0.0.1. Every engine of these tests claims its own machine id,
// as if on separate hosts, so that the same-host transports (shm, cma) stand aside
// and peers' bytes travel over TCP; the in-process "local" path stays available.
inline te::Config LoopbackConfig() {
  te::Config config;
  config.rpc_host = "127.0.0.1";
  config.machine_id = "te-test-main-" + std::to_string(::getpid());
  return config;
}

inline uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }
inline uint8_t* Ptr(void* p, uint64_t offset = 0) { return static_cast<uint8_t*>(p) + offset; }

inline int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Polls the batch until no task is pending or `timeout` passes. On timeout the
// result is still kPending (with error "timed out ..."); when getTransferStatus
// itself fails the result is kFailed with that error.
inline te::TransferStatus WaitBatch(te::TransferEngine& engine, te::BatchID batch,
                                    std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  te::TransferStatus overall;
  while (true) {
    te::Status s = engine.getTransferStatus(batch, &overall);
    if (!s.ok()) {
      overall.state = TransferState::kFailed;
      overall.error = "getTransferStatus failed: " + s.ToString();
      return overall;
    }
    if (overall.state != TransferState::kPending) return overall;
    if (Clock::now() >= deadline) {
      overall.error = "timed out after " + std::to_string(timeout.count()) + " ms";
      return overall;
    }
    std::this_thread::sleep_for(1ms);
  }
}

// Result of a submitted batch: the submitTransfer status and, when it was accepted,
// the overall transfer status.
struct Outcome {
  te::Status submit;
  te::TransferStatus overall;
  std::vector<te::TransferStatus> tasks;
  // The first failed task's error (the overall status need not carry one).
  std::string task_error;

  bool completed() const { return submit.ok() && overall.state == TransferState::kCompleted; }
  bool rejected() const { return !submit.ok() || overall.state == TransferState::kFailed; }
  std::string Describe() const {
    if (!submit.ok()) return "submitTransfer: " + submit.ToString();
    return std::string(te::TransferStateName(overall.state)) + " (" +
           std::to_string(overall.transferred_bytes) + " bytes) " + overall.error +
           (task_error.empty() ? "" : " [task: " + task_error + "]");
  }
};

inline Outcome RunBatch(te::TransferEngine& engine, const std::vector<Request>& requests,
                        std::chrono::milliseconds timeout = 20s) {
  Outcome out;
  te::BatchID batch = 0;
  te::Status s = engine.allocateBatch(requests.size(), &batch);
  if (!s.ok()) {
    ADD_FAILURE() << "allocateBatch: " << s.ToString();
    out.submit = s;
    return out;
  }
  out.submit = engine.submitTransfer(batch, requests);
  if (out.submit.ok()) {
    out.overall = WaitBatch(engine, batch, timeout);
    if (engine.getTransferStatus(batch, &out.tasks).ok()) {
      for (const auto& t : out.tasks) {
        if (t.state == TransferState::kFailed && out.task_error.empty()) out.task_error = t.error;
      }
    }
  }
  // A batch still pending here is a failure the caller reports; freeBatch is bounded.
  EXPECT_TRUE(engine.freeBatch(batch).ok());
  return out;
}

inline Request MakeRequest(Request::OpCode op, void* local, te::SegmentHandle target,
                           uint64_t remote, uint64_t length) {
  Request r;
  r.opcode = op;
  r.source = local;
  r.target_id = target;
  r.target_offset = remote;
  r.length = length;
  return r;
}

// `count` requests of `length` bytes each, the i-th at offset i * length on both sides.
inline std::vector<Request> ConsecutiveRequests(Request::OpCode op, void* local,
                                                te::SegmentHandle target, uint64_t remote,
                                                uint64_t count, uint64_t length) {
  std::vector<Request> requests;
  for (uint64_t i = 0; i < count; ++i) {
    requests.push_back(MakeRequest(op, static_cast<char*>(local) + i * length, target,
                                   remote + i * length, length));
  }
  return requests;
}

inline Outcome RunOne(te::TransferEngine& engine, Request::OpCode op, void* local,
                      te::SegmentHandle target, uint64_t remote, uint64_t length,
                      std::chrono::milliseconds timeout = 20s) {
  return RunBatch(engine, {MakeRequest(op, local, target, remote, length)}, timeout);
}

// Runs fn() on another thread. If it has not returned after `timeout`, records a
// failure, calls unstick() (which must make fn return, e.g. by killing a peer) and
// then waits for it. Returns the elapsed time of fn.
inline std::chrono::milliseconds RunBounded(const std::string& what,
                                            const std::function<void()>& fn,
                                            std::chrono::milliseconds timeout,
                                            const std::function<void()>& unstick) {
  auto start = Clock::now();
  auto done = std::async(std::launch::async, fn);
  if (done.wait_for(timeout) != std::future_status::ready) {
    ADD_FAILURE() << what << " did not return within " << timeout.count() << " ms";
    unstick();
  }
  done.get();
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

class PeerTransferTest : public ::testing::Test {
 protected:
  void SetUp() override { StartEngine(LoopbackConfig()); }

  void TearDown() override {
    engine_.reset();
    peers_.clear();  // each PeerProcess stops and reaps its child
  }

  void StartEngine(const te::Config& config) {
    engine_.reset();
    engine_ = std::make_unique<te::TransferEngine>(config);
    ASSERT_TRUE(engine_->available()) << engine_->status().ToString();
  }

  // Restarts this process's engine with a shorter transfer timeout (stall tests).
  void StartEngineWithTransferTimeout(uint32_t ms) {
    te::Config config = LoopbackConfig();
    config.transfer_timeout_ms = ms;
    StartEngine(config);
  }

  // Spawns a peer with `args`; a fatal failure if it does not report READY.
  void StartPeer(const std::vector<std::string>& args, PeerProcess** out) {
    *out = nullptr;
    auto peer = std::make_unique<PeerProcess>();
    std::string error;
    ASSERT_TRUE(peer->Start(args, &error, 20s, peer_launcher_))
        << error << " (peer: " << PeerProcess::ExecutablePath() << ")";
    *out = peer.get();
    peers_.push_back(std::move(peer));
  }

  // A peer with one read-write buffer of `size` bytes holding pattern `fill`, opened
  // as *seg, and a local buffer of the same size.
  void StartPeerWithLocal(uint64_t size, uint64_t fill, PeerProcess** peer, te::SegmentHandle* seg,
                          void** local) {
    ASSERT_NO_FATAL_FAILURE(StartPeer(Args(1, size, "rw", fill), peer));
    ASSERT_NO_FATAL_FAILURE(OpenPeer(**peer, seg));
    ASSERT_NO_FATAL_FAILURE(AllocLocal(size, local));
  }

  void OpenPeer(const PeerProcess& peer, te::SegmentHandle* handle) {
    te::Status s = engine_->openSegment(handle, peer.segment_name());
    ASSERT_TRUE(s.ok()) << "openSegment(" << peer.segment_name() << "): " << s.ToString();
  }

  // Allocates and registers local memory; a fatal failure when it cannot. `init`, if
  // given, fills the memory before it is registered (and so before peers can see it).
  void AllocLocal(size_t size, void** out, Permission permission = Permission::kRemoteReadWrite,
                  const std::function<void(uint8_t*)>& init = {}) {
    *out = nullptr;
    te::MemoryOptions options;
    options.permission = permission;
    void* p = nullptr;
    te::Status s = engine_->allocateLocalMemory(&p, size, options);
    ASSERT_TRUE(s.ok()) << "allocateLocalMemory(" << size << "): " << s.ToString();
    ASSERT_NE(p, nullptr);
    if (init) init(static_cast<uint8_t*>(p));
    s = engine_->registerLocalMemory(p, size, options);
    ASSERT_TRUE(s.ok()) << "registerLocalMemory(" << size << "): " << s.ToString();
    *out = p;
  }

  // The peer's FNV-1a checksum of its memory [addr, addr+len).
  static uint64_t PeerChecksum(PeerProcess& peer, uint64_t addr, uint64_t len) {
    std::string cmd = "CHECKSUM " + std::to_string(addr) + " " + std::to_string(len);
    std::string reply = peer.Command(cmd);
    if (reply.rfind("CHECKSUM ", 0) != 0) {
      ADD_FAILURE() << cmd << " -> '" << reply << "'";
      return 0;
    }
    return std::strtoull(reply.c_str() + 9, nullptr, 16);
  }

  // Every way a range can miss the peer's buffer [base, base + size): READ and WRITE
  // of each must be refused (the peer's bytes are the caller's to check).
  void ExpectRangesMissingBufferRejected(te::SegmentHandle seg, void* local, uint64_t base,
                                         uint64_t size) {
    const struct {
      const char* name;
      uint64_t offset, length;
    } cases[] = {
        {"one past the end", base + size, 1},
        {"crossing the end", base + size - 10, 20},
        {"whole buffer plus one", base, size + 1},
        {"before the buffer", base - 4096, 16},
        {"address zero", 0, 16},
        {"wrapping around", UINT64_MAX - 7, 16},
    };
    for (const auto& c : cases) {
      for (auto op : {Request::READ, Request::WRITE}) {
        SCOPED_TRACE(std::string(c.name) + (op == Request::READ ? " READ" : " WRITE"));
        Outcome o = RunOne(*engine_, op, local, seg, c.offset, c.length, 10s);
        EXPECT_TRUE(o.rejected()) << o.Describe();
      }
    }
  }

  static std::vector<std::string> Args(uint64_t buffers, uint64_t size,
                                       const std::string& permission, uint64_t fill) {
    return {"--buffers=" + std::to_string(buffers), "--size=" + std::to_string(size),
            "--permission=" + permission, "--fill=" + std::to_string(fill)};
  }

  std::unique_ptr<te::TransferEngine> engine_;
  std::vector<std::unique_ptr<PeerProcess>> peers_;
  // What StartPeer runs the peer under (PeerProcess::Start's launcher): empty here,
  // another network namespace in netns_transfer_test.
  std::vector<std::string> peer_launcher_;
};

}  // namespace te_test
