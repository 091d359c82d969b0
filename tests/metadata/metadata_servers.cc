#include "metadata_servers.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <thread>

#include "common/strings.h"
#include "metadata/metadata_client.h"

namespace te_test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

}  // namespace

const char* BackendName(Backend backend) {
  switch (backend) {
    case Backend::kRedis:
      return "redis";
    case Backend::kEtcd:
      return "etcd";
    case Backend::kHttp:
    case Backend::kHttpKeyOnly:
      return "http";
  }
  return "?";
}

const char* ServerLabel(Backend backend) {
  return backend == Backend::kHttpKeyOnly ? "http_key_only" : BackendName(backend);
}

std::string FindInPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  for (const std::string& dir : te::SplitList(path ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

te::Config TestConfig(const MetadataServerProcess& server, const std::string& segment_name) {
  te::Config config;
  config.metadata_type = BackendName(server.backend());
  config.metadata_servers = server.servers();
  config.local_segment_name = segment_name;
  config.rpc_host = "127.0.0.1";
  config.metadata_ttl_s = 2;
  config.connect_timeout_ms = 1000;
  config.transfer_timeout_ms = 3000;
  return config;
}

MetadataServerProcess::MetadataServerProcess(Backend backend, std::vector<std::string> extra_args)
    : backend_(backend), extra_args_(std::move(extra_args)) {}

bool MetadataServerProcess::Start(std::string* error, uint16_t port) {
  if (dir_.path().empty()) {
    *error = "cannot create a temporary directory";
    return false;
  }
  // A free port can be taken by someone else before the server binds it: retry.
  for (int attempt = 0; attempt < (port != 0 ? 1 : 3); ++attempt) {
    port_ = port != 0 ? port : FreeLoopbackPort();
    peer_port_ = FreeLoopbackPort();
    if (Launch(error) && WaitReady(error)) return true;
    process_.Kill();
  }
  return false;
}

bool MetadataServerProcess::Restart(std::string* error) {
  process_.Kill();
  return Launch(error) && WaitReady(error);
}

void MetadataServerProcess::Kill() { process_.Kill(); }

void MetadataServerProcess::Stop() { process_.Terminate(5s); }

bool MetadataServerProcess::Launch(std::string* error) {
  ++launches_;
  const std::string log = dir_.path() + "/server-" + std::to_string(launches_) + ".log";
  const std::string port = std::to_string(port_);
  std::vector<std::string> argv;
  bool pipe_stdout = false;
  switch (backend_) {
    case Backend::kRedis:
      argv = {FindInPath("redis-server"),
              "--port",
              port,
              "--bind",
              "127.0.0.1",
              "--save",
              "",
              "--appendonly",
              "no",
              "--dir",
              dir_.path()};
      break;
    case Backend::kEtcd: {
      // A fresh data directory per launch: a restart comes back empty, like a new server.
      const std::string data = dir_.path() + "/etcd-" + std::to_string(launches_);
      const std::string client = "http://127.0.0.1:" + port;
      const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
      argv = {FindInPath("etcd"),
              "--name",
              "te-test",
              "--data-dir",
              data,
              "--listen-client-urls",
              client,
              "--advertise-client-urls",
              client,
              "--listen-peer-urls",
              peer,
              "--initial-advertise-peer-urls",
              peer,
              "--initial-cluster",
              "te-test=" + peer};
      break;
    }
    case Backend::kHttp:
      argv = {TE_METADATA_SERVER_PATH, "--host=127.0.0.1", "--port=" + port};
      pipe_stdout = true;
      break;
    case Backend::kHttpKeyOnly:
      argv = {FindInPath("python3"), TE_KEY_ONLY_METADATA_SERVER_PATH, "--host=127.0.0.1",
              "--port=" + port};
      pipe_stdout = true;
      break;
  }
  if (argv[0].empty()) {
    *error = std::string(BackendName(backend_)) +
             " server binary not found in PATH (scripts/install_deps.sh installs it)";
    return false;
  }
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  return process_.Start(argv, log, error, {}, pipe_stdout);
}

bool MetadataServerProcess::WaitReady(std::string* error) {
  const auto deadline = Clock::now() + 30s;
  if (IsHttp(backend_)) {
    std::string line;
    if (process_.WaitForLine("listening on", &line, 30s)) return true;
    *error = "metadata server did not start: " + process_.LogTail();
    return false;
  }
  // redis accepts connections once it serves. etcd accepts them earlier, so ask it
  // for a key through our own client until it answers (NotFound).
  while (Clock::now() < deadline) {
    if (process_.WaitExit(0ms)) break;  // exited: port taken or bad flags
    if (PortAnswers(port_)) {
      if (backend_ == Backend::kRedis) return true;
      te::Config config = TestConfig(*this, "");
      std::unique_ptr<te::MetadataClient> client;
      te::SegmentDescriptor desc;
      if (te::CreateMetadataClient(config, "probe", &client).ok() &&
          client->Lookup("readiness-probe", &desc).code() == te::Status::Code::kNotFound) {
        return true;
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  *error = std::string(BackendName(backend_)) + " did not become ready on port " +
           std::to_string(port_) + ": " + process_.LogTail();
  return false;
}

}  // namespace te_test
