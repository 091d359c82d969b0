// The central store's segment format: the header's change log (what a peer that
// holds an older version must fetch), merging fetched changes into a held
// descriptor, and splitting writes for stores that bound a request.
#include "metadata/segment_entries.h"

#include <gtest/gtest.h>

#include <map>

#include "metadata/kv_backend.h"

namespace te {
namespace {

SegmentBuffer Buffer(uint64_t base, uint64_t length = 16) {
  SegmentBuffer b;
  b.base = base;
  b.length = length;
  b.location = "cpu:0";
  b.permission = Permission::kRemoteReadWrite;
  return b;
}

std::vector<uint64_t> Bases(const std::vector<SegmentBuffer>& buffers) {
  std::vector<uint64_t> out;
  for (const SegmentBuffer& b : buffers) out.push_back(b.base);
  return out;
}

TEST(SegmentEntriesTest, KeysOfNamesThatArePrefixesOfEachOtherDoNotOverlap) {
  const SegmentKeys a = SegmentKeys::Of("a"), ab = SegmentKeys::Of("a/b");
  EXPECT_EQ(a.header, "te/segments/a");
  EXPECT_EQ(a.buffers, "te/buffers/1/a/");
  EXPECT_NE(ab.buffers.compare(0, a.buffers.size(), a.buffers), 0) << ab.buffers;
  EXPECT_EQ(a.BufferKey(BufferId(0x7f00)), "te/buffers/1/a/0000000000007f00");
}

TEST(SegmentEntriesTest, ChangeLogNamesWhatChangedSinceAHeldVersion) {
  HeaderState s{"i1", 1, 1, {}};
  const std::string v1 = s.Tag();
  s.Record({0x30, 0x10});
  const std::string v2 = s.Tag();
  s.Record({0x20, 0x10});
  std::vector<uint64_t> bases;
  ASSERT_TRUE(s.ChangedSince(v1, &bases));
  EXPECT_EQ(bases, (std::vector<uint64_t>{0x10, 0x20, 0x30}));  // sorted, unique
  ASSERT_TRUE(s.ChangedSince(v2, &bases));
  EXPECT_EQ(bases, (std::vector<uint64_t>{0x10, 0x20}));
  ASSERT_TRUE(s.ChangedSince(s.Tag(), &bases));
  EXPECT_TRUE(bases.empty());
  // Another instance's tag, or garbage: read everything.
  EXPECT_FALSE(s.ChangedSince("i2:1", &bases));
  EXPECT_FALSE(s.ChangedSince("i1:x", &bases));
  EXPECT_FALSE(s.ChangedSince("i1:99", &bases));  // ahead of the store: it was reset
}

TEST(SegmentEntriesTest, ChangeLogKeepsItsLengthAndForgetsOldVersions) {
  HeaderState s{"i", 1, 1, {}};
  const std::string old = s.Tag();
  std::string recent;
  for (uint64_t i = 0; i < kChangeLogLength + 10; ++i) {
    s.Record({i});
    if (i == kChangeLogLength) recent = s.Tag();
  }
  EXPECT_EQ(s.changes.size(), kChangeLogLength);
  std::vector<uint64_t> bases;
  EXPECT_FALSE(s.ChangedSince(old, &bases));  // too far behind
  ASSERT_TRUE(s.ChangedSince(recent, &bases));
  EXPECT_EQ(bases.size(), 9u);
  // A change of more buffers than the log holds, or a full write, starts it afresh.
  const std::string before = s.Tag();
  s.Record(std::vector<uint64_t>(kChangeLogLength + 1, 7));
  EXPECT_TRUE(s.changes.empty());
  EXPECT_FALSE(s.ChangedSince(before, &bases));
  s.Reset();
  EXPECT_EQ(s.changes_since, s.version);
}

TEST(SegmentEntriesTest, HeaderRoundTripsWithoutBuffers) {
  SegmentDescriptor d;
  d.name = "seg";
  d.machine_id = "m";
  d.pid = 7;
  d.rpc_host = "127.0.0.1";
  d.rpc_port = 9;
  d.transports["tcp"] = "127.0.0.1:1";
  d.buffers.push_back(Buffer(0x1000));  // not written
  HeaderState s{"abc", 5, 3, {{4, 0x1000}, {5, 0x2000}}};
  const std::string json = HeaderToJson(d, s);
  EXPECT_EQ(json.find("\"base\""), std::string::npos) << json;  // no buffer in it
  SegmentDescriptor back;
  HeaderState state;
  ASSERT_TRUE(HeaderFromJson(json, &back, &state).ok());
  EXPECT_EQ(back.name, "seg");
  EXPECT_TRUE(back.buffers.empty());
  EXPECT_EQ(state.Tag(), "abc:5");
  EXPECT_EQ(state.changes, s.changes);
  // A whole descriptor (the format before headers) is not a header.
  EXPECT_FALSE(HeaderFromJson(d.ToJson(), &back, &state).ok());
}

TEST(SegmentEntriesTest, WholeSegmentIsADescriptorAndSplitsBackExactly) {
  SegmentDescriptor d;
  d.name = "seg";
  d.machine_id = "m";
  d.rpc_host = "127.0.0.1";
  d.rpc_port = 9;
  WholeSegment whole;
  whole.header = HeaderToJson(d, HeaderState{"abc", 2, 2, {}});
  for (uint64_t base : {0x3000, 0x1000}) {
    whole.buffers[BufferId(base)] = SegmentBufferToJson(Buffer(base));
  }
  const std::string value = whole.ToJson();
  // Any reader of whole descriptors reads it (engines before the header/entry split).
  SegmentDescriptor read;
  ASSERT_TRUE(SegmentDescriptor::FromJson(value, &read).ok()) << value;
  EXPECT_EQ(Bases(read.buffers), (std::vector<uint64_t>{0x1000, 0x3000}));
  // The header comes back byte for byte (ownership is checked by comparing it).
  WholeSegment back;
  ASSERT_TRUE(WholeSegment::FromJson(value, &back).ok());
  EXPECT_EQ(back.header, whole.header);
  EXPECT_EQ(back.buffers, whole.buffers);
  // A header alone is a whole segment without buffers.
  ASSERT_TRUE(WholeSegment::FromJson(whole.header, &back).ok());
  EXPECT_EQ(back.header, whole.header);
  EXPECT_TRUE(back.buffers.empty());

  for (const char* bad :
       {"", "not json", "[]", "{}", R"({"buffers": {}})", R"({"buffers": [1]})",
        R"({"buffers": [{"base": -1}]})", R"({"buffers": [{"base": 1}, {"base": 1}]})"}) {
    EXPECT_FALSE(WholeSegment::FromJson(bad, &back).ok()) << bad;
  }
}

TEST(SegmentEntriesTest, ChangesMergeIntoTheHeldBuffers) {
  const std::vector<SegmentBuffer> held = {Buffer(0x100), Buffer(0x200), Buffer(0x300)};
  SegmentBuffer longer = Buffer(0x200, 32);
  std::vector<SegmentBuffer> out;
  // 0x50 added, 0x200 replaced, 0x300 gone, 0x400 added.
  ASSERT_TRUE(ApplyBufferChanges(held, {0x50, 0x200, 0x300, 0x400},
                                 {SegmentBufferToJson(Buffer(0x50)), SegmentBufferToJson(longer),
                                  std::nullopt, SegmentBufferToJson(Buffer(0x400))},
                                 &out)
                  .ok());
  EXPECT_EQ(Bases(out), (std::vector<uint64_t>{0x50, 0x100, 0x200, 0x400}));
  EXPECT_EQ(out[2].length, 32u);
  // What the store returns is checked as strictly as a whole descriptor.
  EXPECT_FALSE(ApplyBufferChanges(held, {0x108}, {SegmentBufferToJson(Buffer(0x108))}, &out).ok());
  EXPECT_FALSE(ApplyBufferChanges(held, {0x500}, {SegmentBufferToJson(Buffer(0x600))}, &out).ok());
  EXPECT_FALSE(ApplyBufferChanges(held, {0x500}, {std::string("{}")}, &out).ok());
}

TEST(SegmentEntriesTest, SplitWritesReplaceFirstAndWriteTheHeaderLast) {
  KvWrite w;
  w.header = "H";
  w.replace = true;
  for (int i = 0; i < 10; ++i) w.put.emplace_back(BufferId(i), std::string(100, 'x'));
  w.erase = {BufferId(99)};
  const std::vector<KvWrite> parts = SplitWrite(w, 4, 1 << 20);
  ASSERT_EQ(parts.size(), 3u);  // 12 entries, 4 a part
  EXPECT_TRUE(parts[0].replace);
  EXPECT_FALSE(parts[1].replace);
  EXPECT_TRUE(parts[0].header.empty());
  EXPECT_EQ(parts[2].header, "H");
  EXPECT_EQ(parts[0].erase.size(), 1u);
  size_t puts = 0;
  for (const KvWrite& p : parts) puts += p.put.size();
  EXPECT_EQ(puts, 10u);
  EXPECT_EQ(SplitWrite(w, 100, 250).size(), 5u);  // two puts of 116 bytes a part
  EXPECT_EQ(SplitWrite(w, 100, 1 << 20).size(), 1u);
}

// What a peer listing the entries sees after each part of a split write is always a
// set of buffers that the old or the new segment holds less some (so never two that
// overlap), and the header arrives only with the last part.
TEST(SegmentEntriesTest, SplitWriteShowsPeersOnlySubsetsOfTheOldOrTheNewSet) {
  // Old: 16 buffers of 0x100 bytes. New: the first 8 gone, and 8 of 0x80 bytes put
  // in the range they held (what overlapped an erased one).
  std::map<std::string, SegmentBuffer> store, old_set, new_set;
  KvWrite w;
  w.header = "H";
  for (uint64_t i = 0; i < 16; ++i)
    old_set[BufferId(0x1000 + i * 0x100)] = Buffer(0x1000 + i * 0x100, 0x100);
  new_set = old_set;
  for (uint64_t i = 0; i < 8; ++i) {
    w.erase.push_back(BufferId(0x1000 + i * 0x100));
    new_set.erase(BufferId(0x1000 + i * 0x100));
  }
  for (uint64_t i = 0; i < 8; ++i) {
    const SegmentBuffer b = Buffer(0x1080 + i * 0x100, 0x80);
    w.put.emplace_back(BufferId(b.base), SegmentBufferToJson(b));
    new_set[BufferId(b.base)] = b;
  }
  store = old_set;
  auto subset = [](const std::map<std::string, SegmentBuffer>& part,
                   const std::map<std::string, SegmentBuffer>& whole) {
    for (const auto& [id, b] : part) {
      auto it = whole.find(id);
      if (it == whole.end() || it->second.length != b.length) return false;
    }
    return true;
  };
  const std::vector<KvWrite> parts = SplitWrite(w, 3, 1 << 20);
  ASSERT_GE(parts.size(), 5u);
  for (size_t p = 0; p < parts.size(); ++p) {
    for (const std::string& id : parts[p].erase) store.erase(id);
    for (const auto& [id, entry] : parts[p].put) {
      ASSERT_TRUE(SegmentBufferFromJson(entry, &store[id]).ok());
    }
    EXPECT_TRUE(subset(store, old_set) || subset(store, new_set)) << "after part " << p;
    std::vector<SegmentBuffer> seen;
    for (const auto& [id, b] : store) seen.push_back(b);
    EXPECT_TRUE(SortAndCheckBuffers(&seen).ok()) << "overlap after part " << p;
    EXPECT_EQ(parts[p].header.empty(), p + 1 < parts.size());
  }
  EXPECT_TRUE(subset(store, new_set) && subset(new_set, store));
}

}  // namespace
}  // namespace te
