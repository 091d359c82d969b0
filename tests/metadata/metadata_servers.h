// Real metadata servers for the tests: redis-server, etcd, our
// transfer_engine_metadata_server and a key-only http server following Mooncake's
// protocol (key_only_metadata_server.py: GET/PUT/DELETE ?key= only), each on free
// loopback ports in its own temporary directory, started and stopped by the test.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "child_process.h"
#include "te/config.h"

namespace te_test {

enum class Backend { kRedis, kEtcd, kHttp, kHttpKeyOnly };

// "redis", "etcd", "http" (both http servers): the metadata_type.
const char* BackendName(Backend backend);
// Names the server in test names: "http_key_only" for the key-only server.
const char* ServerLabel(Backend backend);
// Entries stay until someone removes them (no TTL): the http servers.
inline bool IsHttp(Backend backend) {
  return backend == Backend::kHttp || backend == Backend::kHttpKeyOnly;
}

class MetadataServerProcess {
 public:
  // extra_args go to the server's command line (e.g. {"--requirepass", "secret"}).
  explicit MetadataServerProcess(Backend backend, std::vector<std::string> extra_args = {});
  ~MetadataServerProcess() { Stop(); }

  // Starts the server on free loopback ports (or on `port` when nonzero) and waits
  // (at most 30 s) until it serves.
  bool Start(std::string* error, uint16_t port = 0);
  // Starts again on the same port(s) with empty state, after Kill or Stop.
  bool Restart(std::string* error);
  void Kill();  // SIGKILL: the server vanishes as in a crash
  void Stop();  // SIGTERM, then SIGKILL

  Backend backend() const { return backend_; }
  uint16_t port() const { return port_; }
  // What Config::metadata_servers names this server by.
  std::string servers() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string LogTail() const { return process_.LogTail(); }

 private:
  bool Launch(std::string* error);
  bool WaitReady(std::string* error);

  const Backend backend_;
  const std::vector<std::string> extra_args_;
  TempDir dir_;
  ChildProcess process_;
  uint16_t port_ = 0;
  uint16_t peer_port_ = 0;  // etcd's raft port
  int launches_ = 0;
};

// Full path of `program` found in $PATH, or empty.
std::string FindInPath(const std::string& program);

// A config for an engine on 127.0.0.1 using `server` with short timeouts and TTL,
// so failure tests stay fast.
te::Config TestConfig(const MetadataServerProcess& server, const std::string& segment_name);

}  // namespace te_test
