// Helpers shared by the metadata tests: peer engine processes, descriptors, waits.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "metadata/metadata_client.h"
#include "metadata_servers.h"
#include "te/transfer_engine.h"

namespace te_test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

inline int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Polls `done` every 20 ms until it holds or `timeout` passes.
inline bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// Prints a measurement so that it shows in the test log.
inline void Measured(const std::string& what, int64_t ms) {
  std::cout << "[ measured ] " << what << ": " << ms << " ms" << std::endl;
}

// An engine (te_metadata_peer) in its own process, publishing `name`.
struct PeerEngine {
  ChildProcess process;
  std::string name;
  uint64_t base = 0;
  uint64_t length = 0;

  // Starts the peer and waits for READY. The FAILED line, if any, lands in *error.
  bool Start(const MetadataServerProcess& server, const std::string& segment,
             const std::string& log_path, std::string* error, uint64_t fill = 1,
             std::vector<std::string> extra = {}, const std::string& servers = "") {
    std::vector<std::string> argv = {
        TE_METADATA_PEER_PATH,
        std::string("--metadata_type=") + BackendName(server.backend()),
        "--metadata_servers=" + (servers.empty() ? server.servers() : servers),
        "--name=" + segment,
        "--ttl_s=2",
        "--fill=" + std::to_string(fill)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (!process.Start(argv, log_path, error)) return false;
    std::string line;
    if (!process.WaitForLine("", &line, 30s)) {
      *error = "peer printed nothing: " + process.LogTail();
      return false;
    }
    std::istringstream in(line);
    std::string word;
    in >> word;
    if (word != "READY") {
      *error = line;
      return false;
    }
    in >> name >> base >> length;
    return true;
  }
};

// A descriptor as an engine would publish it; its RPC port answers nothing, so a
// second claimant sees its holder as gone.
inline te::SegmentDescriptor FakeDescriptor(const std::string& name, uint32_t pid,
                                            size_t buffers = 1) {
  te::SegmentDescriptor d;
  d.name = name;
  d.machine_id = "test-machine";
  d.pid = pid;
  d.rpc_host = "127.0.0.1";
  d.rpc_port = FreeLoopbackPort();
  d.transports["tcp"] = "127.0.0.1:1";
  for (size_t i = 0; i < buffers; ++i) {
    te::BufferInfo b;
    b.base = 0x100000 * (i + 1);
    b.length = 4096;
    b.location = "cpu:0";
    b.permission = te::Permission::kRemoteReadWrite;
    d.buffers.push_back(b);
  }
  return d;
}

inline std::unique_ptr<te::MetadataClient> MakeClient(const te::Config& config,
                                                      const std::string& local_name = "test") {
  std::unique_ptr<te::MetadataClient> client;
  te::Status s = te::CreateMetadataClient(config, local_name, &client);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return client;
}

inline te::Status LookupStatus(te::MetadataClient* client, const std::string& name) {
  te::SegmentDescriptor d;
  return client->Lookup(name, &d);
}

// Waits for a batch to leave kPending (bounded) and returns its overall status.
inline te::TransferStatus WaitBatch(te::TransferEngine& engine, te::BatchID batch,
                                    std::chrono::milliseconds timeout = 15s) {
  te::TransferStatus overall;
  WaitFor(
      [&] {
        return engine.getTransferStatus(batch, &overall).ok() &&
               overall.state != te::TransferState::kPending;
      },
      timeout);
  return overall;
}

// One READ or WRITE of `length` bytes between local and the segment, waited for.
inline te::TransferStatus Transfer(te::TransferEngine& engine, te::SegmentHandle segment,
                                   te::Request::OpCode op, void* local, uint64_t remote,
                                   uint64_t length) {
  te::BatchID batch;
  te::Status s = engine.allocateBatch(1, &batch);
  EXPECT_TRUE(s.ok()) << s.ToString();
  te::Request r;
  r.opcode = op;
  r.source = local;
  r.target_id = segment;
  r.target_offset = remote;
  r.length = length;
  s = engine.submitTransfer(batch, {r});
  EXPECT_TRUE(s.ok()) << s.ToString();
  te::TransferStatus result = WaitBatch(engine, batch);
  engine.freeBatch(batch);
  return result;
}

// Per-backend suites run against every central backend, named after it:
//   INSTANTIATE_TEST_SUITE_P(Backends, SomeTest, AllBackends(), BackendParamName);
inline auto AllBackends() {
  return testing::Values(Backend::kRedis, Backend::kEtcd, Backend::kHttp);
}
inline std::string BackendParamName(const testing::TestParamInfo<Backend>& info) {
  return ServerLabel(info.param);
}

// Fixture of the per-backend tests: a fresh metadata server of GetParam()'s kind on a
// free loopback port, and a temporary directory for child processes' logs.
class ServerPerBackendTest : public testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    server_ = std::make_unique<MetadataServerProcess>(GetParam());
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
  }

  te::Config Config(const std::string& name = "") const { return TestConfig(*server_, name); }
  std::string Log(const std::string& what) const { return dir_.path() + "/" + what + ".log"; }

  TempDir dir_;
  std::unique_ptr<MetadataServerProcess> server_;
};

}  // namespace te_test
