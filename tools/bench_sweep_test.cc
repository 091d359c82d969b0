#include "bench_sweep.h"

#include <gtest/gtest.h>

#include <vector>

namespace te::bench {
namespace {

using Values = std::vector<uint64_t>;

Values Parse(const std::string& text, bool byte_suffixes = true) {
  Values values;
  Status s = ParseSweep("size", text, byte_suffixes, &values);
  EXPECT_TRUE(s.ok()) << text << ": " << s.ToString();
  return values;
}

TEST(ParseSweepTest, PlainNumberIsExactlyThatValue) {
  EXPECT_EQ(Parse("65536"), Values({65536}));
  EXPECT_EQ(Parse("1"), Values({1}));
  EXPECT_EQ(Parse("1000"), Values({1000}));
  EXPECT_EQ(Parse("18446744073709551615"), Values({UINT64_MAX}));
}

TEST(ParseSweepTest, BinarySuffixes) {
  EXPECT_EQ(Parse("4K"), Values({4096}));
  EXPECT_EQ(Parse("4k"), Values({4096}));
  EXPECT_EQ(Parse("1M"), Values({1 << 20}));
  EXPECT_EQ(Parse("2G"), Values({2ULL << 30}));
}

TEST(ParseSweepTest, ListsKeepTheirOrder) {
  EXPECT_EQ(Parse("4K,64K,1M"), Values({4096, 65536, 1 << 20}));
  EXPECT_EQ(Parse("1M,4K,4K"), Values({1 << 20, 4096, 4096}));
}

TEST(ParseSweepTest, Ranges) {
  EXPECT_EQ(Parse("4K:64K"), Values({4096, 8192, 16384, 32768, 65536}));
  EXPECT_EQ(Parse("4096:1048576").size(), 9u);
  EXPECT_EQ(Parse("1:8:+1"), Values({1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(Parse("1:10:+4"), Values({1, 5, 9}));  // stops below the end
  EXPECT_EQ(Parse("1K:1M:*4"), Values({1024, 4096, 16384, 65536, 262144, 1 << 20}));
  EXPECT_EQ(Parse("3:20"), Values({3, 6, 12}));
  EXPECT_EQ(Parse("5:5"), Values({5}));
  EXPECT_EQ(Parse("1K:4K:+1K"), Values({1024, 2048, 3072, 4096}));
  EXPECT_EQ(Parse("1,4:16,100"), Values({1, 4, 8, 16, 100}));
}

TEST(ParseSweepTest, RangeEndingAtTheTopDoesNotWrap) {
  EXPECT_EQ(Parse("9223372036854775808:18446744073709551615"), Values({1ULL << 63}));
  EXPECT_EQ(Parse("18446744073709551614:18446744073709551615:+1"),
            Values({UINT64_MAX - 1, UINT64_MAX}));
}

TEST(ParseSweepTest, NoSuffixesWhereNotAllowed) {
  Values values;
  EXPECT_FALSE(ParseSweep("threads", "4K", false, &values).ok());
  EXPECT_TRUE(ParseSweep("threads", "1:4", false, &values).ok());
  EXPECT_EQ(values, Values({1, 2, 4}));
}

struct BadSweep {
  const char* text;
  const char* needle;
};

class ParseSweepBadTest : public ::testing::TestWithParam<BadSweep> {};

TEST_P(ParseSweepBadTest, OneLineErrorNamingTheFlag) {
  Values values;
  Status s = ParseSweep("size", GetParam().text, true, &values);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << GetParam().text;
  EXPECT_NE(s.message().find("--size"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(GetParam().needle), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    All, ParseSweepBadTest,
    ::testing::Values(BadSweep{"", "no value"}, BadSweep{"0", "at least 1 (got 0)"},
                      BadSweep{"-1", "at least 1 (got -1)"},
                      BadSweep{"abc", "'abc' is not a number"},
                      BadSweep{"4K,", "'' is not a number"}, BadSweep{",4K", "'' is not a number"},
                      BadSweep{"4KB", "'4KB' is not a number"}, BadSweep{" 4K", "not a number"},
                      BadSweep{"1.5K", "not a number"}, BadSweep{"64K:4K", "goes down"},
                      BadSweep{"1:8:2", "step +N or a factor *N"},
                      BadSweep{"1:8:*1", "factor of 2 or more"},
                      BadSweep{"1:8:+0", "at least 1 (got 0)"}, BadSweep{"1:", "not a number"},
                      BadSweep{":8", "not a number"}, BadSweep{"1:2:+1:4", "not a number"},
                      BadSweep{"99999999999G", "does not fit in 64 bits"},
                      BadSweep{"99999999999999999999", "not a number"},
                      BadSweep{"1:100000:+1", "more than 1000 values"}));

TEST(ExpandCasesTest, ThreadsOutermostSizeInnermost) {
  std::vector<BenchCase> cases = ExpandCases({1, 2}, {16}, {4096, 65536});
  ASSERT_EQ(cases.size(), 4u);
  EXPECT_EQ(cases[0].threads, 1u);
  EXPECT_EQ(cases[0].size, 4096u);
  EXPECT_EQ(cases[1].threads, 1u);
  EXPECT_EQ(cases[1].size, 65536u);
  EXPECT_EQ(cases[2].threads, 2u);
  EXPECT_EQ(cases[2].size, 4096u);
  EXPECT_EQ(cases[3].batch, 16u);
  EXPECT_EQ(ExpandCases({1}, {1}, {1}).size(), 1u);
}

TEST(FormatSizeTest, LargestExactBinaryUnit) {
  EXPECT_EQ(FormatSize(4096), "4KiB");
  EXPECT_EQ(FormatSize(65536), "64KiB");
  EXPECT_EQ(FormatSize(1 << 20), "1MiB");
  EXPECT_EQ(FormatSize(3ULL << 30), "3GiB");
  EXPECT_EQ(FormatSize(1000), "1000B");
  EXPECT_EQ(FormatSize(1536), "1536B");
  EXPECT_EQ(FormatSize(1), "1B");
}

}  // namespace
}  // namespace te::bench
