#include "te/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "memory/device_memory.h"

namespace te {
namespace {

using Strings = std::vector<std::string>;

// Every variable FromEnv reads; the fixture clears them so the tests see a clean
// environment whatever the caller's shell exports.
const char* const kEnvVars[] = {
    "TE_CONFIG",           "TE_METADATA_TYPE",
    "TE_METADATA_SERVERS", "TE_LOCAL_SEGMENT",
    "TE_RPC_HOST",         "TE_RPC_PORT",
    "TE_TRANSPORTS",       "TE_LOG_LEVEL",
    "TE_MACHINE_ID",       "TE_TCP_CONNECTIONS",
    "TE_SLICE_SIZE",       "TE_TRANSFER_TIMEOUT_MS",
    "TE_METADATA_TTL_S",   "TE_MAX_REGISTERED_BUFFERS",
    "TE_RPC_BIND_HOST",    "TE_METRICS_PORT",
    "TE_UCX_TLS",          "TE_UCX_NET_DEVICES",
    "TE_UCX_WORKERS",      "TE_TCP_CONGESTION",
    "TE_TCP_BUSY_POLL_US", "TE_UCX_BUSY_POLL_US",
};

class ConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kEnvVars) unsetenv(v);
  }
  void TearDown() override {
    for (const char* v : kEnvVars) unsetenv(v);
    for (const std::string& f : files_) std::remove(f.c_str());
  }

  // Writes text to a fresh temporary file and returns its path.
  std::string WriteTempFile(const std::string& text) {
    std::string path = testing::TempDir() + "te_config_test_" + std::to_string(::getpid()) + "_" +
                       std::to_string(files_.size()) + ".json";
    std::ofstream out(path);
    out << text;
    out.close();
    files_.push_back(path);
    return path;
  }

  std::vector<std::string> files_;
};

TEST_F(ConfigTest, Defaults) {
  Config c;
  EXPECT_EQ(c.metadata_type, "p2p");
  EXPECT_EQ(c.metadata_servers, "");
  EXPECT_EQ(c.local_segment_name, "");
  EXPECT_EQ(c.rpc_host, "");
  EXPECT_EQ(c.rpc_port, 0);
  EXPECT_EQ(c.transports, Config::DefaultTransports());
  EXPECT_EQ(c.log_level, "warning");
  EXPECT_EQ(c.machine_id, "");
  EXPECT_EQ(c.tcp_connections_per_peer, 4u);
  EXPECT_EQ(c.slice_size, 1u << 20);
  EXPECT_EQ(c.transfer_timeout_ms, 5000u);
  EXPECT_EQ(c.connect_timeout_ms, 3000u);
  EXPECT_EQ(c.metadata_ttl_s, 10u);
  EXPECT_EQ(c.max_registered_buffers, 65536u);
  EXPECT_EQ(c.rpc_bind_host, "");
  EXPECT_TRUE(c.Validate().ok()) << c.Validate().ToString();
}

TEST_F(ConfigTest, FromJsonAllFields) {
  Config c;
  Status s = Config::FromJson(R"({
    "metadata_type": "etcd",
    "metadata_servers": "a:1,b:2",
    "local_segment_name": "seg",
    "rpc_host": "10.0.0.1",
    "rpc_port": 17000,
    "transports": ["tcp"],
    "log_level": "debug",
    "machine_id": "m1",
    "tcp_connections_per_peer": 8,
    "slice_size": 65536,
    "transfer_timeout_ms": 1234,
    "connect_timeout_ms": 567,
    "metadata_ttl_s": 30,
    "ucx_tls": "rc,ud",
    "ucx_net_devices": "mlx5_0:1",
    "ucx_workers": 2,
    "tcp_congestion": "reno",
    "tcp_rto_min_us": 10000,
    "tcp_busy_poll_us": 20,
    "ucx_busy_poll_us": 30
  })",
                              &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.metadata_type, "etcd");
  EXPECT_EQ(c.metadata_servers, "a:1,b:2");
  EXPECT_EQ(c.local_segment_name, "seg");
  EXPECT_EQ(c.rpc_host, "10.0.0.1");
  EXPECT_EQ(c.rpc_port, 17000);
  EXPECT_EQ(c.transports, (Strings{"tcp"}));
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.machine_id, "m1");
  EXPECT_EQ(c.tcp_connections_per_peer, 8u);
  EXPECT_EQ(c.slice_size, 65536u);
  EXPECT_EQ(c.transfer_timeout_ms, 1234u);
  EXPECT_EQ(c.connect_timeout_ms, 567u);
  EXPECT_EQ(c.metadata_ttl_s, 30u);
  EXPECT_EQ(c.tcp_rto_min_us, 10000u);
  EXPECT_EQ(c.tcp_busy_poll_us, 20u);
  EXPECT_EQ(c.ucx_tls, "rc,ud");
  EXPECT_EQ(c.ucx_net_devices, "mlx5_0:1");
  EXPECT_EQ(c.ucx_workers, 2u);
  EXPECT_EQ(c.ucx_busy_poll_us, 30u);
  EXPECT_EQ(c.tcp_congestion, "reno");
  EXPECT_TRUE(c.Validate().ok()) << c.Validate().ToString();
}

TEST_F(ConfigTest, FromJsonKeepsUnmentionedFields) {
  Config c;
  c.rpc_host = "keep";
  c.slice_size = 8192;
  ASSERT_TRUE(Config::FromJson(R"({"rpc_port": 5})", &c).ok());
  EXPECT_EQ(c.rpc_port, 5);
  EXPECT_EQ(c.rpc_host, "keep");
  EXPECT_EQ(c.slice_size, 8192u);
  ASSERT_TRUE(Config::FromJson("{}", &c).ok());
  EXPECT_EQ(c.rpc_port, 5);
}

TEST_F(ConfigTest, FromJsonEmptyTransportsParsesButDoesNotValidate) {
  Config c;
  ASSERT_TRUE(Config::FromJson(R"({"transports": []})", &c).ok());
  EXPECT_TRUE(c.transports.empty());
  EXPECT_EQ(c.Validate().code(), Status::Code::kInvalidArgument);
}

TEST_F(ConfigTest, FromJsonUnknownKey) {
  Config c;
  Status s = Config::FromJson(R"({"rpc_port": 1, "rpc_prot": 2})", &c);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("rpc_prot"), std::string::npos) << s.message();
}

TEST_F(ConfigTest, FromJsonWrongTypes) {
  const char* cases[] = {
      R"({"metadata_type": 1})",
      R"({"metadata_servers": ["a"]})",
      R"({"local_segment_name": null})",
      R"({"rpc_host": true})",
      R"({"rpc_port": "17000"})",
      R"({"rpc_port": 1.5})",
      R"({"rpc_port": true})",
      R"({"transports": "tcp"})",
      R"({"transports": ["tcp", 1]})",
      R"({"log_level": {}})",
      R"({"machine_id": 7})",
      R"({"tcp_connections_per_peer": "4"})",
      R"({"slice_size": [4096]})",
      R"({"transfer_timeout_ms": null})",
      R"({"connect_timeout_ms": 10.0})",
      R"({"metadata_ttl_s": "10"})",
  };
  for (const char* text : cases) {
    SCOPED_TRACE(text);
    Config c;
    Status s = Config::FromJson(text, &c);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.ToString();
  }
}

TEST_F(ConfigTest, FromJsonNumberRanges) {
  struct Case {
    const char* text;
    bool ok;
  };
  const Case cases[] = {
      {R"({"rpc_port": 65535})", true},
      {R"({"rpc_port": 65536})", false},
      {R"({"rpc_port": -1})", false},
      {R"({"tcp_connections_per_peer": 4294967295})", true},
      {R"({"tcp_connections_per_peer": 4294967296})", false},
      {R"({"transfer_timeout_ms": 4294967296})", false},
      {R"({"connect_timeout_ms": -5})", false},
      {R"({"slice_size": 18446744073709551615})", true},
      {R"({"slice_size": 18446744073709551616})", false},  // parses as a float
      {R"({"slice_size": -4096})", false},
      {R"({"metadata_ttl_s": 4294967295})", true},  // parses; Validate bounds it
      {R"({"metadata_ttl_s": 4294967296})", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    Config config;
    Status s = Config::FromJson(c.text, &config);
    if (c.ok) {
      EXPECT_TRUE(s.ok()) << s.ToString();
    } else {
      EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.ToString();
    }
  }
  Config config;
  ASSERT_TRUE(
      Config::FromJson(R"({"rpc_port": 65535, "slice_size": 18446744073709551615})", &config).ok());
  EXPECT_EQ(config.rpc_port, 65535);
  EXPECT_EQ(config.slice_size, UINT64_MAX);
}

TEST_F(ConfigTest, FromJsonRangeErrorNamesField) {
  Config c;
  Status s = Config::FromJson(R"({"rpc_port": 70000})", &c);
  ASSERT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("rpc_port"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("65535"), std::string::npos) << s.message();
  EXPECT_EQ(c.rpc_port, 0);
}

TEST_F(ConfigTest, FromJsonInvalidJson) {
  for (const char* text : {"", "{", "{\"rpc_port\": }", "not json", "{'a': 1}", "{} {}"}) {
    SCOPED_TRACE(text);
    Config c;
    Status s = Config::FromJson(text, &c);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.ToString();
  }
}

TEST_F(ConfigTest, FromJsonNotAnObject) {
  for (const char* text : {"[]", "1", "\"p2p\"", "null", "true"}) {
    SCOPED_TRACE(text);
    Config c;
    Status s = Config::FromJson(text, &c);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.ToString();
  }
}

TEST_F(ConfigTest, FromJsonFile) {
  std::string path = WriteTempFile(R"({"rpc_host": "127.0.0.1", "slice_size": 8192})");
  Config c;
  Status s = Config::FromJsonFile(path, &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.rpc_host, "127.0.0.1");
  EXPECT_EQ(c.slice_size, 8192u);
}

TEST_F(ConfigTest, FromJsonFileMissing) {
  Config c;
  std::string path = testing::TempDir() + "te_config_test_does_not_exist.json";
  Status s = Config::FromJsonFile(path, &c);
  EXPECT_EQ(s.code(), Status::Code::kNotFound);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
}

TEST_F(ConfigTest, FromJsonFileErrorNamesPath) {
  std::string path = WriteTempFile(R"({"bogus": 1})");
  Config c;
  Status s = Config::FromJsonFile(path, &c);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(s.message().rfind(path + ": ", 0), 0u) << s.message();
  EXPECT_NE(s.message().find("bogus"), std::string::npos) << s.message();
}

TEST_F(ConfigTest, FromEnvNothingSetKeepsConfig) {
  Config c;
  c.rpc_host = "h";
  c.rpc_port = 9;
  ASSERT_TRUE(Config::FromEnv(&c).ok());
  EXPECT_EQ(c.rpc_host, "h");
  EXPECT_EQ(c.rpc_port, 9);
  EXPECT_EQ(c.transports, Config::DefaultTransports());
}

// CUDA IPC is preferred to the DRAM-only same-host transports, but exists only where
// the build has device support; a build without CUDA keeps its old defaults.
TEST_F(ConfigTest, DefaultTransportsFollowTheBuild) {
  if (DeviceMemoryBuilt()) {
    EXPECT_EQ(Config::DefaultTransports(), (Strings{"local", "cuda_ipc", "shm", "cma", "tcp"}));
    Config c;
    c.transports = {"cuda_ipc"};
    EXPECT_TRUE(c.Validate().ok());
  } else {
    EXPECT_EQ(Config::DefaultTransports(), (Strings{"local", "shm", "cma", "tcp"}));
    Config c;
    c.transports = {"cuda_ipc"};
    EXPECT_EQ(c.Validate().code(), Status::Code::kNotSupported);
  }
}

// ucx_workers bounds the threads the ucx transport starts.
TEST_F(ConfigTest, UcxWorkersBounded) {
  Config c;
  c.ucx_workers = 0;
  EXPECT_EQ(c.Validate().code(), Status::Code::kInvalidArgument);
  c.ucx_workers = 17;
  EXPECT_EQ(c.Validate().code(), Status::Code::kInvalidArgument);
  c.ucx_workers = 16;
  EXPECT_TRUE(c.Validate().ok());
}

TEST_F(ConfigTest, FromEnvAllVariables) {
  setenv("TE_METADATA_TYPE", "http", 1);
  setenv("TE_METADATA_SERVERS", "s1:80", 1);
  setenv("TE_LOCAL_SEGMENT", "myseg", 1);
  setenv("TE_RPC_HOST", "127.0.0.1", 1);
  setenv("TE_RPC_PORT", "17001", 1);
  setenv("TE_TRANSPORTS", " tcp , local ,", 1);
  setenv("TE_LOG_LEVEL", "error", 1);
  setenv("TE_MACHINE_ID", "machine-x", 1);
  setenv("TE_TCP_CONNECTIONS", "2", 1);
  setenv("TE_SLICE_SIZE", "16384", 1);
  setenv("TE_TRANSFER_TIMEOUT_MS", "250", 1);
  setenv("TE_METADATA_TTL_S", "60", 1);
  setenv("TE_MAX_REGISTERED_BUFFERS", "200000", 1);
  setenv("TE_RPC_BIND_HOST", "0.0.0.0", 1);
  setenv("TE_UCX_TLS", "tcp", 1);
  setenv("TE_UCX_NET_DEVICES", "lo", 1);
  setenv("TE_UCX_WORKERS", "3", 1);
  setenv("TE_TCP_CONGESTION", "system", 1);
  setenv("TE_TCP_BUSY_POLL_US", "0", 1);
  setenv("TE_UCX_BUSY_POLL_US", "7", 1);
  Config c;
  Status s = Config::FromEnv(&c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.metadata_type, "http");
  EXPECT_EQ(c.metadata_servers, "s1:80");
  EXPECT_EQ(c.local_segment_name, "myseg");
  EXPECT_EQ(c.rpc_host, "127.0.0.1");
  EXPECT_EQ(c.rpc_port, 17001);
  EXPECT_EQ(c.transports, (Strings{"tcp", "local"}));
  EXPECT_EQ(c.log_level, "error");
  EXPECT_EQ(c.machine_id, "machine-x");
  EXPECT_EQ(c.tcp_connections_per_peer, 2u);
  EXPECT_EQ(c.slice_size, 16384u);
  EXPECT_EQ(c.transfer_timeout_ms, 250u);
  EXPECT_EQ(c.metadata_ttl_s, 60u);
  EXPECT_EQ(c.max_registered_buffers, 200000u);
  EXPECT_EQ(c.rpc_bind_host, "0.0.0.0");
  EXPECT_EQ(c.ucx_tls, "tcp");
  EXPECT_EQ(c.ucx_net_devices, "lo");
  EXPECT_EQ(c.ucx_workers, 3u);
  EXPECT_EQ(c.tcp_congestion, "system");
  EXPECT_EQ(c.tcp_busy_poll_us, 0u);
  EXPECT_EQ(c.ucx_busy_poll_us, 7u);
  EXPECT_EQ(c.connect_timeout_ms, 3000u);  // not read from the environment
}

TEST_F(ConfigTest, FromEnvUnsetVariablesDoNotApply) {
  setenv("TE_RPC_HOST", "1.2.3.4", 1);
  unsetenv("TE_RPC_HOST");
  Config c;
  ASSERT_TRUE(Config::FromEnv(&c).ok());
  EXPECT_EQ(c.rpc_host, "");
}

TEST_F(ConfigTest, FromEnvEmptyStringOverrides) {
  setenv("TE_MACHINE_ID", "", 1);
  Config c;
  c.machine_id = "before";
  ASSERT_TRUE(Config::FromEnv(&c).ok());
  EXPECT_EQ(c.machine_id, "");
}

TEST_F(ConfigTest, FromEnvConfigFileThenVariables) {
  std::string path =
      WriteTempFile(R"({"rpc_host": "10.9.9.9", "slice_size": 8192, "log_level": "info"})");
  setenv("TE_CONFIG", path.c_str(), 1);
  setenv("TE_RPC_HOST", "127.0.0.1", 1);  // the environment overrides the file
  Config c;
  Status s = Config::FromEnv(&c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.rpc_host, "127.0.0.1");
  EXPECT_EQ(c.slice_size, 8192u);
  EXPECT_EQ(c.log_level, "info");
}

TEST_F(ConfigTest, FromEnvMissingConfigFile) {
  std::string path = testing::TempDir() + "te_config_test_missing_env.json";
  setenv("TE_CONFIG", path.c_str(), 1);
  Config c;
  EXPECT_EQ(Config::FromEnv(&c).code(), Status::Code::kNotFound);
}

TEST_F(ConfigTest, FromEnvBadConfigFile) {
  setenv("TE_CONFIG", WriteTempFile("{nope").c_str(), 1);
  Config c;
  EXPECT_EQ(Config::FromEnv(&c).code(), Status::Code::kInvalidArgument);
}

TEST_F(ConfigTest, FromEnvBadRpcPort) {
  for (const char* bad : {"", "abc", "-1", "65536", "17000x", " 1", "99999999999999999999999"}) {
    SCOPED_TRACE(bad);
    setenv("TE_RPC_PORT", bad, 1);
    Config c;
    Status s = Config::FromEnv(&c);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find("TE_RPC_PORT"), std::string::npos) << s.message();
    EXPECT_EQ(c.rpc_port, 0);
  }
  setenv("TE_RPC_PORT", "65535", 1);
  Config c;
  ASSERT_TRUE(Config::FromEnv(&c).ok());
  EXPECT_EQ(c.rpc_port, 65535);
}

TEST_F(ConfigTest, FromEnvBadNumbers) {
  struct Case {
    const char* name;
    const char* value;
  };
  const Case cases[] = {
      {"TE_TCP_CONNECTIONS", "4294967296"},      {"TE_TCP_CONNECTIONS", "four"},
      {"TE_SLICE_SIZE", "18446744073709551616"}, {"TE_SLICE_SIZE", "1M"},
      {"TE_TRANSFER_TIMEOUT_MS", "4294967296"},  {"TE_TRANSFER_TIMEOUT_MS", "-5"},
      {"TE_METADATA_TTL_S", "4294967296"},       {"TE_METADATA_TTL_S", "10s"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(std::string(k.name) + "=" + k.value);
    for (const char* v : kEnvVars) unsetenv(v);
    setenv(k.name, k.value, 1);
    Config c;
    Status s = Config::FromEnv(&c);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find(k.name), std::string::npos) << s.message();
  }
}

TEST_F(ConfigTest, FromEnvEmptyTransportsFailsValidation) {
  setenv("TE_TRANSPORTS", " , ", 1);
  Config c;
  ASSERT_TRUE(Config::FromEnv(&c).ok());
  EXPECT_TRUE(c.transports.empty());
  EXPECT_EQ(c.Validate().code(), Status::Code::kInvalidArgument);
}

TEST_F(ConfigTest, ValidateMetadataType) {
  Config c;
  c.metadata_type = "zookeeper";
  Status s = c.Validate();
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("zookeeper"), std::string::npos) << s.message();
  c.metadata_type = "P2P";  // names are case-sensitive
  EXPECT_EQ(c.Validate().code(), Status::Code::kInvalidArgument);
  c.metadata_type = "";
  EXPECT_EQ(c.Validate().code(), Status::Code::kInvalidArgument);
}

TEST_F(ConfigTest, ValidateCentralMetadataNeedsServers) {
  for (const char* type : {"redis", "etcd", "http"}) {
    SCOPED_TRACE(type);
    Config c;
    c.metadata_type = type;
    EXPECT_EQ(c.Validate().code(), Status::Code::kInvalidArgument);
    c.metadata_servers = " , ";
    EXPECT_EQ(c.Validate().code(), Status::Code::kInvalidArgument);
    c.metadata_servers = "127.0.0.1:6379";
    EXPECT_TRUE(c.Validate().ok()) << c.Validate().ToString();
  }
  Config p2p;
  p2p.metadata_servers = "";  // p2p needs none
  EXPECT_TRUE(p2p.Validate().ok());
}

TEST_F(ConfigTest, ValidateTcpCongestion) {
  EXPECT_EQ(Config().tcp_congestion, "auto");
  for (const char* good : {"auto", "system", "cubic", "reno", "dctcp", "bbr"}) {
    Config c;
    c.tcp_congestion = good;
    EXPECT_TRUE(c.Validate().ok()) << good;
  }
  for (const char* bad : {"", "Cubic", "cu bic", "../cubic", "a_name_over_15ch"}) {
    SCOPED_TRACE(bad);
    Config c;
    c.tcp_congestion = bad;
    Status s = c.Validate();
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
    EXPECT_NE(s.message().find("tcp_congestion"), std::string::npos) << s.message();
  }
}

// A field with an upper bound: 0, 1 and the bound are accepted, one more is refused
// with a message that names the field.
void ExpectUpperBound(uint32_t Config::*field, const std::string& name, uint32_t max) {
  for (uint32_t good : {0u, 1u, max}) {
    Config c;
    c.*field = good;
    EXPECT_TRUE(c.Validate().ok()) << name << " " << good;
  }
  Config c;
  c.*field = max + 1;
  Status s = c.Validate();
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find(name), std::string::npos) << s.message();
}

TEST_F(ConfigTest, ValidateTcpRtoMin) {
  EXPECT_EQ(Config().tcp_rto_min_us, 5000u);
  ExpectUpperBound(&Config::tcp_rto_min_us, "tcp_rto_min_us", 200000);
}

TEST_F(ConfigTest, ValidateBusyPolls) {
  EXPECT_EQ(Config().tcp_busy_poll_us, 50u);
  ExpectUpperBound(&Config::tcp_busy_poll_us, "tcp_busy_poll_us", 10000);
  EXPECT_EQ(Config().ucx_busy_poll_us, 1000u);
  ExpectUpperBound(&Config::ucx_busy_poll_us, "ucx_busy_poll_us", 10000);
}

TEST_F(ConfigTest, ValidateLogLevel) {
  for (const char* good : {"debug", "info", "warning", "error"}) {
    Config c;
    c.log_level = good;
    EXPECT_TRUE(c.Validate().ok()) << good;
  }
  for (const char* bad : {"", "warn", "INFO", "trace", "fatal"}) {
    SCOPED_TRACE(bad);
    Config c;
    c.log_level = bad;
    Status s = c.Validate();
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
    EXPECT_NE(s.message().find("log_level"), std::string::npos) << s.message();
  }
}

TEST_F(ConfigTest, ValidateTransports) {
  Config c;
  c.transports = {};
  EXPECT_EQ(c.Validate().code(), Status::Code::kInvalidArgument);
  c.transports = {"tcp"};
  EXPECT_TRUE(c.Validate().ok());
  c.transports = {"local"};
  EXPECT_TRUE(c.Validate().ok());
  c.transports = {"shm", "cma"};
  EXPECT_TRUE(c.Validate().ok());
  c.transports = {"tcp", "rdma"};
  Status s = c.Validate();
  EXPECT_EQ(s.code(), Status::Code::kNotSupported);
  EXPECT_NE(s.message().find("rdma"), std::string::npos) << s.message();
  c.transports = {"nvlink"};
  EXPECT_EQ(c.Validate().code(), Status::Code::kNotSupported);
}

TEST_F(ConfigTest, ValidateRanges) {
  auto code_with = [](auto mutate) {
    Config c;
    mutate(c);
    return c.Validate().code();
  };
  using Code = Status::Code;
  EXPECT_EQ(code_with([](Config& c) { c.tcp_connections_per_peer = 0; }), Code::kInvalidArgument);
  EXPECT_EQ(code_with([](Config& c) { c.tcp_connections_per_peer = 1; }), Code::kOk);
  EXPECT_EQ(code_with([](Config& c) { c.tcp_connections_per_peer = 64; }), Code::kOk);
  EXPECT_EQ(code_with([](Config& c) { c.tcp_connections_per_peer = 65; }), Code::kInvalidArgument);
  EXPECT_EQ(code_with([](Config& c) { c.slice_size = 4095; }), Code::kInvalidArgument);
  EXPECT_EQ(code_with([](Config& c) { c.slice_size = 0; }), Code::kInvalidArgument);
  EXPECT_EQ(code_with([](Config& c) { c.slice_size = 4096; }), Code::kOk);
  EXPECT_EQ(code_with([](Config& c) { c.slice_size = UINT64_MAX; }), Code::kOk);
  EXPECT_EQ(code_with([](Config& c) { c.transfer_timeout_ms = 9; }), Code::kInvalidArgument);
  EXPECT_EQ(code_with([](Config& c) { c.transfer_timeout_ms = 10; }), Code::kOk);
  EXPECT_EQ(code_with([](Config& c) { c.connect_timeout_ms = 0; }), Code::kInvalidArgument);
  EXPECT_EQ(code_with([](Config& c) { c.connect_timeout_ms = 10; }), Code::kOk);
  EXPECT_EQ(code_with([](Config& c) { c.metadata_ttl_s = 0; }), Code::kInvalidArgument);
  EXPECT_EQ(code_with([](Config& c) { c.metadata_ttl_s = 1; }), Code::kOk);
  EXPECT_EQ(code_with([](Config& c) { c.metadata_ttl_s = 86400; }), Code::kOk);
  EXPECT_EQ(code_with([](Config& c) { c.metadata_ttl_s = 86401; }), Code::kInvalidArgument);
  EXPECT_EQ(code_with([](Config& c) { c.max_registered_buffers = 0; }), Code::kInvalidArgument);
  EXPECT_EQ(code_with([](Config& c) { c.max_registered_buffers = 1u << 24; }), Code::kOk);
  EXPECT_EQ(code_with([](Config& c) { c.max_registered_buffers = (1u << 24) + 1; }),
            Code::kInvalidArgument);
}

TEST_F(ConfigTest, MetricsPortFromJsonAndEnvironment) {
  Config c;
  EXPECT_EQ(c.metrics_port, 0);  // off unless asked for
  ASSERT_TRUE(Config::FromJson(R"({"metrics_port": 9100})", &c).ok());
  EXPECT_EQ(c.metrics_port, 9100);
  setenv("TE_METRICS_PORT", "9200", 1);
  ASSERT_TRUE(Config::FromEnv(&c).ok());
  EXPECT_EQ(c.metrics_port, 9200);
  setenv("TE_METRICS_PORT", "70000", 1);
  EXPECT_EQ(Config::FromEnv(&c).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Config::FromJson(R"({"metrics_port": -1})", &c).code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace te
