#include "transport/tcp/tcp_endpoint.h"

#include <gtest/gtest.h>

namespace te {
namespace {

TEST(TcpEndpointTest, FormatsAndParsesEveryAddress) {
  const std::string text = TcpEndpoint::Format({"10.99.0.1", "::1"}, 4000);
  EXPECT_EQ(text, "10.99.0.1:4000,[::1]:4000");
  TcpEndpoint e;
  ASSERT_TRUE(TcpEndpoint::Parse(text, &e).ok());
  ASSERT_EQ(e.addresses.size(), 2u);
  EXPECT_EQ(e.addresses[0].port, 4000);
  EXPECT_EQ(e.addresses[1].port, 4000);
}

// Loopback is a subnet of every host: an address on it goes before one elsewhere,
// whatever the advertised order.
TEST(TcpEndpointTest, AddressesOnALocalSubnetAreTriedFirst) {
  TcpEndpoint e;
  ASSERT_TRUE(TcpEndpoint::Parse("198.51.100.7:5000,127.0.0.1:5001", &e).ok());
  ASSERT_EQ(e.addresses.size(), 2u);
  EXPECT_EQ(e.addresses[0].host, "127.0.0.1");
  EXPECT_EQ(e.addresses[1].host, "198.51.100.7");
  EXPECT_EQ(e.Describe(), "127.0.0.1:5001");
}

TEST(TcpEndpointTest, ThePreferredAddressIsTriedFirst) {
  TcpEndpoint e;
  ASSERT_TRUE(TcpEndpoint::Parse("127.0.0.1:1,127.0.0.2:2,127.0.0.3:3", &e).ok());
  EXPECT_EQ(e.TryOrder(), (std::vector<size_t>{0, 1, 2}));
  e.preferred = 2;
  EXPECT_EQ(e.TryOrder(), (std::vector<size_t>{2, 0, 1}));
  EXPECT_EQ(e.Describe(), "127.0.0.3:3");
}

TEST(TcpEndpointTest, MalformedEndpointsAreRefused) {
  TcpEndpoint e;
  for (const char* bad : {"", ",", "host", "host:0", "10.0.0.1:4000,nonsense", "1.2.3.4:99999"}) {
    EXPECT_EQ(TcpEndpoint::Parse(bad, &e).code(), Status::Code::kProtocolError) << bad;
  }
}

TEST(TcpEndpointTest, AConfiguredHostIsAdvertisedAlone) {
  EXPECT_EQ(AdvertisedHosts("10.1.2.3", "10.9.9.9"), std::vector<std::string>{"10.1.2.3"});
  const std::vector<std::string> all = AdvertisedHosts("", "10.9.9.9");
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all[0], "10.9.9.9");
  for (const std::string& host : all) EXPECT_NE(host, "127.0.0.1");
}

}  // namespace
}  // namespace te
