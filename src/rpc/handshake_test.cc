#include "rpc/handshake.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "rpc/socket_pair_test.h"
#include "rpc/wire.h"

namespace te::wire {
namespace {

constexpr const char* kSecret = "0123456789abcdef-cluster";
constexpr const char* kOtherSecret = "fedcba9876543210-cluster";

class HandshakeTest : public SocketPairTest {
 protected:
  // Runs ServerHello(channel, server_secret) against ClientHello(client_channel, client).
  void Run(const char* server_channel, const std::string& server_secret, const char* client_channel,
           const Credentials& client) {
    std::thread server([&] {
      server_status_ = ServerHello(server_.get(), server_channel, server_secret, &peer_name_);
    });
    client_status_ = ClientHello(client_.get(), client_channel, client);
    // A client that gives up closes its end, as a real one does; the server then
    // sees the connection end instead of waiting for a proof.
    if (!client_status_.ok()) ::shutdown(client_.get(), SHUT_RDWR);
    server.join();
  }

  Status server_status_;
  Status client_status_;
  std::string peer_name_ = "untouched";
};

TEST_F(HandshakeTest, WithoutSecretsSucceeds) {
  Run(kChannelRpc, "", kChannelRpc, {"10.0.0.1:17000", ""});
  EXPECT_TRUE(client_status_.ok()) << client_status_.ToString();
  EXPECT_TRUE(server_status_.ok()) << server_status_.ToString();
  EXPECT_EQ(peer_name_, "10.0.0.1:17000");
}

TEST_F(HandshakeTest, SameSecretSucceedsOnBothChannels) {
  Run(kChannelTcpData, kSecret, kChannelTcpData, {"me:1", kSecret});
  EXPECT_TRUE(client_status_.ok()) << client_status_.ToString();
  EXPECT_TRUE(server_status_.ok()) << server_status_.ToString();
  EXPECT_EQ(peer_name_, "me:1");
}

TEST_F(HandshakeTest, WrongSecretIsRefusedByTheServer) {
  Run(kChannelRpc, kSecret, kChannelRpc, {"me:1", kOtherSecret});
  EXPECT_EQ(server_status_.code(), Status::Code::kPermissionDenied) << server_status_.ToString();
  EXPECT_EQ(client_status_.code(), Status::Code::kPermissionDenied) << client_status_.ToString();
  EXPECT_EQ(peer_name_, "untouched");
}

TEST_F(HandshakeTest, ClientWithoutSecretIsRefused) {
  Run(kChannelRpc, kSecret, kChannelRpc, {"me:1", ""});
  EXPECT_EQ(server_status_.code(), Status::Code::kPermissionDenied);
  EXPECT_EQ(client_status_.code(), Status::Code::kPermissionDenied);
  EXPECT_NE(client_status_.message().find("requires the cluster secret"), std::string::npos)
      << client_status_.message();
  EXPECT_EQ(peer_name_, "untouched");
}

TEST_F(HandshakeTest, ServerWithoutSecretIsRefusedByAClientWithOne) {
  Run(kChannelRpc, "", kChannelRpc, {"me:1", kSecret});
  EXPECT_EQ(client_status_.code(), Status::Code::kPermissionDenied);
  EXPECT_EQ(server_status_.code(), Status::Code::kPermissionDenied);
  EXPECT_EQ(peer_name_, "untouched");
}

TEST_F(HandshakeTest, WrongChannel) {
  Run(kChannelTcpData, "", kChannelRpc, {"me:1", ""});
  EXPECT_EQ(server_status_.code(), Status::Code::kInvalidArgument) << server_status_.ToString();
  EXPECT_EQ(client_status_.code(), Status::Code::kInvalidArgument) << client_status_.ToString();
  EXPECT_NE(client_status_.message().find("tcp-data"), std::string::npos)
      << client_status_.message();
  EXPECT_EQ(client_status_.message().rfind("peer: ", 0), 0u) << client_status_.message();
  EXPECT_EQ(peer_name_, "untouched");
}

// A server that has the secret but answers with a proof computed under another one
// (an impostor replaying what it saw elsewhere) is refused by the client.
TEST_F(HandshakeTest, ClientRefusesAServerThatCannotProveTheSecret) {
  std::thread impostor([&] {
    FrameHeader h;
    std::string payload;
    if (!RecvFrame(server_.get(), &h, &payload).ok()) return;
    SendResponse(server_.get(), h, Status::OK(),
                 R"({"nonce": "00112233445566778899aabbccddeeff"})");
    if (!RecvFrame(server_.get(), &h, &payload).ok()) return;
    SendResponse(server_.get(), h, Status::OK(),
                 nlohmann::json{{"proof", HmacSha256Hex(kOtherSecret, "anything")}}.dump());
  });
  Status s = ClientHello(client_.get(), kChannelRpc, {"me:1", kSecret});
  impostor.join();
  EXPECT_EQ(s.code(), Status::Code::kPermissionDenied) << s.ToString();
}

// The secret never crosses the wire: the client's frames do not contain it.
TEST_F(HandshakeTest, SecretIsNotSentInClear) {
  std::string seen;
  std::thread recorder([&] {
    FrameHeader h;
    std::string payload;
    if (!RecvFrame(server_.get(), &h, &payload).ok()) return;
    seen += payload;
    SendResponse(server_.get(), h, Status::OK(), R"({"nonce": "00"})");
    if (!RecvFrame(server_.get(), &h, &payload).ok()) return;
    seen += payload;
    SendResponse(server_.get(), h, Status::PermissionDenied("no"), "");
  });
  Status s = ClientHello(client_.get(), kChannelRpc, {"me:1", kSecret});
  recorder.join();
  EXPECT_EQ(s.code(), Status::Code::kPermissionDenied);
  EXPECT_NE(seen.find("proof"), std::string::npos) << seen;
  EXPECT_EQ(seen.find(kSecret), std::string::npos) << seen;
}

TEST_F(HandshakeTest, ServerRejectsMalformedHello) {
  std::thread server(
      [&] { server_status_ = ServerHello(server_.get(), kChannelRpc, "", &peer_name_); });
  FrameHeader h;
  h.opcode = Opcode::kHello;
  ASSERT_TRUE(SendFrame(client_.get(), h, R"({"channel": "rpc"})").ok());  // no "from"
  FrameHeader reply;
  std::string payload;
  Status recv = RecvFrame(client_.get(), &reply, &payload);
  server.join();
  ASSERT_TRUE(recv.ok()) << recv.ToString();
  EXPECT_TRUE(reply.is_response());
  EXPECT_EQ(reply.opcode, Opcode::kHello);
  EXPECT_EQ(ResponseStatus(reply, payload).code(), Status::Code::kProtocolError);
  EXPECT_EQ(server_status_.code(), Status::Code::kProtocolError);
}

TEST_F(HandshakeTest, ServerRejectsNonHelloFirstFrame) {
  std::thread server(
      [&] { server_status_ = ServerHello(server_.get(), kChannelRpc, kSecret, &peer_name_); });
  FrameHeader h;
  h.opcode = Opcode::kRead;
  ASSERT_TRUE(SendFrame(client_.get(), h, "").ok());
  server.join();
  EXPECT_EQ(server_status_.code(), Status::Code::kProtocolError);
}

// A client that skips AUTH and sends a data request is not served.
TEST_F(HandshakeTest, ServerRejectsRequestInPlaceOfProof) {
  std::thread server(
      [&] { server_status_ = ServerHello(server_.get(), kChannelTcpData, kSecret, &peer_name_); });
  FrameHeader h;
  h.opcode = Opcode::kHello;
  ASSERT_TRUE(SendFrame(client_.get(), h,
                        R"({"channel":"tcp-data","from":"x","auth":"hmac-sha256","nonce":"0"})")
                  .ok());
  FrameHeader reply;
  std::string payload;
  ASSERT_TRUE(RecvFrame(client_.get(), &reply, &payload).ok());
  h.opcode = Opcode::kRead;
  h.addr = 4096;
  h.length = 8;
  ASSERT_TRUE(SendFrame(client_.get(), h, "").ok());
  server.join();
  EXPECT_EQ(server_status_.code(), Status::Code::kProtocolError) << server_status_.ToString();
  EXPECT_EQ(peer_name_, "untouched");
}

TEST_F(HandshakeTest, ClientRejectsNonHelloAnswer) {
  std::thread server([&] {
    FrameHeader h;
    std::string payload;
    if (!RecvFrame(server_.get(), &h, &payload).ok()) return;
    FrameHeader bogus;
    bogus.opcode = Opcode::kNotify;
    bogus.flags = kFlagResponse;
    SendFrame(server_.get(), bogus, "");
  });
  Status s = ClientHello(client_.get(), kChannelRpc, {"me:1", ""});
  server.join();
  EXPECT_EQ(s.code(), Status::Code::kProtocolError) << s.ToString();
}

TEST(HmacTest, KnownAnswer) {
  // RFC 4231 test case 2.
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

}  // namespace
}  // namespace te::wire
