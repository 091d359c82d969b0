#include "common/strings.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace te {
namespace {

using Strings = std::vector<std::string>;

TEST(SplitListTest, Basic) {
  EXPECT_EQ(SplitList("a,b,c"), (Strings{"a", "b", "c"}));
  EXPECT_EQ(SplitList("single"), (Strings{"single"}));
}

TEST(SplitListTest, TrimsSpacesAndDropsEmptyParts) {
  EXPECT_EQ(SplitList(" a , b,,c ,"), (Strings{"a", "b", "c"}));
  EXPECT_EQ(SplitList(",,tcp"), (Strings{"tcp"}));
  EXPECT_EQ(SplitList("  x y  "), (Strings{"x y"}));  // inner spaces are kept
}

TEST(SplitListTest, EmptyInputs) {
  EXPECT_TRUE(SplitList("").empty());
  EXPECT_TRUE(SplitList(",").empty());
  EXPECT_TRUE(SplitList(" , ,  ").empty());
  EXPECT_TRUE(SplitList("   ").empty());
}

TEST(SplitListTest, OtherSeparator) {
  EXPECT_EQ(SplitList("a:b: c", ':'), (Strings{"a", "b", "c"}));
  EXPECT_EQ(SplitList("a,b", ':'), (Strings{"a,b"}));
}

TEST(ParseUint64Test, Valid) {
  uint64_t v = 1;
  ASSERT_TRUE(ParseUint64("0", &v));
  EXPECT_EQ(v, 0u);
  ASSERT_TRUE(ParseUint64("12345", &v));
  EXPECT_EQ(v, 12345u);
  ASSERT_TRUE(ParseUint64("0007", &v));
  EXPECT_EQ(v, 7u);
  ASSERT_TRUE(ParseUint64("18446744073709551615", &v));
  EXPECT_EQ(v, UINT64_MAX);
}

TEST(ParseUint64Test, Overflow) {
  uint64_t v;
  EXPECT_FALSE(ParseUint64("18446744073709551616", &v));
  EXPECT_FALSE(ParseUint64("99999999999999999999999", &v));
}

TEST(ParseUint64Test, Junk) {
  uint64_t v;
  for (const char* junk :
       {"", " ", " 1", "1 ", "1a", "a1", "-1", "+1", "0x10", "1.5", "1e3", "1,000", "--"}) {
    SCOPED_TRACE(junk);
    EXPECT_FALSE(ParseUint64(junk, &v));
  }
}

TEST(ParseUint64Test, UsesOnlyTheGivenView) {
  std::string backing = "123456";
  uint64_t v = 0;
  ASSERT_TRUE(ParseUint64(std::string_view(backing).substr(0, 3), &v));
  EXPECT_EQ(v, 123u);
}

TEST(ParseHostPortTest, Ipv4AndNames) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(ParseHostPort("10.1.2.3:17000", &host, &port));
  EXPECT_EQ(host, "10.1.2.3");
  EXPECT_EQ(port, 17000);
  ASSERT_TRUE(ParseHostPort("localhost:0", &host, &port));
  EXPECT_EQ(host, "localhost");
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(ParseHostPort("h:65535", &host, &port));
  EXPECT_EQ(host, "h");
  EXPECT_EQ(port, 65535);
}

TEST(ParseHostPortTest, BracketedIpv6) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(ParseHostPort("[::1]:8080", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8080);
  ASSERT_TRUE(ParseHostPort("[fe80::1:2]:1", &host, &port));
  EXPECT_EQ(host, "fe80::1:2");
  EXPECT_EQ(port, 1);
}

TEST(ParseHostPortTest, Malformed) {
  std::string host = "unchanged";
  uint16_t port = 42;
  for (const char* bad :
       {"", "host", "host:", ":80", "host:65536", "host:99999999999999999999", "host:-1", "host:8o",
        "host: 80", "[]:80", "[::1]", "[::1]:", "[::1:80", "[::1]x:80"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(ParseHostPort(bad, &host, &port));
  }
  // Failed parses leave the outputs alone.
  EXPECT_EQ(host, "unchanged");
  EXPECT_EQ(port, 42);
}

TEST(HexTest, RoundTripsEveryByteAndRefusesJunk) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  const std::string hex = HexEncode(all);
  EXPECT_EQ(hex.substr(0, 6), "000102");
  std::string back;
  ASSERT_TRUE(HexDecode(hex, &back));
  EXPECT_EQ(back, all);
  EXPECT_FALSE(HexDecode("abc", &back));  // odd length
  EXPECT_FALSE(HexDecode("zz", &back));
}

}  // namespace
}  // namespace te
