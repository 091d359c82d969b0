// The target's data connections (tcp_server.h) as a raw client sees them: frames
// written by hand, replies and segments counted.
#include "transport/tcp/tcp_server.h"

#include <gtest/gtest.h>
#include <linux/tcp.h>  // tcp_info with segment counts
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/socket.h"
#include "rpc/handshake.h"
#include "rpc/wire.h"
#include "transport/tcp/tcp_endpoint.h"
#include "transport/tcp/tcp_test_endpoints.h"

namespace te {
namespace {
using tcp_test::Target;

// A data connection to `target` past its HELLO, for raw frames. Its buffers are an
// initiator's, set before the handshake: the window it offers then holds a burst of
// replies however slowly a loaded machine runs the test.
UniqueFd RawDataConnection(const Target& target) {
  TcpEndpoint endpoint;
  EXPECT_TRUE(TcpEndpoint::Parse(target.descriptor.transports.at("tcp"), &endpoint).ok());
  UniqueFd fd;
  EXPECT_TRUE(
      Connect(endpoint.addresses[0].host, endpoint.addresses[0].port, 3000, &fd, SetBulkBuffers)
          .ok());
  EXPECT_TRUE(wire::ClientHello(fd.get(), wire::kChannelTcpData, {"raw-client", ""}).ok());
  EXPECT_TRUE(SetIoTimeout(fd.get(), 5000).ok());
  return fd;
}

// A raw client's first request: a READ of `length` bytes at the target's buffer.
wire::FrameHeader FirstReadRequest(const Target& target, uint64_t length) {
  wire::FrameHeader read;
  read.opcode = wire::Opcode::kRead;
  read.request_id = 1;
  read.addr = target.info.base;
  read.length = length;
  return read;
}
// A client that sends its last request and its end of stream at once (both there before
// the target first reads) is answered and closed at once: the target's short read must
// not make it wait for an event that its peer's hang-up, already reported, never sends.
TEST(TcpServerTest, ARequestAndTheEndOfStreamArrivingTogetherAreAnsweredAndClosed) {
  Target target("target");
  target.config.transfer_timeout_ms = 30000;  // an io-timeout close would come far later
  ASSERT_TRUE(target.Start().ok());
  UniqueFd fd = RawDataConnection(target);
  const wire::FrameHeader read = FirstReadRequest(target, 4096);
  uint8_t header[wire::kHeaderSize];
  wire::EncodeHeader(read, header);
  ASSERT_TRUE(SendAll(fd.get(), header, sizeof(header)).ok());
  ASSERT_EQ(::shutdown(fd.get(), SHUT_WR), 0);
  std::vector<char> reply(wire::kHeaderSize + read.length);
  ASSERT_TRUE(RecvAll(fd.get(), reply.data(), reply.size()).ok()) << "no answer";
  char extra;
  EXPECT_EQ(::recv(fd.get(), &extra, 1, 0), 0) << "the target did not close within 5 s";
}

// Fewest segments that brought the replies to one of `rounds` of `count` pipelined
// requests (`opcode`, `size` bytes each), sent in one go by a raw client, after as many
// rounds that open the windows. The fewest: an ACK coming back while a reply is sent
// may push its held fragment out on its own.
uint32_t SegmentsForPipelinedRequests(const Target& target, wire::Opcode opcode, int rounds,
                                      int count, uint64_t size) {
  UniqueFd fd = RawDataConnection(target);
  const bool write = opcode == wire::Opcode::kWrite;
  const uint64_t request_size = wire::kHeaderSize + (write ? size : 0);
  std::vector<uint8_t> requests(count * request_size, 'w');
  for (int i = 0; i < count; ++i) {
    wire::FrameHeader h;
    h.opcode = opcode;
    h.request_id = i + 1;
    h.addr = target.info.base + i * size;
    h.length = size;
    h.payload_len = write ? size : 0;
    wire::EncodeHeader(h, requests.data() + i * request_size);
  }
  std::vector<char> replies(count * (wire::kHeaderSize + (write ? 0 : size)));
  uint32_t fewest = UINT32_MAX;
  for (int round = 0; round < 2 * rounds; ++round) {
    tcp_info before{}, after{};
    socklen_t len = sizeof(before);
    EXPECT_EQ(::getsockopt(fd.get(), IPPROTO_TCP, TCP_INFO, &before, &len), 0);
    EXPECT_TRUE(SendAll(fd.get(), requests.data(), requests.size()).ok());
    EXPECT_TRUE(RecvAll(fd.get(), replies.data(), replies.size()).ok()) << "no answer";
    len = sizeof(after);
    EXPECT_EQ(::getsockopt(fd.get(), IPPROTO_TCP, TCP_INFO, &after, &len), 0);
    if (round >= rounds) fewest = std::min(fewest, after.tcpi_segs_in - before.tcpi_segs_in);
  }
  return fewest;
}

// A 64 KiB reply with its header is a full loopback segment and a small one, and a
// WRITE's reply a small one, unless the next reply may fill it (TCP_CORK while one
// follows at once): a stream of replies then costs as many packets, and receiver
// wake-ups, as a stream of bytes.
TEST(TcpServerTest, PipelinedRepliesShareSegments) {
  constexpr int kRequests = 16;
  constexpr uint64_t kSize = 64 << 10;
  Target target("target", kRequests * kSize);
  ASSERT_TRUE(target.Start().ok());
  // Each READ reply alone would be two segments (32); the ACKs of ours are a few more.
  const uint32_t reads =
      SegmentsForPipelinedRequests(target, wire::Opcode::kRead, 10, kRequests, kSize);
  EXPECT_LE(reads, kRequests * 3 / 2) << reads << " segments for " << kRequests << " READs";
  // Each WRITE reply alone would be one (16), besides the ACKs of the payload.
  const uint32_t writes =
      SegmentsForPipelinedRequests(target, wire::Opcode::kWrite, 10, kRequests, 4096);
  EXPECT_LE(writes, kRequests / 2) << writes << " segments for " << kRequests << " WRITEs";
}

// The fuzzer's find: the wire gives a READ request room for a control payload, and
// the target received it at the READ's address, into a buffer registered read-only,
// past the READ's length, before it crashed preparing the reply.
TEST(TcpServerTest, AReadRequestWithAPayloadClosesTheConnectionAndWritesNothing) {
  Target target("target");
  target.info.permission = Permission::kRemoteRead;
  ASSERT_TRUE(target.Start().ok());
  UniqueFd fd = RawDataConnection(target);
  wire::FrameHeader read = FirstReadRequest(target, 16);
  read.payload_len = 64;
  std::vector<uint8_t> frame(wire::kHeaderSize + read.payload_len, 'x');
  wire::EncodeHeader(read, frame.data());
  ASSERT_TRUE(SendAll(fd.get(), frame.data(), frame.size()).ok());
  char reply;
  EXPECT_LE(::recv(fd.get(), &reply, 1, 0), 0) << "answered, or not closed within 5 s";
  EXPECT_EQ(target.memory, std::vector<char>(target.memory.size(), 't'));
}

}  // namespace
}  // namespace te
