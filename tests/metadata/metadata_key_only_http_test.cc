// The http backend against a server of GET/PUT/DELETE ?key= only, as Mooncake's http
// metadata server is (key_only_metadata_server.py follows that protocol): the engine
// finds out once that there is no batch endpoint (404 or 405) and stores each
// segment as one whole descriptor under its key; engines open each other's segments
// through it, transfer, see registrations after a refresh, survive restarts of an
// engine and of the server; a name taken over is never written back by its old holder.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "metadata/http_client.h"
#include "metadata/segment_entries.h"
#include "test_helpers.h"

namespace te_test {
namespace {

// Raw requests to the server, as the stand-in for an operator's curl.
class RawHttp {
 public:
  explicit RawHttp(const MetadataServerProcess& server)
      : http_("http metadata", {{"http://" + server.servers(), "/metadata"}}, 1000) {}
  // The status of GET ?key=<key>, its body in *value.
  int Get(const std::string& key, std::string* value) {
    te::HttpResponse response;
    te::Status s = http_.Send("GET", "?key=" + Encode(key), "", &response);
    EXPECT_TRUE(s.ok()) << s.ToString();
    *value = response.body;
    return response.status;
  }
  void Put(const std::string& key, const std::string& value) {
    te::HttpResponse response;
    ASSERT_TRUE(http_.Send("PUT", "?key=" + Encode(key), value, &response).ok());
    ASSERT_EQ(response.status, 200);
  }

 private:
  static std::string Encode(const std::string& key) {
    std::string out;
    for (unsigned char c : key) {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", c);
      out += std::isalnum(c) ? std::string(1, static_cast<char>(c)) : std::string(hex);
    }
    return out;
  }
  te::HttpFailover http_;
};

// Param: what the server answers to POST <path>/batch (404 or 405).
class KeyOnlyHttpTest : public testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    server_ = std::make_unique<MetadataServerProcess>(
        Backend::kHttpKeyOnly,
        std::vector<std::string>{"--post_status=" + std::to_string(GetParam())});
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
  }
  te::Config Config(const std::string& name = "") const { return TestConfig(*server_, name); }

  // The segment as the server holds it: one descriptor with its buffers.
  te::SegmentDescriptor Stored(const std::string& name) {
    std::string value;
    te::SegmentDescriptor d;
    EXPECT_EQ(RawHttp(*server_).Get(te::SegmentKeys::Of(name).header, &value), 200);
    te::Status s = te::SegmentDescriptor::FromJson(value, &d);
    EXPECT_TRUE(s.ok()) << s.ToString() << ": " << value;
    return d;
  }

  std::unique_ptr<MetadataServerProcess> server_;
};

TEST_P(KeyOnlyHttpTest, SegmentIsOneWholeDescriptorRewrittenByEachChange) {
  te::Config config = Config("seg-w");
  config.metadata_ttl_s = 60;  // keeps the keep-alive out of the requests counted
  auto owner = MakeClient(config, "seg-w");
  const te::SegmentDescriptor published = FakeDescriptor("seg-w", 100, 3);
  te::Status s = owner->Publish(published);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Stored("seg-w").buffers.size(), 3u);
  // No entry per buffer: the server has nothing under the buffer prefix.
  std::string value;
  const te::SegmentKeys keys = te::SegmentKeys::Of("seg-w");
  EXPECT_EQ(RawHttp(*server_).Get(keys.BufferKey(te::BufferId(0x100000)), &value), 404);

  // The mode is detected once: each change is a GET (still ours?) and a PUT.
  const te::KvTraffic before = owner->Traffic();
  te::SegmentBuffer added = FakeDescriptor("seg-w", 100, 4).buffers[3];
  ASSERT_TRUE(owner->PublishChanges({added}, {}).ok());
  ASSERT_TRUE(owner->PublishChanges({}, {published.buffers[0].base}).ok());
  EXPECT_EQ(owner->Traffic().requests - before.requests, 4u);
  const te::SegmentDescriptor stored = Stored("seg-w");
  ASSERT_EQ(stored.buffers.size(), 3u);
  EXPECT_EQ(stored.buffers[0].base, published.buffers[1].base);
  EXPECT_EQ(stored.buffers[2].base, added.base);

  // A reader sees the same, and after a refresh the change.
  auto reader = MakeClient(Config());
  te::SegmentDescriptor found;
  ASSERT_TRUE(reader->Lookup("seg-w", &found).ok());
  EXPECT_EQ(found.ToJson(), stored.ToJson());

  ASSERT_TRUE(owner->Unpublish("seg-w").ok());
  EXPECT_EQ(RawHttp(*server_).Get(keys.header, &value), 404);
  EXPECT_EQ(LookupStatus(reader.get(), "seg-w").code(), te::Status::Code::kNotFound);
}

TEST_P(KeyOnlyHttpTest, NameTakenOverIsNeverWrittenBackByItsOldHolder) {
  // Without a compare operation two claims can race; the later PUT holds the name.
  // Here a second client takes the name of a holder that does not answer, and the
  // old holder neither overwrites it with a change nor with its keep-alive.
  auto old_holder = MakeClient(Config("seg-t"), "seg-t");
  ASSERT_TRUE(old_holder->Publish(FakeDescriptor("seg-t", 100, 2)).ok());
  auto successor = MakeClient(Config("seg-t"), "seg-t");
  te::Status s = successor->Publish(FakeDescriptor("seg-t", 200, 1));
  ASSERT_TRUE(s.ok()) << s.ToString();

  s = old_holder->PublishChanges({FakeDescriptor("seg-t", 100, 3).buffers[2]}, {});
  EXPECT_EQ(s.code(), te::Status::Code::kAlreadyExists) << s.ToString();
  EXPECT_NE(s.message().find("taken over"), std::string::npos) << s.message();
  // Longer than two keep-alive periods (ttl 2 s / 3): the old holder's keep-alive
  // must see that the entry is no longer its own and leave it.
  std::this_thread::sleep_for(1500ms);
  te::SegmentDescriptor stored = Stored("seg-t");
  EXPECT_EQ(stored.pid, 200u);
  EXPECT_EQ(stored.buffers.size(), 1u);
  ASSERT_TRUE(old_holder->Unpublish("seg-t").ok());  // not ours: left alone
  EXPECT_EQ(Stored("seg-t").pid, 200u);
}

TEST_P(KeyOnlyHttpTest, UnreadableValueUnderTheNameIsTakenOver) {
  RawHttp(*server_).Put(te::SegmentKeys::Of("seg-u").header, "not a descriptor");
  auto owner = MakeClient(Config("seg-u"), "seg-u");
  te::Status s = owner->Publish(FakeDescriptor("seg-u", 100, 2));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Stored("seg-u").buffers.size(), 2u);
}

TEST_P(KeyOnlyHttpTest, EngineSaysOnceWhichModeItUsesAndWhy) {
  TempDir dir;
  const std::string log = dir.path() + "/peer.log";
  PeerEngine peer;
  std::string error;
  ASSERT_TRUE(peer.Start(*server_, "seg-log", log, &error)) << error;
  ASSERT_TRUE(LookupStatus(MakeClient(Config()).get(), "seg-log").ok());
  // Two keep-alive periods (ttl 2 s / 3), then the unpublish: more calls, no more lines.
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(peer.process.SendLine("EXIT"));
  ASSERT_TRUE(peer.process.WaitForLine("BYE", nullptr, 10s)) << peer.process.LogTail();
  EXPECT_EQ(LookupStatus(MakeClient(Config()).get(), "seg-log").code(),
            te::Status::Code::kNotFound);
  std::ifstream in(log);
  std::string line;
  int said = 0;
  while (std::getline(in, line)) {
    if (line.find("has no batch endpoint") == std::string::npos) continue;
    ++said;
    EXPECT_NE(line.find("answered HTTP " + std::to_string(GetParam())), std::string::npos) << line;
    EXPECT_NE(line.find("whole descriptor"), std::string::npos) << line;
  }
  EXPECT_EQ(said, 1) << peer.process.LogTail();
}

// Engines in this process: both publish, open each other's segment, transfer both
// ways; registrations show after a refresh; one engine restarts under its name, the
// server restarts empty; the other sees each through its open handle.
TEST_P(KeyOnlyHttpTest, EnginesOpenEachOtherTransferAndFollowRestarts) {
  constexpr size_t kLen = 1 << 16;
  auto a = std::make_unique<te::TransferEngine>(Config("seg-a"));
  te::TransferEngine b(Config("seg-b"));
  ASSERT_TRUE(a->available()) << a->status().ToString();
  ASSERT_TRUE(b.available()) << b.status().ToString();
  std::vector<char> mem_a(kLen, 'a'), mem_b(kLen, 'b');
  ASSERT_TRUE(a->registerLocalMemory(mem_a.data(), kLen).ok());
  ASSERT_TRUE(b.registerLocalMemory(mem_b.data(), kLen).ok());
  te::SegmentHandle a_at_b = 0, b_at_a = 0;
  ASSERT_TRUE(b.openSegment(&a_at_b, "seg-a").ok());
  ASSERT_TRUE(a->openSegment(&b_at_a, "seg-b").ok());

  std::vector<char> scratch_a(kLen, 'x');
  ASSERT_TRUE(a->registerLocalMemory(scratch_a.data(), kLen).ok());
  const auto remote = [](const std::vector<char>& v) {
    return reinterpret_cast<uint64_t>(v.data());
  };
  te::TransferStatus st =
      Transfer(*a, b_at_a, te::Request::READ, scratch_a.data(), remote(mem_b), kLen);
  ASSERT_EQ(st.state, te::TransferState::kCompleted) << st.error;
  EXPECT_EQ(std::memcmp(scratch_a.data(), mem_b.data(), kLen), 0);
  // b learns of a's second buffer by refreshing, and writes into it.
  ASSERT_TRUE(b.refreshSegment(a_at_b).ok());
  st = Transfer(b, a_at_b, te::Request::WRITE, mem_b.data(), remote(scratch_a), kLen);
  ASSERT_EQ(st.state, te::TransferState::kCompleted) << st.error;
  EXPECT_EQ(std::memcmp(scratch_a.data(), mem_b.data(), kLen), 0);
  // Unregistered: gone after b's refresh.
  ASSERT_TRUE(a->unregisterLocalMemory(scratch_a.data()).ok());
  ASSERT_TRUE(b.refreshSegment(a_at_b).ok());
  te::SegmentInfo info;
  ASSERT_TRUE(b.getSegmentInfo(a_at_b, &info).ok());
  ASSERT_EQ(info.buffers.size(), 1u);
  EXPECT_EQ(info.buffers[0].base, remote(mem_a));

  // a restarts under its name with other memory; b's refresh finds the new one.
  a.reset();
  a = std::make_unique<te::TransferEngine>(Config("seg-a"));
  ASSERT_TRUE(a->available()) << a->status().ToString();
  std::vector<char> mem_a2(kLen, 'n');
  ASSERT_TRUE(a->registerLocalMemory(mem_a2.data(), kLen).ok());
  ASSERT_TRUE(b.refreshSegment(a_at_b).ok());
  st = Transfer(b, a_at_b, te::Request::READ, mem_b.data(), remote(mem_a2), kLen);
  ASSERT_EQ(st.state, te::TransferState::kCompleted) << st.error;
  EXPECT_EQ(std::memcmp(mem_b.data(), mem_a2.data(), kLen), 0);

  // The server restarts empty: a's keep-alive writes its segment again, buffers too.
  std::string error;
  ASSERT_TRUE(server_->Restart(&error)) << error;
  EXPECT_TRUE(WaitFor(
      [&] {
        te::SegmentDescriptor d;
        return MakeClient(Config())->Lookup("seg-a", &d).ok() && d.buffers.size() == 1 &&
               d.buffers[0].base == remote(mem_a2);
      },
      10s));
  EXPECT_TRUE(b.refreshSegment(a_at_b).ok());
}

INSTANTIATE_TEST_SUITE_P(BatchAnswer, KeyOnlyHttpTest, testing::Values(404, 405),
                         [](const testing::TestParamInfo<int>& info) {
                           return "Post" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace te_test
