#include "metadata/segment_descriptor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace te {
namespace {

using Json = nlohmann::json;

BufferInfo Buffer(uint64_t base, uint64_t length, Permission p = Permission::kRemoteReadWrite,
                  std::string shm = "") {
  BufferInfo b;
  b.base = base;
  b.length = length;
  b.location = "cpu:0";
  b.permission = p;
  b.shm_name = std::move(shm);
  return b;
}

SegmentDescriptor Sample() {
  SegmentDescriptor d;
  d.name = "10.0.0.2:17000";
  d.machine_id = "abc123";
  d.pid = 4242;
  d.rpc_host = "10.0.0.2";
  d.rpc_port = 17000;
  d.transports = {{"local", ""}, {"tcp", "10.0.0.2:17001"}};
  d.buffers = {Buffer(0x10000, 0x1000, Permission::kRemoteRead),
               Buffer(0x20000, 0x8000, Permission::kRemoteReadWrite, "/te.1.0")};
  return d;
}

// The JSON of Sample(), to be mutated by the rejection tests.
Json SampleJson() { return Json::parse(Sample().ToJson()); }

Status Parse(const Json& j, SegmentDescriptor* out = nullptr) {
  SegmentDescriptor ignored;
  return SegmentDescriptor::FromJson(j.dump(), out ? out : &ignored);
}

void ExpectSameBuffer(const BufferInfo& a, const BufferInfo& b) {
  EXPECT_EQ(a.base, b.base);
  EXPECT_EQ(a.length, b.length);
  EXPECT_EQ(a.location, b.location);
  EXPECT_EQ(a.permission, b.permission);
  EXPECT_EQ(a.shm_name, b.shm_name);
}

TEST(SegmentDescriptorTest, RoundTrip) {
  SegmentDescriptor in = Sample();
  SegmentDescriptor out;
  Status s = SegmentDescriptor::FromJson(in.ToJson(), &out);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out.name, in.name);
  EXPECT_EQ(out.machine_id, in.machine_id);
  EXPECT_EQ(out.pid, in.pid);
  EXPECT_EQ(out.rpc_host, in.rpc_host);
  EXPECT_EQ(out.rpc_port, in.rpc_port);
  EXPECT_EQ(out.transports, in.transports);
  ASSERT_EQ(out.buffers.size(), in.buffers.size());
  for (size_t i = 0; i < in.buffers.size(); ++i) ExpectSameBuffer(out.buffers[i], in.buffers[i]);
  EXPECT_EQ(out.ToJson(), in.ToJson());
}

// What transports publish per buffer (a CUDA IPC handle, a packed remote key) travels
// with it, opaque; buffers without any carry no transport_data field at all.
TEST(SegmentDescriptorTest, TransportDataRoundTrip) {
  SegmentDescriptor d = Sample();
  d.buffers[1].location = "cuda:3";
  d.buffers[1].shm_name.clear();
  d.buffers[1].transport_data = {{"cuda_ipc", std::string(128, 'a') + "+4096"},
                                 {"ucx", "0123abcd"}};
  Json j = Json::parse(d.ToJson());
  EXPECT_FALSE(j["buffers"][0].contains("transport_data"));
  EXPECT_EQ(j["buffers"][1]["transport_data"]["ucx"], "0123abcd");
  SegmentDescriptor back;
  ASSERT_TRUE(SegmentDescriptor::FromJson(d.ToJson(), &back).ok());
  EXPECT_EQ(back.buffers[1].location, "cuda:3");
  EXPECT_EQ(back.buffers[1].transport_data, d.buffers[1].transport_data);
  EXPECT_EQ(back.buffers[1].TransportData("cuda_ipc"), std::string(128, 'a') + "+4096");
  EXPECT_EQ(back.buffers[0].TransportData("cuda_ipc"), "");
  EXPECT_TRUE(back.buffers[0].transport_data.empty());
  for (Json bad : {Json(7), Json("text"), Json::array({"x"}), Json({{"ucx", 7}})}) {
    j["buffers"][1]["transport_data"] = bad;
    EXPECT_EQ(SegmentDescriptor::FromJson(j.dump(), &back).code(), Status::Code::kProtocolError)
        << bad.dump();
  }
}

// A descriptor as engines wrote it before transports owned their per-buffer data (the
// CUDA IPC handle under its own "device_handle" key) still decodes, the handle now
// being cuda_ipc's transport data; encoding it again writes the new form.
TEST(SegmentDescriptorTest, DecodesOldFormatDescriptor) {
  const std::string old_format = R"({"name":"10.0.0.2:17000","machine_id":"abc123","pid":4242,
      "rpc_host":"10.0.0.2","rpc_port":17000,"pin_table":"/te.4242.pins0",
      "transports":{"cuda_ipc":"","local":"","shm":"","tcp":"10.0.0.2:17001"},
      "buffers":[
        {"base":65536,"length":4096,"location":"cpu:0","permission":"remote-read",
         "shm_name":"/te.4242.0","pin_slot":0,"pin_generation":1},
        {"base":131072,"length":32768,"location":"cuda:1","permission":"remote-read-write",
         "shm_name":"","pin_slot":1,"pin_generation":2,"device_handle":"ffee+4096"}]})";
  SegmentDescriptor d;
  Status s = SegmentDescriptor::FromJson(old_format, &d);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(d.buffers.size(), 2u);
  EXPECT_EQ(d.pin_table, "/te.4242.pins0");
  EXPECT_EQ(d.buffers[0].shm_name, "/te.4242.0");
  EXPECT_EQ(d.buffers[0].pin_slot, 0u);
  EXPECT_TRUE(d.buffers[0].transport_data.empty());
  EXPECT_EQ(d.buffers[1].pin_generation, 2u);
  EXPECT_EQ(d.buffers[1].transport_data,
            (std::map<std::string, std::string>{{"cuda_ipc", "ffee+4096"}}));
  EXPECT_EQ(d.transports.at("tcp"), "10.0.0.2:17001");
  Json again = Json::parse(d.ToJson());
  EXPECT_FALSE(again["buffers"][1].contains("device_handle"));
  EXPECT_EQ(again["buffers"][1]["transport_data"]["cuda_ipc"], "ffee+4096");

  Json bad = Json::parse(old_format);
  bad["buffers"][1]["device_handle"] = 7;
  EXPECT_EQ(SegmentDescriptor::FromJson(bad.dump(), &d).code(), Status::Code::kProtocolError);
}

TEST(SegmentDescriptorTest, RoundTripEmptyAndExtremes) {
  SegmentDescriptor in;
  in.rpc_port = 65535;
  in.pid = UINT32_MAX;
  in.buffers = {Buffer(UINT64_MAX - 0x1000, 0x1000)};  // ends one byte short of 2^64
  SegmentDescriptor out;
  Status s = SegmentDescriptor::FromJson(in.ToJson(), &out);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out.name, "");
  EXPECT_TRUE(out.transports.empty());
  EXPECT_EQ(out.rpc_port, 65535);
  EXPECT_EQ(out.pid, UINT32_MAX);
  ASSERT_EQ(out.buffers.size(), 1u);
  EXPECT_EQ(out.buffers[0].base, UINT64_MAX - 0x1000);
}

TEST(SegmentDescriptorTest, SortsBuffersByBase) {
  Json j = SampleJson();
  std::swap(j["buffers"][0], j["buffers"][1]);
  SegmentDescriptor out;
  ASSERT_TRUE(Parse(j, &out).ok());
  ASSERT_EQ(out.buffers.size(), 2u);
  EXPECT_EQ(out.buffers[0].base, 0x10000u);
  EXPECT_EQ(out.buffers[1].base, 0x20000u);
}

TEST(SegmentDescriptorTest, AdjacentBuffersAreFine) {
  SegmentDescriptor in = Sample();
  in.buffers = {Buffer(0x1000, 0x1000), Buffer(0x2000, 0x1000)};
  SegmentDescriptor out;
  ASSERT_TRUE(SegmentDescriptor::FromJson(in.ToJson(), &out).ok());
  EXPECT_EQ(out.buffers.size(), 2u);
}

TEST(SegmentDescriptorTest, FailedParseLeavesOutputAlone) {
  SegmentDescriptor out = Sample();
  EXPECT_FALSE(SegmentDescriptor::FromJson("{}", &out).ok());
  EXPECT_EQ(out.name, "10.0.0.2:17000");
  EXPECT_EQ(out.buffers.size(), 2u);
}

TEST(SegmentDescriptorTest, RejectsNonObject) {
  for (const char* text : {"", "not json", "[]", "1", "\"x\"", "null", "{"}) {
    SCOPED_TRACE(text);
    SegmentDescriptor out;
    EXPECT_EQ(SegmentDescriptor::FromJson(text, &out).code(), Status::Code::kProtocolError);
  }
}

TEST(SegmentDescriptorTest, RejectsMissingFields) {
  for (const char* key :
       {"name", "machine_id", "pid", "rpc_host", "rpc_port", "transports", "buffers"}) {
    SCOPED_TRACE(key);
    Json j = SampleJson();
    j.erase(key);
    EXPECT_EQ(Parse(j).code(), Status::Code::kProtocolError);
  }
  for (const char* key : {"base", "length", "location", "permission", "shm_name"}) {
    SCOPED_TRACE(std::string("buffers[1].") + key);
    Json j = SampleJson();
    j["buffers"][1].erase(key);
    EXPECT_EQ(Parse(j).code(), Status::Code::kProtocolError);
  }
}

TEST(SegmentDescriptorTest, RejectsWrongTypes) {
  struct Case {
    const char* pointer;
    Json value;
  };
  const Case cases[] = {
      {"/name", 5},
      {"/machine_id", nullptr},
      {"/pid", "4242"},
      {"/rpc_host", Json::array()},
      {"/rpc_port", "17000"},
      {"/transports", Json::array({"tcp"})},
      {"/transports", "tcp"},
      {"/transports/tcp", 17001},
      {"/buffers", "none"},
      {"/buffers", 3},
      {"/buffers/0", "buffer"},
      {"/buffers/0/base", "0x10000"},
      {"/buffers/0/length", Json::object()},
      {"/buffers/0/location", 0},
      {"/buffers/0/permission", 1},
      {"/buffers/0/shm_name", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.pointer) + " = " + c.value.dump());
    Json j = SampleJson();
    j[Json::json_pointer(c.pointer)] = c.value;
    EXPECT_EQ(Parse(j).code(), Status::Code::kProtocolError);
  }
}

TEST(SegmentDescriptorTest, RejectsBadPermission) {
  // "local" too: local-only buffers are never published, so a peer claiming one is
  // malformed.
  for (const char* p : {"", "rw", "remote-write", "REMOTE-READ", "local"}) {
    SCOPED_TRACE(p);
    Json j = SampleJson();
    j["buffers"][0]["permission"] = p;
    Status s = Parse(j);
    EXPECT_EQ(s.code(), Status::Code::kProtocolError);
  }
  Json j = SampleJson();
  j["buffers"][0]["permission"] = "remote-read-write";
  EXPECT_TRUE(Parse(j).ok());
}

TEST(SegmentDescriptorTest, RejectsZeroLength) {
  Json j = SampleJson();
  j["buffers"][0]["length"] = 0;
  Status s = Parse(j);
  EXPECT_EQ(s.code(), Status::Code::kProtocolError);
  EXPECT_NE(s.message().find("range"), std::string::npos) << s.message();
}

TEST(SegmentDescriptorTest, RejectsOverflowingRange) {
  const std::pair<uint64_t, uint64_t> cases[] = {
      {UINT64_MAX, 2},
      {UINT64_MAX - 9, 10},  // ends exactly at 2^64: wraps to 0
      {1ull << 63, 1ull << 63},
      {1, UINT64_MAX},
  };
  for (auto [base, length] : cases) {
    SCOPED_TRACE(testing::Message() << base << "+" << length);
    Json j = SampleJson();
    j["buffers"][1]["base"] = base;
    j["buffers"][1]["length"] = length;
    EXPECT_EQ(Parse(j).code(), Status::Code::kProtocolError);
  }
}

TEST(SegmentDescriptorTest, RejectsOverlappingBuffers) {
  const std::pair<uint64_t, uint64_t> cases[] = {
      {0x10000, 0x1000},  // identical
      {0x10fff, 0x10},    // starts inside
      {0xf000, 0x1001},   // ends inside
      {0x8000, 0x10000},  // contains
      {0x10800, 0x100},   // inside
  };
  for (auto [base, length] : cases) {
    SCOPED_TRACE(testing::Message() << std::hex << base << "+" << length);
    Json j = SampleJson();
    j["buffers"][1]["base"] = base;
    j["buffers"][1]["length"] = length;
    Status s = Parse(j);
    EXPECT_EQ(s.code(), Status::Code::kProtocolError);
    EXPECT_NE(s.message().find("overlap"), std::string::npos) << s.message();
  }
}

// Regression: nlohmann's get<uint16_t>/get<uint32_t> truncate silently, so a
// rpc_port of 65617 once became 81 and a pid of 2^32+1 became 1; an engine opening such
// a segment talked to the wrong port.
TEST(SegmentDescriptorTest, RejectsOutOfRangeIntegers) {
  const std::pair<const char*, Json> cases[] = {
      {"/rpc_port", 65617},
      {"/rpc_port", -1},
      {"/pid", 4294967297ull},
      {"/pid", -1},
  };
  for (const auto& [pointer, value] : cases) {
    SCOPED_TRACE(std::string(pointer) + " = " + value.dump());
    Json j = SampleJson();
    j[Json::json_pointer(pointer)] = value;
    SegmentDescriptor out;
    Status s = Parse(j, &out);
    EXPECT_EQ(s.code(), Status::Code::kProtocolError)
        << "accepted as rpc_port=" << out.rpc_port << " pid=" << out.pid;
  }
}

// Regression, same cause: floats, negative numbers and booleans were accepted where
// unsigned integers are required (1.5 -> 1, true -> 1, -65536 -> 2^64-65536).
TEST(SegmentDescriptorTest, RejectsNonIntegerNumbers) {
  const std::pair<const char*, Json> cases[] = {
      {"/rpc_port", 17000.5},      {"/rpc_port", true},           {"/pid", 1.5},
      {"/buffers/1/base", -65536}, {"/buffers/1/base", 131072.5}, {"/buffers/1/length", 16.75},
  };
  for (const auto& [pointer, value] : cases) {
    SCOPED_TRACE(std::string(pointer) + " = " + value.dump());
    Json j = SampleJson();
    j[Json::json_pointer(pointer)] = value;
    EXPECT_EQ(Parse(j).code(), Status::Code::kProtocolError);
  }
}

// Regression: "buffers" was iterated without checking it is an array, so null (no
// iterations) and an object (iterates its values) were accepted.
TEST(SegmentDescriptorTest, RejectsBuffersThatAreNotAnArray) {
  Json null_buffers = SampleJson();
  null_buffers["buffers"] = nullptr;
  EXPECT_EQ(Parse(null_buffers).code(), Status::Code::kProtocolError);

  Json object_buffers = SampleJson();
  Json one = object_buffers["buffers"][0];
  object_buffers["buffers"] = Json::object({{"first", one}});
  EXPECT_EQ(Parse(object_buffers).code(), Status::Code::kProtocolError);
}

TEST(SegmentDescriptorTest, PinSlotsRoundTrip) {
  SegmentDescriptor in = Sample();
  in.pin_table = "/te.42.pins0";
  in.buffers[0].pin_slot = 7;
  in.buffers[0].pin_generation = UINT64_MAX;
  // buffers[1] has no slot: it is published without one.
  SegmentDescriptor out;
  Status s = SegmentDescriptor::FromJson(in.ToJson(), &out);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out.pin_table, "/te.42.pins0");
  ASSERT_EQ(out.buffers.size(), 2u);
  EXPECT_EQ(out.buffers[0].pin_slot, 7u);
  EXPECT_EQ(out.buffers[0].pin_generation, UINT64_MAX);
  EXPECT_EQ(out.buffers[1].pin_slot, SegmentBuffer::kNoPinSlot);
  EXPECT_EQ(out.buffers[1].pin_generation, 0u);

  Json j = Json::parse(in.ToJson());
  EXPECT_FALSE(j["buffers"][1].contains("pin_slot"));
  EXPECT_TRUE(j["buffers"][0].contains("pin_generation"));
  // Without a shared pin table the key is left out altogether.
  EXPECT_FALSE(Json::parse(Sample().ToJson()).contains("pin_table"));
  ASSERT_TRUE(SegmentDescriptor::FromJson(Sample().ToJson(), &out).ok());
  EXPECT_EQ(out.pin_table, "");
}

TEST(SegmentDescriptorTest, RejectsBadPinFields) {
  SegmentDescriptor in = Sample();
  in.buffers[0].pin_slot = 3;
  in.buffers[0].pin_generation = 9;
  const Json good = Json::parse(in.ToJson());
  ASSERT_TRUE(Parse(good).ok());
  const std::pair<const char*, Json> cases[] = {
      {"/pin_table", 5},
      {"/buffers/0/pin_slot", "3"},
      {"/buffers/0/pin_slot", -1},
      {"/buffers/0/pin_slot", 4294967296ull},
      {"/buffers/0/pin_slot", 3.5},
      {"/buffers/0/pin_generation", "9"},
      {"/buffers/0/pin_generation", -9},
      {"/buffers/1/pin_slot", 4},  // a slot without a generation
  };
  for (const auto& [pointer, value] : cases) {
    SCOPED_TRACE(std::string(pointer) + " = " + value.dump());
    Json j = good;
    j[Json::json_pointer(pointer)] = value;
    EXPECT_EQ(Parse(j).code(), Status::Code::kProtocolError);
  }
}

TEST(SegmentDescriptorTest, FindBuffer) {
  SegmentDescriptor d = Sample();  // [0x10000, 0x11000) and [0x20000, 0x28000)
  const BufferInfo* b = d.FindBuffer(0x10000, 0x1000);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->base, 0x10000u);
  b = d.FindBuffer(0x10fff, 1);  // last byte
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->base, 0x10000u);
  b = d.FindBuffer(0x27000, 0x1000);  // ends exactly at the end
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->base, 0x20000u);

  EXPECT_EQ(d.FindBuffer(0x10000, 0x1001), nullptr);  // one past the end
  EXPECT_EQ(d.FindBuffer(0x11000, 1), nullptr);       // first byte after
  EXPECT_EQ(d.FindBuffer(0xffff, 1), nullptr);        // just before
  EXPECT_EQ(d.FindBuffer(0xffff, 2), nullptr);        // straddles the start
  EXPECT_EQ(d.FindBuffer(0, 1), nullptr);
  EXPECT_EQ(d.FindBuffer(0x15000, 0x10), nullptr);     // in the gap
  EXPECT_EQ(d.FindBuffer(0x10800, 0x10000), nullptr);  // spans both buffers
  EXPECT_EQ(d.FindBuffer(0x28000, 1), nullptr);

  SegmentDescriptor empty;
  EXPECT_EQ(empty.FindBuffer(0x10000, 1), nullptr);
}

TEST(SegmentDescriptorTest, FindBufferOverflow) {
  SegmentDescriptor d = Sample();
  EXPECT_EQ(d.FindBuffer(UINT64_MAX, 1), nullptr);
  EXPECT_EQ(d.FindBuffer(UINT64_MAX, UINT64_MAX), nullptr);
  // addr + len wraps around to inside the buffer.
  EXPECT_EQ(d.FindBuffer(0x10010, UINT64_MAX), nullptr);
  EXPECT_EQ(d.FindBuffer(0x10010, UINT64_MAX - 0xf), nullptr);
  EXPECT_EQ(d.FindBuffer(0x27fff, UINT64_MAX), nullptr);

  SegmentDescriptor high;
  high.buffers = {Buffer(UINT64_MAX - 0xfff, 0xfff)};  // [2^64-4096, 2^64-1)
  EXPECT_NE(high.FindBuffer(UINT64_MAX - 0xfff, 0xfff), nullptr);
  EXPECT_NE(high.FindBuffer(UINT64_MAX - 1, 1), nullptr);
  EXPECT_EQ(high.FindBuffer(UINT64_MAX - 1, 2), nullptr);
  EXPECT_EQ(high.FindBuffer(UINT64_MAX, 1), nullptr);
  EXPECT_EQ(high.FindBuffer(UINT64_MAX - 0xfff, UINT64_MAX), nullptr);
}

}  // namespace
}  // namespace te
