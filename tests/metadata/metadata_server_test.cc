// transfer_engine_metadata_server as a real process: the protocol, 4xx for bad
// requests, limits, concurrent clients, clean shutdown. Also MetadataStore itself.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "metadata/text_codec.h"
#include "metadata_store.h"
#include "test_helpers.h"

namespace te_test {
namespace {

class MetadataServerTest : public testing::Test {
 protected:
  void Start(std::vector<std::string> args = {}) {
    server_ = std::make_unique<MetadataServerProcess>(Backend::kHttp, std::move(args));
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
  }
  std::unique_ptr<httplib::Client> Client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    c->set_connection_timeout(5, 0);
    c->set_read_timeout(5, 0);
    c->set_tcp_nodelay(true);
    return c;
  }
  static std::string Path(const std::string& key) {
    return "/metadata?key=" + te::PercentEncode(key);
  }
  // Sends raw bytes on a fresh connection and returns the first line of the reply.
  std::string RawRequest(const std::string& bytes) const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(server_->port());
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string reply;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size())) {
      char buf[512];
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n > 0) reply.assign(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return reply.substr(0, reply.find("\r\n"));
  }
  bool Alive() const {
    auto r = Client()->Get(Path("alive?"));
    return r && r->status == 404;
  }

  std::unique_ptr<MetadataServerProcess> server_;
};

TEST_F(MetadataServerTest, GetPutDeleteAsExistingServersDo) {
  Start();
  auto c = Client();
  const std::string key = "te/segments/a b&c=d+é";
  auto r = c->Get(Path(key));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "metadata not found");

  r = c->Put(Path(key), "{\"v\":1}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = c->Get(Path(key));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"v\":1}");
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  // The raw key and an encoding that differs are different keys.
  EXPECT_EQ(c->Get("/metadata?key=te/segments/a")->status, 404);

  ASSERT_EQ(c->Put(Path(key), "{\"v\":2}", "application/json")->status, 200);
  EXPECT_EQ(c->Get(Path(key))->body, "{\"v\":2}");
  ASSERT_EQ(c->Put(Path(key), "", "application/json")->status, 200);  // empty values are values
  EXPECT_EQ(c->Get(Path(key))->status, 200);

  EXPECT_EQ(c->Delete(Path(key))->status, 200);
  EXPECT_EQ(c->Delete(Path(key))->status, 404);
  EXPECT_EQ(c->Get(Path(key))->status, 404);
}

TEST_F(MetadataServerTest, BadRequestsGet4xxAndTheServerLives) {
  // A short I/O timeout: a request announcing more body than it sends gets its 413
  // once the server gives up reading.
  Start({"--max_body_bytes=1024", "--max_total_bytes=3500", "--io_timeout_s=1"});
  auto c = Client();
  EXPECT_EQ(c->Get("/metadata")->status, 400);
  EXPECT_EQ(c->Get("/metadata?key=")->status, 400);
  EXPECT_EQ(c->Get("/metadata?other=1")->status, 400);
  EXPECT_EQ(c->Put("/metadata", "x", "text/plain")->status, 400);
  EXPECT_EQ(c->Delete("/metadata")->status, 400);
  EXPECT_EQ(c->Get("/nothing?key=a")->status, 404);
  EXPECT_EQ(c->Put("/", "x", "text/plain")->status, 404);
  auto r = c->Post(Path("a"), "x", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_NE(r->get_header_value("Allow").find("PUT"), std::string::npos);
  EXPECT_EQ(c->Patch(Path("a"), "x", "text/plain")->status, 405);

  // Bodies: at the limit fine, above it 413 (the value is not stored).
  EXPECT_EQ(c->Put(Path("big"), std::string(1024, 'x'), "text/plain")->status, 200);
  EXPECT_EQ(c->Put(Path("big"), std::string(1025, 'x'), "text/plain")->status, 413);
  EXPECT_EQ(c->Get(Path("big"))->body.size(), 1024u);
  // The store's byte bound: 507 once full, and room again after a delete.
  ASSERT_EQ(c->Put(Path("b2"), std::string(1000, 'y'), "text/plain")->status, 200);
  ASSERT_EQ(c->Put(Path("b3"), std::string(1000, 'y'), "text/plain")->status, 200);
  ASSERT_EQ(c->Put(Path("b4"), std::string(1000, 'y'), "text/plain")->status, 507);
  ASSERT_EQ(c->Delete(Path("b3"))->status, 200);
  ASSERT_EQ(c->Put(Path("b4"), std::string(1000, 'y'), "text/plain")->status, 200);

  // Not HTTP at all, an unknown method, a huge URI, a lying Content-Length.
  EXPECT_EQ(RawRequest("hello there\r\n\r\n").substr(0, 12), "HTTP/1.1 400");
  EXPECT_EQ(RawRequest("BREW /metadata?key=a HTTP/1.1\r\nHost: x\r\n\r\n").substr(0, 12),
            "HTTP/1.1 400");
  EXPECT_EQ(RawRequest("GET /metadata?key=" + std::string(20000, 'k') + " HTTP/1.1\r\n\r\n")
                .substr(0, 10),
            "HTTP/1.1 4");
  EXPECT_EQ(RawRequest("PUT /metadata?key=a HTTP/1.1\r\nHost: x\r\nContent-Length: "
                       "99999999999\r\n\r\nabc")
                .substr(0, 12),
            "HTTP/1.1 413");
  EXPECT_TRUE(Alive());
  EXPECT_TRUE(server_ != nullptr);
}

// The extensions for segments of many entries: conditional multi-key batches and
// listing by prefix (docs/metadata.md, "http").
TEST_F(MetadataServerTest, BatchesApplyTogetherOnlyWhenTheExpectationHolds) {
  Start();
  auto c = Client();
  using Json = nlohmann::json;
  auto batch = [&](const Json& body) {
    return c->Post("/metadata/batch", body.dump(), "application/json");
  };
  auto list = [&](const std::string& query) {
    auto r = c->Get("/metadata?prefix=" + query);
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no reply");
    return r ? Json::parse(r->body) : Json();
  };
  // Created only while absent.
  const Json create = {{"expect", {{"key", "h"}, {"value", nullptr}}},
                       {"put", {{"h", "1"}, {"p/a", "A"}, {"p/b", "B"}, {"q/a", "Q"}}}};
  auto r = batch(create);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  r = batch(create);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(Json::parse(r->body)["value"], "1");

  EXPECT_EQ(list("p/"), Json::parse(R"({"entries": [["p/a", "A"], ["p/b", "B"]], "more": false})"));
  EXPECT_EQ(list("p/&limit=1"), Json::parse(R"({"entries": [["p/a", "A"]], "more": true})"));
  EXPECT_EQ(list("p/&limit=1&after=p/a"),
            Json::parse(R"({"entries": [["p/b", "B"]], "more": false})"));
  EXPECT_EQ(c->Get("/metadata?prefix=p/&limit=0")->status, 400);

  // A wrong expectation changes nothing; a right one applies prefix delete, deletes
  // and puts together.
  Json change = {{"expect", {{"key", "h"}, {"value", "2"}}},
                 {"delete_prefix", "p/"},
                 {"delete", {"q/a"}},
                 {"put", {{"p/c", "C"}, {"h", "2"}}}};
  r = batch(change);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(list("p/")["entries"].size(), 2u);
  change["expect"]["value"] = "1";
  r = batch(change);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(list("p/")["entries"], Json::parse(R"([["p/c", "C"]])"));
  EXPECT_TRUE(list("q/")["entries"].empty());
  EXPECT_EQ(c->Get(Path("h"))->body, "2");
  r = batch(Json{{"get", {"p/c", "p/none"}}});
  ASSERT_TRUE(r);
  EXPECT_EQ(Json::parse(r->body), (Json{{"values", {{"p/c", "C"}}}}));

  for (const char* bad : {"nope", "[]", R"({"put": {"k": 5}})", R"({"expect": {"key": "h"}})",
                          R"({"put": {"": "x"}})", R"({"delete": "k"})"}) {
    r = c->Post("/metadata/batch", bad, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << bad;
  }
  EXPECT_TRUE(Alive());
}

TEST_F(MetadataServerTest, ServesConcurrentClients) {
  Start();
  // Idle connections that send nothing must not starve the others.
  std::vector<int> idle;
  for (int i = 0; i < 3; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(server_->port());
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    idle.push_back(fd);
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto c = Client();
      c->set_keep_alive(t % 2 == 0);  // both kinds of clients
      for (int i = 0; i < 100; ++i) {
        const std::string key = "k" + std::to_string(t) + "-" + std::to_string(i % 10);
        const std::string value = "v" + std::to_string(i);
        auto put = c->Put(Path(key), value, "text/plain");
        auto get = c->Get(Path(key));
        if (!put || put->status != 200 || !get || get->status != 200 || get->body != value) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  const int64_t ms = MsSince(start);
  for (int fd : idle) ::close(fd);
  EXPECT_EQ(failures.load(), 0);
  Measured("8 clients x 200 requests with 3 idle connections open", ms);
  EXPECT_LT(ms, 15000);
}

TEST_F(MetadataServerTest, ShutsDownCleanlyOnSigtermAndSigint) {
  for (const std::string flag : {"--port=0"}) {
    for (int sig : {SIGTERM, SIGINT}) {
      TempDir dir;
      ChildProcess p;
      std::string error, line;
      ASSERT_TRUE(
          p.Start({TE_METADATA_SERVER_PATH, "--host=127.0.0.1", flag}, dir.path() + "/log", &error))
          << error;
      ASSERT_TRUE(p.WaitForLine("listening on http://127.0.0.1:", &line, 10s)) << p.LogTail();
      p.Signal(sig);
      int status = 0;
      const auto start = Clock::now();
      ASSERT_TRUE(p.WaitExit(5s, &status)) << "still running after signal " << sig;
      Measured("metadata server exit after signal " + std::to_string(sig), MsSince(start));
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << p.LogTail();
    }
  }
}

TEST_F(MetadataServerTest, BusyPortAndBadFlagsAreErrors) {
  Start();
  TempDir dir;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--host=127.0.0.1", "--port=" + std::to_string(server_->port())},
        std::vector<std::string>{"--port=70000"}, std::vector<std::string>{"--threads=0"},
        std::vector<std::string>{"--host=not-an-address", "--port=0"}}) {
    ChildProcess p;
    std::vector<std::string> argv = {TE_METADATA_SERVER_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string error;
    ASSERT_TRUE(p.Start(argv, dir.path() + "/log", &error)) << error;
    int status = 0;
    ASSERT_TRUE(p.WaitExit(10s, &status)) << args[0];
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << args[0];
  }
  EXPECT_TRUE(Alive());
}

TEST(MetadataStoreTest, CountsBytesAndRefusesBeyondTheBound) {
  te::metadata_server::MetadataStore store(10);
  EXPECT_TRUE(store.Put("ab", "cdef"));  // 6 bytes
  EXPECT_EQ(store.total_bytes(), 6u);
  EXPECT_FALSE(store.Put("x", "yyyyy"));     // 6 + 6 > 10
  EXPECT_TRUE(store.Put("ab", "cdefghij"));  // replaces: 10
  EXPECT_EQ(store.total_bytes(), 10u);
  std::string v;
  EXPECT_TRUE(store.Get("ab", &v));
  EXPECT_EQ(v, "cdefghij");
  EXPECT_TRUE(store.Delete("ab"));
  EXPECT_FALSE(store.Delete("ab"));
  EXPECT_EQ(store.total_bytes(), 0u);
  EXPECT_EQ(store.size(), 0u);
}

TEST(MetadataStoreTest, BatchBeyondTheBoundChangesNothing) {
  using te::metadata_server::BatchResult;
  te::metadata_server::MetadataStore store(20);
  ASSERT_TRUE(store.Put("p/a", "11111"));  // 8 bytes
  ASSERT_TRUE(store.Put("k", "222"));      // 4 bytes
  te::metadata_server::StoreBatch batch;
  batch.delete_prefix = "p/";
  batch.erase = {"k"};
  batch.put = {{"k", "3333333333"}, {"p/b", "444444444444"}};  // 11 + 15 > 20
  std::optional<std::string> current;
  EXPECT_EQ(store.Apply(batch, &current, nullptr), BatchResult::kFull);
  std::string v;
  EXPECT_TRUE(store.Get("p/a", &v));
  EXPECT_EQ(v, "11111");
  EXPECT_TRUE(store.Get("k", &v));
  EXPECT_EQ(v, "222");
  EXPECT_FALSE(store.Get("p/b", &v));
  EXPECT_EQ(store.total_bytes(), 12u);
  batch.put.pop_back();  // 11 bytes: fits
  EXPECT_EQ(store.Apply(batch, &current, nullptr), BatchResult::kApplied);
  EXPECT_FALSE(store.Get("p/a", &v));
  EXPECT_EQ(store.total_bytes(), 11u);
}

}  // namespace
}  // namespace te_test
