#include "bench_report.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "bench_pattern.h"
#include "transport/ucx/ucx_context.h"

namespace te::bench {
namespace {

TEST(ReportUnitTest, AllNineUnits) {
  struct Case {
    const char* name;
    uint64_t bytes;
  };
  const Case cases[] = {
      {"GB", 1000000000ULL}, {"GiB", 1ULL << 30}, {"Gb", 125000000ULL},
      {"MB", 1000000ULL},    {"MiB", 1ULL << 20}, {"Mb", 125000ULL},
      {"KB", 1000ULL},       {"KiB", 1ULL << 10}, {"Kb", 125ULL},
  };
  for (const Case& c : cases) {
    uint64_t bytes = 0;
    EXPECT_TRUE(ParseReportUnit(c.name, &bytes)) << c.name;
    EXPECT_EQ(bytes, c.bytes) << c.name;
  }
}

TEST(ReportUnitTest, RejectsOthers) {
  uint64_t bytes = 7;
  for (const char* name : {"", "gb", "GIB", "TB", "B", "kb", "GB/s", " GB"}) {
    EXPECT_FALSE(ParseReportUnit(name, &bytes)) << name;
  }
  EXPECT_EQ(bytes, 7u);
}

TEST(FormatRateTest, UnitsAndPrecision) {
  EXPECT_EQ(FormatRate(2340000000ULL, 1.0, "GB", 2), "2.34 GB/s");
  EXPECT_EQ(FormatRate(10ULL << 30, 10.0, "GiB", 3), "1.000 GiB/s");
  EXPECT_EQ(FormatRate(1000000000ULL, 1.0, "Gb", 1), "8.0 Gb/s");
  EXPECT_EQ(FormatRate(1000000ULL, 2.0, "MB", 0), "0 MB/s");
  EXPECT_EQ(FormatRate(3ULL << 20, 1.0, "MiB", 2), "3.00 MiB/s");
  EXPECT_EQ(FormatRate(1000ULL, 1.0, "Kb", 2), "8.00 Kb/s");
  EXPECT_EQ(FormatRate(1000000ULL, 1.0, "Mb", 2), "8.00 Mb/s");
  EXPECT_EQ(FormatRate(1024ULL, 1.0, "KiB", 4), "1.0000 KiB/s");
  EXPECT_EQ(FormatRate(1500ULL, 1.0, "KB", 12), "1.500000000000 KB/s");
}

TEST(FormatRateTest, Edges) {
  EXPECT_EQ(FormatRate(123, 0.0, "GB", 2), "0.00 GB/s");
  EXPECT_EQ(FormatRate(123, -1.0, "GB", 2), "0.00 GB/s");
  EXPECT_EQ(FormatRate(0, 5.0, "MB", 1), "0.0 MB/s");
  // Unknown units fall back to GB; precision is capped.
  EXPECT_EQ(FormatRate(2000000000ULL, 1.0, "TB", 1), "2.0 GB/s");
  EXPECT_EQ(FormatRate(1000000000ULL, 1.0, "GB", 99), "1.000000000000 GB/s");
  EXPECT_DOUBLE_EQ(RateInUnit(500000000ULL, 0.5, "GB"), 1.0);
}

TEST(WorkloadTest, Parse) {
  Workload w = Workload::kRead;
  EXPECT_TRUE(ParseWorkload("write", &w));
  EXPECT_EQ(w, Workload::kWrite);
  EXPECT_TRUE(ParseWorkload("mix", &w));
  EXPECT_EQ(w, Workload::kMix);
  EXPECT_TRUE(ParseWorkload("read", &w));
  EXPECT_EQ(w, Workload::kRead);
  EXPECT_FALSE(ParseWorkload("READ", &w));
  EXPECT_FALSE(ParseWorkload("bogus", &w));
}

TEST(WorkingSetTest, Overflow) {
  uint64_t bytes = 0;
  EXPECT_TRUE(WorkingSetBytes(65536, 16, 4, &bytes));
  EXPECT_EQ(bytes, 4194304u);
  EXPECT_FALSE(WorkingSetBytes(1ULL << 40, 1ULL << 30, 1, &bytes));
  EXPECT_TRUE(WorkingSetBytes(1ULL << 40, 1ULL << 20, 8, &bytes));
  EXPECT_EQ(bytes, 1ULL << 63);
  EXPECT_FALSE(WorkingSetBytes(1ULL << 32, 1ULL << 16, 1ULL << 16, &bytes));
}

TEST(ValidateTest, DefaultsAreValid) { EXPECT_TRUE(ValidateBenchFlags(BenchFlags{}).ok()); }

TEST(ValidateTest, DefaultsAreTheSpecsOneCase) {
  std::vector<BenchCase> cases;
  ASSERT_TRUE(ValidateBenchFlags(BenchFlags{}, &cases).ok());
  ASSERT_EQ(cases.size(), 1u);
  EXPECT_EQ(cases[0].threads, 4u);
  EXPECT_EQ(cases[0].batch, 16u);
  EXPECT_EQ(cases[0].size, 65536u);
}

TEST(ValidateTest, SweepsExpandToEveryCombination) {
  BenchFlags f;
  f.size = "4K:16K";
  f.batch = "1,16";
  f.threads = "1:2";
  f.warmup = 0;
  std::vector<BenchCase> cases;
  ASSERT_TRUE(ValidateBenchFlags(f, &cases).ok());
  ASSERT_EQ(cases.size(), 12u);
  EXPECT_EQ(cases.front().threads, 1u);
  EXPECT_EQ(cases.front().batch, 1u);
  EXPECT_EQ(cases.front().size, 4096u);
  EXPECT_EQ(cases.back().threads, 2u);
  EXPECT_EQ(cases.back().batch, 16u);
  EXPECT_EQ(cases.back().size, 16384u);
}

TEST(ValidateTest, AcceptsValidVariants) {
  BenchFlags f;
  f.workload = "mix";
  f.integrity_check = true;
  f.transport = "tcp";
  f.report_unit = "Kb";
  f.report_precision = 12;
  f.metadata_type = "redis";
  f.metadata_servers = "127.0.0.1:6379";
  f.use_vram_set = true;
  f.use_vram = false;  // an explicit --use_vram=false is fine
  EXPECT_TRUE(ValidateBenchFlags(f).ok()) << ValidateBenchFlags(f).ToString();
}

// A CUDA build: DRAM and VRAM by default, either alone, and the default --use_vram
// quietly means none on a machine without a device.
TEST(ValidateTest, CudaBuildMemoryKinds) {
  BenchFlags f;
  f.cuda_devices = 2;
  EXPECT_TRUE(ValidateBenchFlags(f).ok());
  f.use_vram_set = true;
  EXPECT_TRUE(ValidateBenchFlags(f).ok());
  f.use_dram = false;
  EXPECT_TRUE(ValidateBenchFlags(f).ok()) << "VRAM alone";
  f.use_dram = true;
  f.use_vram = false;
  EXPECT_TRUE(ValidateBenchFlags(f).ok()) << "DRAM alone";
  BenchFlags none;
  none.cuda_devices = 0;
  EXPECT_TRUE(ValidateBenchFlags(none).ok()) << "default --use_vram without a device";
}

struct BadCase {
  const char* what;
  void (*mutate)(BenchFlags*);
  Status::Code code;
  const char* needle;  // must appear in the message
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.what; }

class ValidateBadTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(ValidateBadTest, Rejects) {
  BenchFlags f;
  GetParam().mutate(&f);
  Status s = ValidateBenchFlags(f);
  EXPECT_EQ(s.code(), GetParam().code) << s.ToString();
  EXPECT_NE(s.message().find(GetParam().needle), std::string::npos) << s.ToString();
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    All, ValidateBadTest,
    ::testing::Values(BadCase{"workload", [](BenchFlags* f) { f->workload = "bogus"; },
                              Status::Code::kInvalidArgument, "--workload 'bogus'"},
                      BadCase{"unit", [](BenchFlags* f) { f->report_unit = "TB"; },
                              Status::Code::kInvalidArgument, "--report_unit 'TB'"},
                      BadCase{"batch", [](BenchFlags* f) { f->batch = "0"; },
                              Status::Code::kInvalidArgument, "--batch"},
                      BadCase{"negative_batch", [](BenchFlags* f) { f->batch = "-3"; },
                              Status::Code::kInvalidArgument, "(got -3)"},
                      BadCase{"size", [](BenchFlags* f) { f->size = "0"; },
                              Status::Code::kInvalidArgument, "--size"},
                      BadCase{"threads", [](BenchFlags* f) { f->threads = "0"; },
                              Status::Code::kInvalidArgument, "--threads"},
                      BadCase{"sweep", [](BenchFlags* f) { f->size = "64K:4K"; },
                              Status::Code::kInvalidArgument, "--size: range '64K:4K' goes down"},
                      BadCase{"threads_suffix", [](BenchFlags* f) { f->threads = "2K"; },
                              Status::Code::kInvalidArgument, "--threads: '2K' is not a number"},
                      BadCase{"too_many_cases",
                              [](BenchFlags* f) {
                                f->size = "1:1000:+1";
                                f->batch = "1:11:+1";
                              },
                              Status::Code::kInvalidArgument, "more than 10000 cases"},
                      BadCase{"duration", [](BenchFlags* f) { f->duration = 0; },
                              Status::Code::kInvalidArgument, "--duration"},
                      BadCase{"negative_warmup", [](BenchFlags* f) { f->warmup = -1; },
                              Status::Code::kInvalidArgument,
                              "--warmup must be between 0 and 3600"},
                      BadCase{"huge_warmup", [](BenchFlags* f) { f->warmup = 1e9; },
                              Status::Code::kInvalidArgument, "(got 1e+09)"},
                      BadCase{"precision", [](BenchFlags* f) { f->report_precision = 13; },
                              Status::Code::kInvalidArgument, "--report_precision"},
                      BadCase{"servers", [](BenchFlags* f) { f->metadata_type = "etcd"; },
                              Status::Code::kInvalidArgument, "--metadata_servers"},
                      BadCase{"empty_type", [](BenchFlags* f) { f->metadata_type = ""; },
                              Status::Code::kInvalidArgument, "--metadata_type"},
                      BadCase{"check_needs_mix", [](BenchFlags* f) { f->integrity_check = true; },
                              Status::Code::kInvalidArgument, "--workload=mix"},
                      BadCase{"vram",
                              [](BenchFlags* f) {
                                f->use_vram_set = true;
                                f->use_vram = true;
                              },
                              Status::Code::kNotSupported,
                              "--use_vram needs a build with -DUSE_CUDA=ON"},
                      BadCase{"no_dram", [](BenchFlags* f) { f->use_dram = false; },
                              Status::Code::kInvalidArgument, "--use_dram"},
                      BadCase{"vram_without_device",
                              [](BenchFlags* f) {
                                f->cuda_devices = 0;
                                f->use_vram_set = true;
                                f->use_vram = true;
                              },
                              Status::Code::kNotSupported, "no CUDA device"},
                      BadCase{"nothing_left",
                              [](BenchFlags* f) {
                                f->cuda_devices = 2;
                                f->use_dram = false;
                                f->use_vram = false;
                              },
                              Status::Code::kInvalidArgument, "--use_dram=false"},
                      BadCase{"no_initiators", [](BenchFlags* f) { f->initiators = 0; },
                              Status::Code::kInvalidArgument, "--initiators must be between 1"},
                      BadCase{"too_many_initiators", [](BenchFlags* f) { f->initiators = 1025; },
                              Status::Code::kInvalidArgument, "(got 1025)"},
                      BadCase{"initiators_on_initiator",
                              [](BenchFlags* f) {
                                f->remote_segment = "127.0.0.1:1";
                                f->initiators = 2;
                              },
                              Status::Code::kInvalidArgument, "--initiators is a target flag"},
                      BadCase{"index_on_target", [](BenchFlags* f) { f->initiator_index = 1; },
                              Status::Code::kInvalidArgument, "--initiator_index is an initiator"},
                      BadCase{"udp", [](BenchFlags* f) { f->transport = "udp"; },
                              Status::Code::kInvalidArgument, "--transport"},
                      BadCase{"transport", [](BenchFlags* f) { f->transport = "rdma"; },
                              Status::Code::kInvalidArgument, "--transport 'rdma'"},
                      // The target is another process: the same-process transport is no choice.
                      BadCase{"local", [](BenchFlags* f) { f->transport = "local"; },
                              Status::Code::kInvalidArgument, "--transport 'local'"},
                      BadCase{"overflow",
                              [](BenchFlags* f) {
                                f->size = "1125899906842624";
                                f->batch = "1048576";
                              },
                              Status::Code::kInvalidArgument, "64 bits"},
                      BadCase{"overflow_in_one_case",
                              [](BenchFlags* f) {
                                f->size = "4K,1125899906842624";
                                f->batch = "1048576";
                              },
                              Status::Code::kInvalidArgument, "(1125899906842624 x 1048576 x 4)"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.what); });

// --transport=ucx: accepted where the build has UCX; elsewhere the table's one-line
// NotSupported naming it.
TEST(ValidateTest, UcxFollowsTheBuild) {
  BenchFlags f;
  f.transport = "ucx";
  Status s = ValidateBenchFlags(f);
  if (te::UcxBuilt()) {
    EXPECT_TRUE(s.ok()) << s.ToString();
  } else {
    EXPECT_EQ(s.code(), Status::Code::kNotSupported) << s.ToString();
    EXPECT_NE(s.message().find("transport 'ucx'"), std::string::npos) << s.ToString();
    EXPECT_EQ(s.message().find('\n'), std::string::npos);
  }
}

TEST(ShellQuoteTest, QuotesOnlyWhenNeeded) {
  EXPECT_EQ(ShellQuote("--remote_segment=10.0.0.2:17000"), "--remote_segment=10.0.0.2:17000");
  EXPECT_EQ(ShellQuote("./build/tools/transfer_engine_bench_v1"),
            "./build/tools/transfer_engine_bench_v1");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("a b"), "'a b'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
}

TEST(InitiatorCommandTest, P2pAndCentral) {
  EXPECT_EQ(InitiatorCommand("./transfer_engine_bench_v1", "p2p", "", "10.0.0.2:17000"),
            "./transfer_engine_bench_v1 --remote_segment=10.0.0.2:17000");
  EXPECT_EQ(InitiatorCommand("./transfer_engine_bench_v1", "redis", "127.0.0.1:6379", "seg"),
            "./transfer_engine_bench_v1 --metadata_type=redis "
            "--metadata_servers=127.0.0.1:6379 --remote_segment=seg");
}

BenchResult SampleResult() {
  BenchResult r;
  r.workload = "mix";
  r.transport = "tcp";
  r.threads = 2;
  r.batch = 4;
  r.size = 4096;
  r.seconds = 2.0;
  r.batch_count = 1234;
  r.bytes = 1234ULL * 4 * 4096;
  r.integrity_check = true;
  r.verified_batches = 617;
  r.unit = "MB";
  r.precision = 3;
  r.warmup_seconds = 1;
  r.latency_avg_us = 12.34;
  r.latency_p50_us = 11.5;
  r.latency_p99_us = 30.0;
  r.latency_p999_us = 80.0;
  r.latency_max_us = 900.0;
  r.cpu_seconds = 1.5;
  return r;
}

TEST(SummaryTest, Line) {
  EXPECT_EQ(SummaryLine(SampleResult()),
            "Test completed: duration 2.00s, batch count 1234, throughput 10.109 MB/s");
}

TEST(SummaryTest, Json) {
  std::string line = JsonLine(SampleResult());
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto json = nlohmann::json::parse(line);
  EXPECT_EQ(json["workload"], "mix");
  EXPECT_EQ(json["transport"], "tcp");
  EXPECT_EQ(json["batch_count"], 1234);
  EXPECT_EQ(json["bytes"], 1234ULL * 4 * 4096);
  EXPECT_EQ(json["unit"], "MB");
  EXPECT_NEAR(json["throughput"].get<double>(), 10.108928, 1e-9);
  EXPECT_NEAR(json["bytes_per_second"].get<double>(), 10108928.0, 1e-6);
  EXPECT_EQ(json["integrity_check"], true);
  EXPECT_EQ(json["verified_batches"], 617);
  EXPECT_EQ(json["threads"], 2);
  EXPECT_EQ(json["batch"], 4);
  EXPECT_EQ(json["size"], 4096);
  EXPECT_EQ(json["warmup_s"], 1.0);
  EXPECT_EQ(json["latency_avg_us"], 12.34);
  EXPECT_EQ(json["latency_p50_us"], 11.5);
  EXPECT_EQ(json["latency_p99_us"], 30.0);
  EXPECT_EQ(json["latency_p999_us"], 80.0);
  EXPECT_EQ(json["latency_max_us"], 900.0);
  EXPECT_EQ(json["cpu_seconds"], 1.5);
}

TEST(SummaryTest, TableRowsLineUpWithTheHeader) {
  const std::string header = TableHeader("MB");
  const std::string row = TableRow(SampleResult());
  EXPECT_EQ(header.size(), row.size()) << header << "\n" << row;
  EXPECT_NE(header.find("MB/s"), std::string::npos);
  EXPECT_NE(header.find("p999_us"), std::string::npos);
  // workload transport threads batch size seconds batches rate avg p50 p99 p999 cpu%
  std::istringstream fields(row);
  std::vector<std::string> words;
  for (std::string w; fields >> w;) words.push_back(w);
  ASSERT_EQ(words.size(), 13u) << row;
  EXPECT_EQ(words[0], "mix");
  EXPECT_EQ(words[1], "tcp");
  EXPECT_EQ(words[2], "2");
  EXPECT_EQ(words[3], "4");
  EXPECT_EQ(words[4], "4KiB");
  EXPECT_EQ(words[5], "2.00");
  EXPECT_EQ(words[6], "1234");
  EXPECT_EQ(words[7], "10.109");  // --report_precision 3
  EXPECT_EQ(words[8], "12.3");
  EXPECT_EQ(words[9], "11.5");
  EXPECT_EQ(words[10], "30.0");
  EXPECT_EQ(words[11], "80.0");
  EXPECT_EQ(words[12], "75");  // 1.5 s of CPU in 2 s
}

TEST(SummaryTest, ProgressLine) {
  Progress p;
  p.case_index = 1;
  p.case_count = 6;
  p.workload = "read";
  p.bench_case = {2, 16, 65536};
  p.warming_up = true;
  p.elapsed_seconds = 0.5;
  p.phase_seconds = 1;
  p.rate = "9.99 GB/s";
  EXPECT_EQ(ProgressLine(p), "[2/6] read 64KiB x16 t=2: warm-up 0.5/1.0 s");
  p.warming_up = false;
  p.elapsed_seconds = 3;
  p.phase_seconds = 10;
  EXPECT_EQ(ProgressLine(p), "[2/6] read 64KiB x16 t=2: measuring 3.0/10.0 s, 9.99 GB/s");
}

TEST(PatternTest, RoundTripAndOddLengths) {
  for (size_t len : {0, 1, 7, 8, 9, 4095, 4096, 65537}) {
    std::vector<uint8_t> buf(len + 1, 0xAB);
    const uint64_t seed = PatternSeed(3, 17);
    FillPattern(buf.data(), len, seed);
    EXPECT_EQ(buf[len], 0xAB) << "wrote past the end, len " << len;
    EXPECT_EQ(FindPatternMismatch(buf.data(), len, seed), len) << len;
    for (size_t i = 0; i < len; i += 97) EXPECT_EQ(buf[i], PatternByte(seed, i));
  }
}

TEST(PatternTest, FindsFirstMismatch) {
  std::vector<uint8_t> buf(4099);
  const uint64_t seed = PatternSeed(1, 2);
  FillPattern(buf.data(), buf.size(), seed);
  buf[4098] ^= 1;
  EXPECT_EQ(FindPatternMismatch(buf.data(), buf.size(), seed), 4098u);
  buf[1234] ^= 0x80;
  EXPECT_EQ(FindPatternMismatch(buf.data(), buf.size(), seed), 1234u);
  std::memset(buf.data(), 0, buf.size());
  EXPECT_LT(FindPatternMismatch(buf.data(), buf.size(), seed), 8u);
}

TEST(PatternTest, DependsOnThreadIterationAndOffset) {
  EXPECT_NE(PatternSeed(0, 1), PatternSeed(1, 0));
  EXPECT_NE(PatternSeed(0, 0), PatternSeed(0, 1));
  EXPECT_NE(PatternSeed(2, 5), PatternSeed(5, 2));
  std::vector<uint8_t> a(4096), b(4096);
  FillPattern(a.data(), a.size(), PatternSeed(0, 0));
  FillPattern(b.data(), b.size(), PatternSeed(0, 1));
  EXPECT_NE(a, b);
  // A block moved by one request's worth of bytes no longer matches.
  std::vector<uint8_t> shifted(a.begin() + 1024, a.end());
  EXPECT_LT(FindPatternMismatch(shifted.data(), shifted.size(), PatternSeed(0, 0)), shifted.size());
}

// A run whose check verified nothing checked nothing: that is a failure, not a pass.
TEST(IntegrityVerdictTest, EveryCaseMustVerifyABatch) {
  BenchResult verified;
  verified.workload = "mix";
  verified.verified_batches = 3;
  BenchResult none = verified;
  none.verified_batches = 0;
  none.size = 4096;
  std::string line;
  Status status = IntegrityVerdict({verified, verified}, &line);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(line, "integrity check passed (6 batches verified)");
  line.clear();
  status = IntegrityVerdict({verified, none}, &line);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("verified no batch (mix 4096 bytes"), std::string::npos)
      << status.message();
  EXPECT_EQ(line, "");
  EXPECT_FALSE(IntegrityVerdict({}, &line).ok());
}

}  // namespace
}  // namespace te::bench
