#include "metadata/text_codec.h"

#include <gtest/gtest.h>

namespace te {
namespace {

TEST(MetadataTextCodecTest, PercentEncodingKeepsOnlyUnreservedBytes) {
  EXPECT_EQ(PercentEncode("te/segments/a b+c&d=e%f~g.h_i-j"),
            "te%2Fsegments%2Fa%20b%2Bc%26d%3De%25f~g.h_i-j");
  EXPECT_EQ(PercentEncode(std::string("\0\xff", 2)), "%00%FF");
  std::string decoded;
  for (std::string s : {"", "plain", "a b/c?d=e&f+g%h#i", "\xc3\xbc\x01"}) {
    ASSERT_TRUE(PercentDecode(PercentEncode(s), &decoded));
    EXPECT_EQ(decoded, s);
  }
}

TEST(MetadataTextCodecTest, PercentDecodingRejectsBrokenEscapes) {
  std::string out;
  EXPECT_TRUE(PercentDecode("a%3Ab%3a+", &out));
  EXPECT_EQ(out, "a:b:+");
  EXPECT_FALSE(PercentDecode("%", &out));
  EXPECT_FALSE(PercentDecode("%4", &out));
  EXPECT_FALSE(PercentDecode("%zz", &out));
}

TEST(MetadataTextCodecTest, Base64MatchesRfc4648Vectors) {
  const std::pair<std::string, std::string> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    std::string decoded;
    ASSERT_TRUE(Base64Decode(encoded, &decoded)) << encoded;
    EXPECT_EQ(decoded, plain);
  }
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  std::string back;
  ASSERT_TRUE(Base64Decode(Base64Encode(binary), &back));
  EXPECT_EQ(back, binary);
}

TEST(MetadataTextCodecTest, Base64RejectsMalformedInput) {
  std::string out;
  for (const char* bad : {"Zg=", "Zg=a", "Z===", "Zm9v!A==", "=Zm9", "Zg==Zg=="}) {
    EXPECT_FALSE(Base64Decode(bad, &out)) << bad;
  }
}

}  // namespace
}  // namespace te
