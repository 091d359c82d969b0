// Segments of many buffers in the central backends (redis, etcd, http), stored as a
// header and one entry per buffer (docs/metadata.md): after every registration and
// unregistration a second client or engine sees exactly the registered set, what a
// registration writes does not grow with the number of buffers, a refresh after a
// few changes reads only those, and the entries live and die with the engine.
#include <gtest/gtest.h>

#include <set>

#include "test_helpers.h"

namespace te_test {
namespace {

using Bases = std::set<uint64_t>;

te::SegmentBuffer Buffer(uint64_t i) {
  te::SegmentBuffer b;
  b.base = 0x10000000 + i * 0x1000;
  b.length = 4096;
  b.location = "cpu:0";
  b.permission = te::Permission::kRemoteReadWrite;
  b.pin_slot = static_cast<uint32_t>(i);
  b.pin_generation = 1;
  return b;
}

std::vector<te::SegmentBuffer> Buffers(uint64_t first, uint64_t count) {
  std::vector<te::SegmentBuffer> out;
  for (uint64_t i = first; i < first + count; ++i) out.push_back(Buffer(i));
  return out;
}

Bases BasesOf(const std::vector<te::SegmentBuffer>& buffers) {
  Bases out;
  for (const te::SegmentBuffer& b : buffers) out.insert(b.base);
  return out;
}

std::vector<uint64_t> BaseList(uint64_t first, uint64_t count) {
  std::vector<uint64_t> out;
  for (uint64_t i = first; i < first + count; ++i) out.push_back(Buffer(i).base);
  return out;
}

// A peer holding a segment as an engine does: refreshes with its tag and descriptor.
struct Reader {
  std::unique_ptr<te::MetadataClient> client;
  std::string name, tag;
  std::unique_ptr<te::SegmentDescriptor> held;
  bool last_unchanged = false;

  te::Status Refresh() {
    te::SegmentDescriptor out;
    TE_RETURN_IF_ERROR(client->LookupIfChanged(name, &tag, held.get(), &out, &last_unchanged));
    if (!last_unchanged) held = std::make_unique<te::SegmentDescriptor>(std::move(out));
    return te::Status::OK();
  }
  uint64_t Received() const { return client->Traffic().bytes_received; }
};

class MetadataDeltaTest : public ServerPerBackendTest {
 protected:
  // The owner publishes `name` with no buffers; the reader opens it. ttl_s: the
  // owner's (a long one keeps its keep-alive out of what a test counts).
  void SetUpSegment(const std::string& name, uint32_t ttl_s = 0) {
    te::Config config = Config(name);
    if (ttl_s != 0) config.metadata_ttl_s = ttl_s;
    owner_ = MakeClient(config, name);
    ASSERT_TRUE(owner_->Publish(FakeDescriptor(name, 100, 0)).ok());
    reader_.client = MakeClient(Config());
    reader_.name = name;
    ASSERT_TRUE(reader_.Refresh().ok());
  }
  // The reader's refreshed descriptor, and a fresh lookup, hold exactly `expected`,
  // with the entries the owner published.
  void ExpectSeen(const Bases& expected, const std::string& step) {
    te::Status s = reader_.Refresh();
    ASSERT_TRUE(s.ok()) << step << ": " << s.ToString();
    EXPECT_EQ(BasesOf(reader_.held->buffers), expected) << step;
    te::SegmentDescriptor fresh;
    s = reader_.client->Lookup(reader_.name, &fresh);
    ASSERT_TRUE(s.ok()) << step << ": " << s.ToString();
    EXPECT_EQ(fresh.ToJson(), reader_.held->ToJson()) << step;
  }
  // Bytes the owner sends (and requests it makes) for one change.
  template <typename Change>
  std::pair<uint64_t, uint64_t> Cost(Change change) {
    const te::KvTraffic before = owner_->Traffic();
    te::Status s = change();
    EXPECT_TRUE(s.ok()) << s.ToString();
    const te::KvTraffic after = owner_->Traffic();
    return {after.bytes_sent - before.bytes_sent, after.requests - before.requests};
  }

  std::unique_ptr<te::MetadataClient> owner_;
  Reader reader_;
};

TEST_P(MetadataDeltaTest, ReaderSeesExactlyTheRegisteredSetAfterEachStep) {
  SetUpSegment("seg-many");
  Bases expected;
  ASSERT_TRUE(owner_->PublishChanges(Buffers(0, 2000), {}).ok());  // a batch
  for (uint64_t i = 0; i < 2000; ++i) expected.insert(Buffer(i).base);
  ExpectSeen(expected, "batch of 2000");
  for (uint64_t i = 2000; i < 2005; ++i) {
    ASSERT_TRUE(owner_->PublishChanges({Buffer(i)}, {}).ok());
    expected.insert(Buffer(i).base);
  }
  ExpectSeen(expected, "5 single registrations");
  for (uint64_t i : {7, 2001, 1999}) {
    ASSERT_TRUE(owner_->PublishChanges({}, {Buffer(i).base}).ok());
    expected.erase(Buffer(i).base);
  }
  ExpectSeen(expected, "3 unregistrations");
  ASSERT_TRUE(owner_->PublishChanges({}, BaseList(100, 500)).ok());
  for (uint64_t base : BaseList(100, 500)) expected.erase(base);
  ExpectSeen(expected, "500 unregistered at once");
  ASSERT_TRUE(owner_->PublishChanges({Buffer(7), Buffer(150)}, {Buffer(2004).base}).ok());
  expected.insert(Buffer(7).base);
  expected.insert(Buffer(150).base);
  expected.erase(Buffer(2004).base);
  ExpectSeen(expected, "2 re-registered, 1 unregistered, in one change");
  ExpectSeen(expected, "nothing changed");
  EXPECT_TRUE(reader_.last_unchanged);
  // A whole descriptor published again replaces the set.
  te::SegmentDescriptor whole = FakeDescriptor("seg-many", 100, 0);
  whole.buffers = Buffers(5000, 3);
  ASSERT_TRUE(owner_->Publish(whole).ok());
  ExpectSeen(BasesOf(whole.buffers), "whole descriptor published again");
}

TEST_P(MetadataDeltaTest, RegistrationTrafficDoesNotGrowWithTheBufferCount) {
  SetUpSegment("seg-flat", 60);
  // Enough single changes before each measurement that the header's log is full
  // both times: the header is as long as it gets.
  auto singles = [&](uint64_t first) {
    std::pair<uint64_t, uint64_t> add, remove;
    for (uint64_t i = first; i < first + te::kChangeLogLength + 6; ++i) {
      add = Cost([&] { return owner_->PublishChanges({Buffer(i)}, {}); });
    }
    remove = Cost([&] { return owner_->PublishChanges({}, {Buffer(first).base}); });
    return std::make_pair(add, remove);
  };
  const auto [add_small, remove_small] = singles(0);  // ~70 registered
  const auto [batch_bytes, batch_requests] =
      Cost([&] { return owner_->PublishChanges(Buffers(1000, 10000), {}); });
  const auto [add_large, remove_large] = singles(200);  // ~10,140 registered
  std::cout << "[ measured ] " << BackendName(GetParam()) << ": registration at ~70 buffers "
            << add_small.first << " B, at ~10,140 " << add_large.first << " B; unregistration "
            << remove_small.first << " B / " << remove_large.first << " B; batch of 10,000 "
            << batch_bytes << " B in " << batch_requests << " requests" << std::endl;
  // Only digits of version numbers differ; a whole descriptor of 10,000 is > 1 MB.
  EXPECT_LE(add_large.first, add_small.first + 512);
  EXPECT_LE(remove_large.first, remove_small.first + 512);
  EXPECT_LT(add_large.first, 8u << 10);
  // One request each: a script (redis), a transaction (etcd), a batch (http).
  EXPECT_EQ(add_small.second, 1u);
  EXPECT_EQ(add_large.second, 1u);
  EXPECT_EQ(remove_large.second, 1u);
  if (GetParam() == Backend::kRedis) {
    EXPECT_EQ(batch_requests, 1u);
  }
  EXPECT_LE(batch_requests, 10000u / 50);  // etcd and http split large writes
  Bases expected = BasesOf(Buffers(1000, 10000));
  for (uint64_t i = 1; i < te::kChangeLogLength + 6; ++i) expected.insert(Buffer(i).base);
  for (uint64_t i = 201; i < 200 + te::kChangeLogLength + 6; ++i) expected.insert(Buffer(i).base);
  ExpectSeen(expected, "after the measurements");
}

TEST_P(MetadataDeltaTest, RefreshAfterAFewChangesReadsOnlyThose) {
  SetUpSegment("seg-refresh");
  ASSERT_TRUE(owner_->PublishChanges(Buffers(0, 10000), {}).ok());
  uint64_t before = reader_.Received();
  ASSERT_TRUE(reader_.Refresh().ok());
  const uint64_t full = reader_.Received() - before;
  ASSERT_EQ(reader_.held->buffers.size(), 10000u);

  for (uint64_t i = 10000; i < 10003; ++i)
    ASSERT_TRUE(owner_->PublishChanges({Buffer(i)}, {}).ok());
  ASSERT_TRUE(owner_->PublishChanges({}, {Buffer(5).base, Buffer(6).base}).ok());
  before = reader_.Received();
  ASSERT_TRUE(reader_.Refresh().ok());
  const uint64_t changed = reader_.Received() - before;
  before = reader_.Received();
  ASSERT_TRUE(reader_.Refresh().ok());
  const uint64_t unchanged = reader_.Received() - before;
  EXPECT_TRUE(reader_.last_unchanged);
  std::cout << "[ measured ] " << BackendName(GetParam()) << ": open of 10,000 buffers " << full
            << " B; refresh after 5 changes " << changed << " B; unchanged " << unchanged << " B"
            << std::endl;
  EXPECT_GT(full, 10000u * 50);
  EXPECT_LT(changed, 16u << 10);
  EXPECT_LT(unchanged, 8u << 10);
  Bases expected = BasesOf(Buffers(0, 10003));
  expected.erase(Buffer(5).base);
  expected.erase(Buffer(6).base);
  ExpectSeen(expected, "after 5 changes");
}

TEST_P(MetadataDeltaTest, ReaderFurtherBehindThanTheLogReadsEverything) {
  SetUpSegment("seg-behind");
  ASSERT_TRUE(owner_->PublishChanges(Buffers(0, 100), {}).ok());
  ExpectSeen(BasesOf(Buffers(0, 100)), "100 buffers");
  for (uint64_t i = 0; i < te::kChangeLogLength + 5; ++i) {
    ASSERT_TRUE(owner_->PublishChanges({}, {Buffer(i).base}).ok());
  }
  ExpectSeen(BasesOf(Buffers(te::kChangeLogLength + 5, 100 - te::kChangeLogLength - 5)),
             "more changes than the log holds");
}

TEST_P(MetadataDeltaTest, SuccessorUnderTheSameNameIsReadWhole) {
  SetUpSegment("seg-next");
  ASSERT_TRUE(owner_->PublishChanges(Buffers(0, 10), {}).ok());
  ASSERT_TRUE(owner_->PublishChanges({Buffer(10)}, {}).ok());
  ExpectSeen(BasesOf(Buffers(0, 11)), "first engine");
  ASSERT_TRUE(owner_->Unpublish("seg-next").ok());
  // Another engine takes the name and reaches the same version number.
  auto next = MakeClient(Config("seg-next"), "seg-next");
  ASSERT_TRUE(next->Publish(FakeDescriptor("seg-next", 200, 0)).ok());
  ASSERT_TRUE(next->PublishChanges(Buffers(50, 10), {}).ok());
  ASSERT_TRUE(next->PublishChanges({}, {Buffer(50).base}).ok());
  ExpectSeen(BasesOf(Buffers(51, 9)), "second engine");
  EXPECT_EQ(reader_.held->pid, 200u);
}

TEST_P(MetadataDeltaTest, BuffersComeBackAfterTheServerRestartsEmpty) {
  SetUpSegment("seg-restart");
  ASSERT_TRUE(owner_->PublishChanges(Buffers(0, 50), {}).ok());
  std::string error;
  ASSERT_TRUE(server_->Restart(&error)) << error;
  te::SegmentDescriptor found;
  EXPECT_TRUE(WaitFor(
      [&] {
        return reader_.client->Lookup("seg-restart", &found).ok() && found.buffers.size() == 50;
      },
      5s));
  ExpectSeen(BasesOf(Buffers(0, 50)), "after the restart");
}

TEST_P(MetadataDeltaTest, ChangesMadeWhileTheServerIsDownArriveLater) {
  SetUpSegment("seg-down");
  ASSERT_TRUE(owner_->PublishChanges(Buffers(0, 20), {}).ok());
  ExpectSeen(BasesOf(Buffers(0, 20)), "before");
  server_->Kill();
  EXPECT_FALSE(owner_->PublishChanges(Buffers(20, 5), {Buffer(0).base, Buffer(1).base}).ok());
  std::string error;
  ASSERT_TRUE(server_->Restart(&error)) << error;
  // The keep-alive re-creates the segment with every change the client knows.
  Bases expected = BasesOf(Buffers(2, 23));
  te::SegmentDescriptor found;
  EXPECT_TRUE(WaitFor(
      [&] {
        return reader_.client->Lookup("seg-down", &found).ok() &&
               BasesOf(found.buffers) == expected;
      },
      5s));
  ExpectSeen(expected, "after the server came back");
}

TEST_P(MetadataDeltaTest, BufferEntriesGoWithTheEngine) {
  std::unique_ptr<te::KvBackend> store;
  ASSERT_TRUE(te::CreateKvBackend(Config(), &store).ok());
  auto entries = [&](const std::string& name) {
    std::vector<std::string> values;
    te::Status s = store->ReadBuffers(te::SegmentKeys::Of(name), &values);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return values.size();
  };
  PeerEngine clean, killed;
  std::string error;
  ASSERT_TRUE(clean.Start(*server_, "seg-exit", Log("clean"), &error)) << error;
  ASSERT_TRUE(killed.Start(*server_, "seg-kill", Log("killed"), &error)) << error;
  EXPECT_EQ(entries("seg-exit"), 1u);  // te_metadata_peer registers one buffer
  EXPECT_EQ(entries("seg-kill"), 1u);
  ASSERT_TRUE(clean.process.SendLine("EXIT"));
  ASSERT_TRUE(clean.process.WaitForLine("BYE", nullptr, 10s)) << clean.process.LogTail();
  EXPECT_EQ(entries("seg-exit"), 0u);
  if (IsHttp(GetParam())) return;  // no TTL: a killed engine's entries stay
  killed.process.Kill();
  auto reader = MakeClient(Config());
  EXPECT_TRUE(WaitFor(
      [&] { return LookupStatus(reader.get(), "seg-kill").code() == te::Status::Code::kNotFound; },
      6s));
  EXPECT_EQ(entries("seg-kill"), 0u);  // expired with the header (same TTL, same lease)
}

INSTANTIATE_TEST_SUITE_P(Backends, MetadataDeltaTest, AllBackends(), BackendParamName);

}  // namespace
}  // namespace te_test
