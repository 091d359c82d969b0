// The central metadata backends (redis, etcd, http) against real servers: publish,
// look up, update, remove; keep-alive after a server restart; TTL expiry of a killed
// engine's entry; duplicate names; engines transferring by segment name.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "pattern.h"
#include "test_helpers.h"

namespace te_test {
namespace {

class MetadataBackendTest : public ServerPerBackendTest {
 protected:
  bool HasTtl() const { return !IsHttp(GetParam()); }
};

TEST_P(MetadataBackendTest, PublishLookupUpdateRemove) {
  auto owner = MakeClient(Config("seg-a"), "seg-a");
  auto reader = MakeClient(Config());
  te::SegmentDescriptor published = FakeDescriptor("seg-a", 100, 1);
  ASSERT_TRUE(owner->Publish(published).ok());

  te::SegmentDescriptor found;
  te::Status s = reader->Lookup("seg-a", &found);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(found.ToJson(), published.ToJson());

  // An update (a new buffer) replaces the entry.
  published = FakeDescriptor("seg-a", 100, 3);
  ASSERT_TRUE(owner->Publish(published).ok());
  s = reader->Lookup("seg-a", &found);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(found.buffers.size(), 3u);

  ASSERT_TRUE(owner->Unpublish("seg-a").ok());
  s = reader->Lookup("seg-a", &found);
  EXPECT_EQ(s.code(), te::Status::Code::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("seg-a"), std::string::npos) << s.message();
}

TEST_P(MetadataBackendTest, NamesWithAnyCharactersRoundTrip) {
  // Keys travel in URLs (http), base64 (etcd) and binary-safe strings (redis).
  const std::string name = "a b/c?d=e&f+g%h#i:ü";
  auto owner = MakeClient(Config(name), name);
  ASSERT_TRUE(owner->Publish(FakeDescriptor(name, 7)).ok());
  te::SegmentDescriptor found;
  te::Status s = MakeClient(Config())->Lookup(name, &found);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(found.name, name);
  EXPECT_EQ(LookupStatus(MakeClient(Config()).get(), "a b").code(), te::Status::Code::kNotFound);
}

TEST_P(MetadataBackendTest, LookupOfUnknownNameIsNotFound) {
  te::Status s = LookupStatus(MakeClient(Config()).get(), "nobody");
  EXPECT_EQ(s.code(), te::Status::Code::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find(BackendName(GetParam())), std::string::npos) << s.message();
}

TEST_P(MetadataBackendTest, KeepAliveRepublishesAfterServerRestart) {
  auto owner = MakeClient(Config("seg-r"), "seg-r");
  ASSERT_TRUE(owner->Publish(FakeDescriptor("seg-r", 5)).ok());
  std::string error;
  ASSERT_TRUE(server_->Restart(&error)) << error;  // comes back empty
  auto reader = MakeClient(Config());
  // Keep-alive every ttl/3 (667 ms) re-creates the entry.
  const auto start = Clock::now();
  EXPECT_TRUE(WaitFor([&] { return LookupStatus(reader.get(), "seg-r").ok(); }, 5s));
  Measured(std::string(ServerLabel(GetParam())) + ": entry back after server restart",
           MsSince(start));
}

TEST_P(MetadataBackendTest, CleanExitRemovesEntry) {
  PeerEngine peer;
  std::string error;
  ASSERT_TRUE(peer.Start(*server_, "seg-clean", Log("peer"), &error)) << error;
  auto reader = MakeClient(Config());
  ASSERT_TRUE(LookupStatus(reader.get(), "seg-clean").ok());
  ASSERT_TRUE(peer.process.SendLine("EXIT"));
  ASSERT_TRUE(peer.process.WaitForLine("BYE", nullptr, 10s)) << peer.process.LogTail();
  EXPECT_EQ(LookupStatus(reader.get(), "seg-clean").code(), te::Status::Code::kNotFound);
}

TEST_P(MetadataBackendTest, KilledEngineEntryExpiresWithTtl) {
  PeerEngine peer;
  std::string error;
  ASSERT_TRUE(peer.Start(*server_, "seg-killed", Log("peer"), &error)) << error;
  auto reader = MakeClient(Config());
  ASSERT_TRUE(LookupStatus(reader.get(), "seg-killed").ok());
  // Longer than a keep-alive period, to show the entry lives while the engine does.
  std::this_thread::sleep_for(2500ms);
  ASSERT_TRUE(LookupStatus(reader.get(), "seg-killed").ok());

  peer.process.Kill();
  const auto start = Clock::now();
  if (!HasTtl()) {
    // The http protocol has no TTL: the entry stays until someone takes the name.
    std::this_thread::sleep_for(3s);
    EXPECT_TRUE(LookupStatus(reader.get(), "seg-killed").ok());
    return;
  }
  EXPECT_TRUE(WaitFor(
      [&] {
        return LookupStatus(reader.get(), "seg-killed").code() == te::Status::Code::kNotFound;
      },
      6s));
  const int64_t ms = MsSince(start);
  Measured(std::string(ServerLabel(GetParam())) + ": killed engine's entry gone (ttl 2 s)", ms);
  EXPECT_LE(ms, 2000 + 1500);
}

TEST_P(MetadataBackendTest, DuplicateLiveNameIsRefused) {
  PeerEngine holder;
  std::string error;
  ASSERT_TRUE(holder.Start(*server_, "seg-dup", Log("holder"), &error)) << error;

  const auto start = Clock::now();
  te::TransferEngine engine(Config("seg-dup"));
  const int64_t ms = MsSince(start);
  ASSERT_FALSE(engine.available());
  EXPECT_EQ(engine.status().code(), te::Status::Code::kAlreadyExists) << engine.status().ToString();
  EXPECT_NE(engine.status().message().find("taken by a live engine"), std::string::npos)
      << engine.status().message();
  Measured(std::string(ServerLabel(GetParam())) + ": duplicate name refused", ms);
  EXPECT_LT(ms, 3000);

  // Another process is refused the same way, and the holder's entry is untouched.
  PeerEngine second;
  EXPECT_FALSE(second.Start(*server_, "seg-dup", Log("second"), &error));
  EXPECT_NE(error.find("AlreadyExists"), std::string::npos) << error;
  te::SegmentDescriptor found;
  ASSERT_TRUE(MakeClient(Config())->Lookup("seg-dup", &found).ok());
  EXPECT_EQ(found.pid, static_cast<uint32_t>(holder.process.pid()));
}

TEST_P(MetadataBackendTest, NameOfKilledEngineCanBeReused) {
  PeerEngine holder;
  std::string error;
  ASSERT_TRUE(holder.Start(*server_, "seg-reuse", Log("holder"), &error)) << error;
  holder.process.Kill();

  // redis and etcd wait for the dead holder's entry to expire; http takes over at once
  // because the holder does not answer.
  const auto start = Clock::now();
  te::TransferEngine engine(Config("seg-reuse"));
  const int64_t ms = MsSince(start);
  ASSERT_TRUE(engine.available()) << engine.status().ToString();
  Measured(std::string(ServerLabel(GetParam())) + ": name of a killed engine reused", ms);
  // Bounded by the TTL plus the claim's margin (2 s) and scheduling slack.
  EXPECT_LT(ms, HasTtl() ? 2000 + 2000 + 1500 : 1500);
  te::SegmentDescriptor found;
  ASSERT_TRUE(MakeClient(Config())->Lookup("seg-reuse", &found).ok());
  EXPECT_EQ(found.pid, static_cast<uint32_t>(::getpid()));
}

TEST_P(MetadataBackendTest, EnginesTransferBySegmentName) {
  PeerEngine target;
  std::string error;
  ASSERT_TRUE(target.Start(*server_, "seg-target", Log("target"), &error, /*fill=*/11)) << error;

  te::TransferEngine engine(Config("seg-initiator"));
  ASSERT_TRUE(engine.available()) << engine.status().ToString();
  EXPECT_EQ(engine.getSegmentName(), "seg-initiator");
  te::SegmentHandle segment;
  te::Status s = engine.openSegment(&segment, "seg-target");
  ASSERT_TRUE(s.ok()) << s.ToString();
  te::SegmentInfo info;
  ASSERT_TRUE(engine.getSegmentInfo(segment, &info).ok());
  ASSERT_EQ(info.buffers.size(), 1u);
  EXPECT_EQ(info.buffers[0].base, target.base);

  const size_t len = target.length;
  void* local = nullptr;
  ASSERT_TRUE(engine.allocateLocalMemory(&local, len).ok());
  ASSERT_TRUE(engine.registerLocalMemory(local, len).ok());
  te::TransferStatus st = Transfer(engine, segment, te::Request::READ, local, target.base, len);
  ASSERT_EQ(st.state, te::TransferState::kCompleted) << st.error;
  EXPECT_EQ(PatternMismatch(local, len, 11), -1);

  FillPattern(local, len, 12);
  st = Transfer(engine, segment, te::Request::WRITE, local, target.base, len);
  ASSERT_EQ(st.state, te::TransferState::kCompleted) << st.error;
  std::string reply;
  ASSERT_TRUE(target.process.SendLine("CHECK 12"));
  ASSERT_TRUE(target.process.ReadLine(&reply, 10s));
  EXPECT_EQ(reply, "OK");
  // The peer sees the initiator by name too.
  EXPECT_TRUE(LookupStatus(MakeClient(Config()).get(), "seg-initiator").ok());
}

TEST_P(MetadataBackendTest, UnnamedEngineIsPublishedAsHostPort) {
  te::TransferEngine engine(Config(""));
  ASSERT_TRUE(engine.available()) << engine.status().ToString();
  const std::string name = engine.getSegmentName();
  EXPECT_EQ(name, "127.0.0.1:" + std::to_string(engine.getRpcPort()));
  te::SegmentDescriptor found;
  te::Status s = MakeClient(Config())->Lookup(name, &found);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(found.rpc_port, engine.getRpcPort());
}

INSTANTIATE_TEST_SUITE_P(Backends, MetadataBackendTest, AllBackends(), BackendParamName);
// The same against a server of GET/PUT/DELETE ?key= only (whole-descriptor mode).
INSTANTIATE_TEST_SUITE_P(KeyOnly, MetadataBackendTest, testing::Values(Backend::kHttpKeyOnly),
                         BackendParamName);

}  // namespace
}  // namespace te_test
