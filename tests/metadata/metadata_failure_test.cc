// Central metadata when servers fail: down at start, black-holed, of the wrong kind,
// killed while engines run (open segments keep transferring), failover to the next
// server, and redis credentials. Every failure must come back as a clear error
// within a bounded time; the measured times are printed.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/refusing_port_test.h"
#include "pattern.h"
#include "test_helpers.h"

namespace te_test {
namespace {

// A port that accepts TCP connections into its backlog but never answers: the
// worst case for a client, which must time out instead of hanging.
class BlackHole {
 public:
  BlackHole() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        ::listen(fd_, 16) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~BlackHole() { ::close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

class MetadataFailureTest : public ServerPerBackendTest {
 protected:
  std::string Name() const { return ServerLabel(GetParam()); }
};

TEST_P(MetadataFailureTest, ServerDownAtStartFailsFast) {
  te::Config config = Config("seg-down");
  te::RefusingPort refusing;
  const uint16_t dead = refusing.port();
  config.metadata_servers = "127.0.0.1:" + std::to_string(dead);
  const auto start = Clock::now();
  te::TransferEngine engine(config);
  const int64_t ms = MsSince(start);
  ASSERT_FALSE(engine.available());
  EXPECT_EQ(engine.status().code(), te::Status::Code::kUnavailable) << engine.status().ToString();
  EXPECT_NE(engine.status().message().find(std::to_string(dead)), std::string::npos)
      << engine.status().message();
  Measured(Name() + ": engine start with the server down (refused)", ms);
  // A refused connect fails at once; the bound is the configured connect timeout,
  // with that again as slack, never a guess at this machine's speed.
  EXPECT_LT(ms, 2 * static_cast<int64_t>(config.connect_timeout_ms));
  std::cout << "  error: " << engine.status().ToString() << std::endl;
}

TEST_P(MetadataFailureTest, BlackHoledServerTimesOut) {
  BlackHole hole;
  ASSERT_NE(hole.port(), 0);
  te::Config config = Config("seg-hole");
  config.metadata_servers = "127.0.0.1:" + std::to_string(hole.port());
  const auto start = Clock::now();
  te::TransferEngine engine(config);
  const int64_t ms = MsSince(start);
  ASSERT_FALSE(engine.available());
  Measured(Name() + ": engine start with a server that never answers (timeout 1000 ms)", ms);
  std::cout << "  error: " << engine.status().ToString() << std::endl;
  // One server: connect + reply, each bounded by connect_timeout_ms.
  EXPECT_LT(ms, 2 * 1000 + 1500);
  EXPECT_GE(ms, 900);
}

TEST_P(MetadataFailureTest, FailsOverToTheNextServer) {
  te::Config config = Config("seg-failover");
  te::RefusingPort refusing;
  config.metadata_servers =
      "127.0.0.1:" + std::to_string(refusing.port()) + "," + server_->servers();
  te::TransferEngine engine(config);
  ASSERT_TRUE(engine.available()) << engine.status().ToString();
  te::SegmentDescriptor found;
  te::Status s = MakeClient(config)->Lookup("seg-failover", &found);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_P(MetadataFailureTest, ServerKilledMidRunKeepsOpenSegmentsWorking) {
  PeerEngine target;
  std::string error;
  ASSERT_TRUE(target.Start(*server_, "seg-live", Log("target"), &error, /*fill=*/21)) << error;
  PeerEngine other;
  ASSERT_TRUE(other.Start(*server_, "seg-other", Log("other"), &error)) << error;

  auto engine = std::make_unique<te::TransferEngine>(Config("seg-initiator"));
  ASSERT_TRUE(engine->available()) << engine->status().ToString();
  te::SegmentHandle segment;
  ASSERT_TRUE(engine->openSegment(&segment, "seg-live").ok());
  const size_t len = target.length;
  void* local = nullptr;
  ASSERT_TRUE(engine->allocateLocalMemory(&local, len).ok());
  ASSERT_TRUE(engine->registerLocalMemory(local, len).ok());

  server_->Kill();

  // Lookups fail, bounded and clearly.
  te::SegmentHandle other_segment;
  auto start = Clock::now();
  te::Status s = engine->openSegment(&other_segment, "seg-other");
  int64_t ms = MsSince(start);
  EXPECT_EQ(s.code(), te::Status::Code::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("seg-other"), std::string::npos) << s.message();
  Measured(Name() + ": openSegment with the server killed", ms);
  std::cout << "  error: " << s.ToString() << std::endl;
  // Refused at once; bounded by the configured connect timeout, with slack from it.
  EXPECT_LT(ms, 3 * static_cast<int64_t>(Config().connect_timeout_ms));
  start = Clock::now();
  s = engine->refreshSegment(segment);
  EXPECT_FALSE(s.ok());
  Measured(Name() + ": refreshSegment with the server killed", MsSince(start));

  // The open segment keeps its cached descriptor and keeps transferring.
  te::TransferStatus st = Transfer(*engine, segment, te::Request::READ, local, target.base, len);
  ASSERT_EQ(st.state, te::TransferState::kCompleted) << st.error;
  EXPECT_EQ(PatternMismatch(local, len, 21), -1);
  FillPattern(local, len, 22);
  st = Transfer(*engine, segment, te::Request::WRITE, local, target.base, len);
  ASSERT_EQ(st.state, te::TransferState::kCompleted) << st.error;
  std::string reply;
  ASSERT_TRUE(target.process.SendLine("CHECK 22"));
  ASSERT_TRUE(target.process.ReadLine(&reply, 10s));
  EXPECT_EQ(reply, "OK");

  // Registering memory republishes; that fails (logged) but the call succeeds.
  void* more = nullptr;
  ASSERT_TRUE(engine->allocateLocalMemory(&more, 4096).ok());
  start = Clock::now();
  EXPECT_TRUE(engine->registerLocalMemory(more, 4096).ok());
  Measured(Name() + ": registerLocalMemory (republish fails) with the server killed",
           MsSince(start));

  // Shutting down (unpublish fails) stays bounded too.
  start = Clock::now();
  engine.reset();
  ms = MsSince(start);
  Measured(Name() + ": engine shutdown with the server killed", ms);
  EXPECT_LT(ms, 5000);

  // The server returns empty; the live engines' keep-alives publish their entries
  // again, and lookups work once more.
  ASSERT_TRUE(server_->Restart(&error)) << error;
  auto later = std::make_unique<te::TransferEngine>(Config("seg-latecomer"));
  ASSERT_TRUE(later->available()) << later->status().ToString();
  const auto deadline = Clock::now() + 15s;
  do {
    s = later->openSegment(&other_segment, "seg-other");
  } while (!s.ok() && Clock::now() < deadline && (std::this_thread::sleep_for(100ms), true));
  EXPECT_TRUE(s.ok()) << s.ToString();
}

INSTANTIATE_TEST_SUITE_P(Backends, MetadataFailureTest, AllBackends(), BackendParamName);
INSTANTIATE_TEST_SUITE_P(KeyOnly, MetadataFailureTest, testing::Values(Backend::kHttpKeyOnly),
                         BackendParamName);

// Each client pointed at a server of another kind: a clear error, quickly.
TEST(MetadataWrongServerTest, ClientsRefuseServersOfAnotherKind) {
  MetadataServerProcess redis(Backend::kRedis), http(Backend::kHttp);
  std::string error;
  ASSERT_TRUE(redis.Start(&error)) << error;
  ASSERT_TRUE(http.Start(&error)) << error;
  struct Case {
    const char* type;
    std::string servers;
  } cases[] = {{"redis", http.servers()},
               {"etcd", http.servers()},
               {"http", redis.servers()},
               {"etcd", redis.servers()}};
  for (const Case& c : cases) {
    te::Config config = TestConfig(http, "seg-wrong");
    config.metadata_type = c.type;
    config.metadata_servers = c.servers;
    const auto start = Clock::now();
    te::TransferEngine engine(config);
    const int64_t ms = MsSince(start);
    EXPECT_FALSE(engine.available()) << c.type << " -> " << c.servers;
    Measured(std::string(c.type) + " client against a server of another kind", ms);
    std::cout << "  error: " << engine.status().ToString() << std::endl;
    EXPECT_LT(ms, 2 * 1000 + 1500);
  }
}

TEST(MetadataRedisCredentialsTest, PasswordAndDatabaseFromTheServerString) {
  MetadataServerProcess redis(Backend::kRedis, {"--requirepass", "s3cret:@"});
  std::string error;
  ASSERT_TRUE(redis.Start(&error)) << error;
  const std::string where = "127.0.0.1:" + std::to_string(redis.port());
  te::Config config = TestConfig(redis, "seg-auth");
  config.metadata_servers = "redis://:s3cret%3A%40@" + where + "/3";
  auto owner = MakeClient(config, "seg-auth");
  te::Status s = owner->Publish(FakeDescriptor("seg-auth", 1));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(LookupStatus(MakeClient(config).get(), "seg-auth").ok());

  // Database 0 does not have it.
  te::Config db0 = config;
  db0.metadata_servers = "redis://:s3cret%3A%40@" + where;
  EXPECT_EQ(LookupStatus(MakeClient(db0).get(), "seg-auth").code(), te::Status::Code::kNotFound);

  te::Config wrong = config;
  wrong.metadata_servers = "redis://:nope@" + where + "/3";
  s = LookupStatus(MakeClient(wrong).get(), "seg-auth");
  EXPECT_EQ(s.code(), te::Status::Code::kPermissionDenied) << s.ToString();
  std::cout << "  wrong password: " << s.ToString() << std::endl;

  te::Config none = config;
  none.metadata_servers = where;
  s = LookupStatus(MakeClient(none).get(), "seg-auth");
  EXPECT_FALSE(s.ok());
  std::cout << "  no password: " << s.ToString() << std::endl;
}

TEST(MetadataServerStringTest, MalformedServersFailBeforeAnyPortOpens) {
  te::Config config;
  config.rpc_host = "127.0.0.1";
  for (auto [type, servers] :
       std::vector<std::pair<std::string, std::string>>{{"redis", "rediss://host:6379"},
                                                        {"redis", "host:notaport"},
                                                        {"redis", "redis://:pw@host:6379/x"},
                                                        {"etcd", "https://host:2379"},
                                                        {"etcd", "host:2379/some/path"},
                                                        {"http", "host"},
                                                        {"http", "ftp://host:1/x"}}) {
    config.metadata_type = type;
    config.metadata_servers = servers;
    te::TransferEngine engine(config);
    EXPECT_FALSE(engine.available()) << type << " " << servers;
    EXPECT_EQ(engine.status().code(), te::Status::Code::kInvalidArgument)
        << type << " " << servers << ": " << engine.status().ToString();
  }
}

}  // namespace
}  // namespace te_test
