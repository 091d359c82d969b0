#include "rpc/wire.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "common/socket.h"
#include "rpc/socket_pair_test.h"

namespace te::wire {
namespace {

FrameHeader SampleHeader() {
  FrameHeader h;
  h.opcode = Opcode::kRead;
  h.flags = 0;
  h.status = 0;
  h.request_id = 0x0102030405060708ull;
  h.addr = 0xdeadbeefcafef00dull;
  h.length = 4096;
  h.payload_len = 0;
  return h;
}

void ExpectSame(const FrameHeader& a, const FrameHeader& b) {
  EXPECT_EQ(a.opcode, b.opcode);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.request_id, b.request_id);
  EXPECT_EQ(a.addr, b.addr);
  EXPECT_EQ(a.length, b.length);
  EXPECT_EQ(a.payload_len, b.payload_len);
}

Status EncodeDecode(const FrameHeader& in, FrameHeader* out) {
  uint8_t raw[kHeaderSize];
  EncodeHeader(in, raw);
  return DecodeHeader(raw, out);
}

TEST(WireTest, HeaderLayout) {
  FrameHeader h = SampleHeader();
  h.opcode = Opcode::kWrite;
  h.flags = kFlagResponse;
  h.status = 0x0a0b;
  h.payload_len = 0x1122334455667788ull;
  uint8_t raw[kHeaderSize];
  std::memset(raw, 0xee, sizeof(raw));
  EncodeHeader(h, raw);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(raw), 4), "TTE1");
  EXPECT_EQ(raw[4], kVersion);
  EXPECT_EQ(raw[5], static_cast<uint8_t>(Opcode::kWrite));
  EXPECT_EQ(raw[6], kFlagResponse);
  EXPECT_EQ(raw[7], 0);
  EXPECT_EQ(raw[8], 0x0b);  // little-endian status
  EXPECT_EQ(raw[9], 0x0a);
  for (int i = 10; i < 16; ++i) EXPECT_EQ(raw[i], 0) << "reserved byte " << i;
  EXPECT_EQ(raw[16], 0x08);  // request_id, least significant byte first
  EXPECT_EQ(raw[23], 0x01);
  EXPECT_EQ(raw[24], 0x0d);  // addr
  EXPECT_EQ(raw[31], 0xde);
  EXPECT_EQ(raw[32], 0x00);  // length 4096 = 0x1000
  EXPECT_EQ(raw[33], 0x10);
  EXPECT_EQ(raw[40], 0x88);  // payload_len
  EXPECT_EQ(raw[47], 0x11);
}

TEST(WireTest, RoundTripEveryOpcode) {
  for (Opcode op : {Opcode::kHello, Opcode::kGetSegment, Opcode::kNotify, Opcode::kAuth,
                    Opcode::kRead, Opcode::kWrite}) {
    for (uint8_t flags : {uint8_t{0}, kFlagResponse}) {
      SCOPED_TRACE(testing::Message() << "opcode " << int(op) << " flags " << int(flags));
      FrameHeader in = SampleHeader();
      in.opcode = op;
      in.flags = flags;
      // Data frames must carry exactly `length` bytes; others a small payload.
      bool data =
          (op == Opcode::kWrite && flags == 0) || (op == Opcode::kRead && flags == kFlagResponse);
      in.payload_len = data ? in.length : 17;
      FrameHeader out;
      ASSERT_TRUE(EncodeDecode(in, &out).ok());
      ExpectSame(in, out);
      EXPECT_EQ(out.is_response(), flags == kFlagResponse);
    }
  }
}

TEST(WireTest, RoundTripExtremeValues) {
  FrameHeader in;
  in.opcode = Opcode::kNotify;
  in.flags = kFlagResponse;
  in.status = 0xffff;
  in.request_id = UINT64_MAX;
  in.addr = UINT64_MAX;
  in.length = UINT64_MAX;
  in.payload_len = kMaxControlPayload;
  FrameHeader out;
  ASSERT_TRUE(EncodeDecode(in, &out).ok());
  ExpectSame(in, out);
}

TEST(WireTest, BadMagic) {
  uint8_t raw[kHeaderSize];
  EncodeHeader(SampleHeader(), raw);
  raw[0] ^= 0x01;
  FrameHeader out;
  Status s = DecodeHeader(raw, &out);
  EXPECT_EQ(s.code(), Status::Code::kProtocolError);
  EXPECT_NE(s.message().find("magic"), std::string::npos) << s.message();
  EncodeHeader(SampleHeader(), raw);
  raw[3] = 'X';
  EXPECT_EQ(DecodeHeader(raw, &out).code(), Status::Code::kProtocolError);
}

TEST(WireTest, BadVersion) {
  for (uint8_t v : {uint8_t{0}, uint8_t{2}, uint8_t{255}}) {
    uint8_t raw[kHeaderSize];
    EncodeHeader(SampleHeader(), raw);
    raw[4] = v;
    FrameHeader out;
    Status s = DecodeHeader(raw, &out);
    EXPECT_EQ(s.code(), Status::Code::kProtocolError) << int(v);
    EXPECT_NE(s.message().find("version"), std::string::npos) << s.message();
  }
}

TEST(WireTest, UnknownOpcode) {
  for (uint8_t op : {uint8_t{0}, uint8_t{5}, uint8_t{15}, uint8_t{18}, uint8_t{255}}) {
    uint8_t raw[kHeaderSize];
    EncodeHeader(SampleHeader(), raw);
    raw[5] = op;
    FrameHeader out;
    Status s = DecodeHeader(raw, &out);
    EXPECT_EQ(s.code(), Status::Code::kProtocolError) << int(op);
    EXPECT_NE(s.message().find("opcode"), std::string::npos) << s.message();
  }
}

TEST(WireTest, UnknownFlags) {
  for (uint8_t flags : {uint8_t{2}, uint8_t{3}, uint8_t{0x80}}) {
    FrameHeader in = SampleHeader();
    in.flags = flags;
    FrameHeader out;
    Status s = EncodeDecode(in, &out);
    EXPECT_EQ(s.code(), Status::Code::kProtocolError) << int(flags);
    EXPECT_NE(s.message().find("flags"), std::string::npos) << s.message();
  }
}

TEST(WireTest, OversizedControlPayload) {
  FrameHeader in;
  in.opcode = Opcode::kGetSegment;
  in.payload_len = kMaxControlPayload;
  FrameHeader out;
  EXPECT_TRUE(EncodeDecode(in, &out).ok());
  in.payload_len = kMaxControlPayload + 1;
  Status s = EncodeDecode(in, &out);
  EXPECT_EQ(s.code(), Status::Code::kProtocolError);
  EXPECT_NE(s.message().find("exceeds"), std::string::npos) << s.message();
  // A GET_SEGMENT response (a descriptor of many buffers) may be larger, to a bound.
  in.flags = kFlagResponse;
  EXPECT_TRUE(EncodeDecode(in, &out).ok());
  in.payload_len = kMaxSegmentPayload;
  EXPECT_TRUE(EncodeDecode(in, &out).ok());
  in.payload_len = kMaxSegmentPayload + 1;
  EXPECT_EQ(EncodeDecode(in, &out).code(), Status::Code::kProtocolError);
  in.flags = 0;
  in.payload_len = kMaxControlPayload + 1;

  // A READ request and a WRITE response carry control payloads only.
  in.opcode = Opcode::kRead;
  in.length = 1ull << 30;
  in.payload_len = 1ull << 30;
  EXPECT_EQ(EncodeDecode(in, &out).code(), Status::Code::kProtocolError);
  in.opcode = Opcode::kWrite;
  in.flags = kFlagResponse;
  EXPECT_EQ(EncodeDecode(in, &out).code(), Status::Code::kProtocolError);
  // So does a failed READ response: its payload is the error text.
  in.opcode = Opcode::kRead;
  in.status = static_cast<uint16_t>(Status::Code::kOutOfRange);
  EXPECT_EQ(EncodeDecode(in, &out).code(), Status::Code::kProtocolError);
  in.payload_len = 100;
  EXPECT_TRUE(EncodeDecode(in, &out).ok());
}

TEST(WireTest, DataPayloadMustMatchLength) {
  FrameHeader in;
  in.opcode = Opcode::kWrite;
  in.length = 1ull << 30;  // data frames may exceed the control limit
  in.payload_len = 1ull << 30;
  FrameHeader out;
  EXPECT_TRUE(EncodeDecode(in, &out).ok());
  in.payload_len = in.length - 1;
  Status s = EncodeDecode(in, &out);
  EXPECT_EQ(s.code(), Status::Code::kProtocolError);
  EXPECT_NE(s.message().find("data payload"), std::string::npos) << s.message();
  in.payload_len = 0;
  EXPECT_EQ(EncodeDecode(in, &out).code(), Status::Code::kProtocolError);

  // A successful READ response carries the data.
  in.opcode = Opcode::kRead;
  in.flags = kFlagResponse;
  in.length = 10;
  in.payload_len = 10;
  EXPECT_TRUE(EncodeDecode(in, &out).ok());
  in.payload_len = 11;
  EXPECT_EQ(EncodeDecode(in, &out).code(), Status::Code::kProtocolError);
}

// ---- over a socket pair ----

using WireSocketTest = SocketPairTest;

TEST_F(WireSocketTest, FramesAndResponses) {
  Status server_status;
  std::thread server([&] {
    server_status = [&]() -> Status {
      for (int i = 0; i < 2; ++i) {
        FrameHeader req;
        std::string payload;
        TE_RETURN_IF_ERROR(RecvFrame(server_.get(), &req, &payload));
        if (req.is_response() || req.opcode != Opcode::kGetSegment ||
            req.request_id != static_cast<uint64_t>(7 + i) || payload != "question") {
          return Status::Internal("unexpected request");
        }
        Status verdict = i == 0 ? Status::OK() : Status::NotFound("no such key");
        TE_RETURN_IF_ERROR(SendResponse(server_.get(), req, verdict, "answer"));
      }
      return Status::OK();
    }();
  });

  for (int i = 0; i < 2; ++i) {
    FrameHeader req;
    req.opcode = Opcode::kGetSegment;
    req.request_id = 7 + i;
    req.payload_len = 12345;  // SendFrame sets it from the payload
    ASSERT_TRUE(SendFrame(client_.get(), req, "question").ok());
    FrameHeader reply;
    std::string payload;
    ASSERT_TRUE(RecvFrame(client_.get(), &reply, &payload).ok());
    EXPECT_TRUE(reply.is_response());
    EXPECT_EQ(reply.opcode, Opcode::kGetSegment);
    EXPECT_EQ(reply.request_id, static_cast<uint64_t>(7 + i));
    EXPECT_EQ(reply.payload_len, payload.size());
    Status s = ResponseStatus(reply, payload);
    if (i == 0) {
      EXPECT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(payload, "answer");
    } else {
      // A failed status carries its message instead of the payload.
      EXPECT_EQ(s.code(), Status::Code::kNotFound);
      EXPECT_EQ(s.message(), "peer: no such key");
      EXPECT_EQ(payload, "no such key");
    }
  }
  server.join();
  EXPECT_TRUE(server_status.ok()) << server_status.ToString();
}

TEST_F(WireSocketTest, EmptyPayloadFrame) {
  FrameHeader h;
  h.opcode = Opcode::kNotify;
  h.request_id = 3;
  ASSERT_TRUE(SendFrame(client_.get(), h, "").ok());
  FrameHeader got;
  std::string payload = "stale";
  ASSERT_TRUE(RecvFrame(server_.get(), &got, &payload).ok());
  EXPECT_EQ(got.request_id, 3u);
  EXPECT_EQ(got.payload_len, 0u);
  EXPECT_EQ(payload, "");
}

TEST_F(WireSocketTest, RecvFrameRejectsDataFrame) {
  // A WRITE request whose data exceeds the control limit has no place on a control
  // connection.
  FrameHeader h;
  h.opcode = Opcode::kWrite;
  h.length = kMaxControlPayload + 1;
  h.payload_len = h.length;
  uint8_t raw[kHeaderSize];
  EncodeHeader(h, raw);
  ASSERT_TRUE(SendAll(client_.get(), raw, sizeof(raw)).ok());
  FrameHeader got;
  std::string payload;
  EXPECT_EQ(RecvFrame(server_.get(), &got, &payload).code(), Status::Code::kProtocolError);
}

TEST_F(WireSocketTest, RecvFrameBadHeader) {
  uint8_t raw[kHeaderSize] = {};
  ASSERT_TRUE(SendAll(client_.get(), raw, sizeof(raw)).ok());
  FrameHeader got;
  std::string payload;
  EXPECT_EQ(RecvFrame(server_.get(), &got, &payload).code(), Status::Code::kProtocolError);
}

TEST_F(WireSocketTest, RecvFramePeerClosed) {
  client_.Reset();
  FrameHeader got;
  std::string payload;
  EXPECT_EQ(RecvFrame(server_.get(), &got, &payload).code(), Status::Code::kUnavailable);
}

TEST_F(WireSocketTest, RecvFrameTruncatedPayload) {
  FrameHeader h;
  h.opcode = Opcode::kNotify;
  h.payload_len = 100;
  uint8_t raw[kHeaderSize];
  EncodeHeader(h, raw);
  ASSERT_TRUE(SendAll(client_.get(), raw, sizeof(raw)).ok());
  ASSERT_TRUE(SendAll(client_.get(), "short", 5).ok());
  client_.Reset();
  FrameHeader got;
  std::string payload;
  EXPECT_EQ(RecvFrame(server_.get(), &got, &payload).code(), Status::Code::kUnavailable);
}

TEST(WireResponseStatusTest, Codes) {
  FrameHeader h;
  h.flags = kFlagResponse;
  h.status = 0;
  EXPECT_TRUE(ResponseStatus(h, "ignored").ok());
  h.status = static_cast<uint16_t>(Status::Code::kPermissionDenied);
  Status s = ResponseStatus(h, "read-only");
  EXPECT_EQ(s.code(), Status::Code::kPermissionDenied);
  EXPECT_EQ(s.message(), "peer: read-only");
  h.status = static_cast<uint16_t>(Status::Code::kInternal);
  EXPECT_EQ(ResponseStatus(h, "x").code(), Status::Code::kInternal);
  h.status = static_cast<uint16_t>(Status::Code::kInternal) + 1;
  EXPECT_EQ(ResponseStatus(h, "x").code(), Status::Code::kProtocolError);
  h.status = 0xffff;
  EXPECT_EQ(ResponseStatus(h, "x").code(), Status::Code::kProtocolError);
}

}  // namespace
}  // namespace te::wire
