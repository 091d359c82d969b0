// The benchmark end to end over each central metadata backend, and the spec's example
// usage verbatim against a real redis on 127.0.0.1:6379.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <regex>

#include "test_helpers.h"

namespace te_test {
namespace {

// Runs a bench target until it prints its banner; returns false with the log.
bool StartTarget(ChildProcess* target, const std::vector<std::string>& flags,
                 const std::string& log, std::string* error) {
  std::vector<std::string> argv = {TE_BENCH_PATH};
  argv.insert(argv.end(), flags.begin(), flags.end());
  if (!target->Start(argv, log, error)) return false;
  std::string seen;
  if (!target->WaitForLine("Target server has been started.", nullptr, 60s, &seen)) {
    *error = "target did not start: " + seen + target->LogTail();
    return false;
  }
  return true;
}

// Runs an initiator to completion; *output gets its stdout. Returns its exit status.
// The batches the integrity line says were verified; 0 when there is no such line
// (a pass that verified nothing proves nothing).
uint64_t VerifiedBatches(const std::string& output) {
  std::smatch match;
  static const std::regex kVerified(R"(integrity check passed \((\d+) batches verified\))");
  return std::regex_search(output, match, kVerified) ? std::stoull(match[1]) : 0;
}

int RunInitiator(const std::vector<std::string>& flags, const std::string& log,
                 std::chrono::seconds limit, std::string* output) {
  ChildProcess initiator;
  std::vector<std::string> argv = {TE_BENCH_PATH};
  argv.insert(argv.end(), flags.begin(), flags.end());
  std::string error;
  if (!initiator.Start(argv, log, &error)) {
    *output = error;
    return -1;
  }
  const auto deadline = Clock::now() + limit;
  std::string line;
  int status = 0;
  bool exited = false;
  while (!exited && Clock::now() < deadline) {
    if (initiator.ReadLine(&line, 1s)) {
      *output += line + "\n";
    } else if (initiator.WaitExit(0ms, &status)) {
      exited = true;
      while (initiator.ReadLine(&line, 1s)) *output += line + "\n";
    }
  }
  if (!exited) {
    *output += "(killed: still running after the limit) " + initiator.LogTail();
    return -1;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) *output += initiator.LogTail();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class MetadataBenchTest : public testing::TestWithParam<Backend> {};

TEST_P(MetadataBenchTest, MixWorkloadWithIntegrityCheck) {
  MetadataServerProcess server(GetParam());
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  TempDir dir;
  const std::string type = std::string("--metadata_type=") + BackendName(GetParam());
  const std::string servers = "--metadata_servers=" + server.servers();
  const std::string segment = std::string("bench-") + BackendName(GetParam());

  ChildProcess target;
  ASSERT_TRUE(StartTarget(&target, {type, servers, "--local_segment=" + segment},
                          dir.path() + "/target.log", &error))
      << error;
  std::string output;
  const int rc = RunInitiator({type, servers, "--remote_segment=" + segment, "--workload=mix",
                               "--integrity_check", "--threads=2", "--duration=2"},
                              dir.path() + "/initiator.log", 60s, &output);
  std::cout << output;
  EXPECT_EQ(rc, 0) << output;
  EXPECT_GT(VerifiedBatches(output), 0u) << output;

  // The target unpublishes on SIGINT.
  target.Signal(SIGINT);
  int status = 0;
  ASSERT_TRUE(target.WaitExit(20s, &status)) << target.LogTail();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << target.LogTail();
  EXPECT_EQ(LookupStatus(MakeClient(TestConfig(server, "")).get(), segment).code(),
            te::Status::Code::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Backends, MetadataBenchTest, AllBackends(), BackendParamName);

// The spec's example, flags verbatim. It needs 127.0.0.1:6379 for its own redis.
TEST(MetadataBenchSpecExampleTest, RedisOnDefaultPortVerbatim) {
  if (PortAnswers(6379)) {
    GTEST_SKIP() << "127.0.0.1:6379 is in use by another process; the spec example needs "
                    "its own redis there";
  }
  MetadataServerProcess redis(Backend::kRedis);
  std::string error;
  if (!redis.Start(&error, 6379)) {
    GTEST_SKIP() << "cannot start redis on 6379 (taken meanwhile?): " << error;
  }
  TempDir dir;
  ChildProcess target;
  ASSERT_TRUE(StartTarget(
      &target,
      {"--metadata_type=redis", "--metadata_servers=127.0.0.1:6379", "--local_segment=mySegment"},
      dir.path() + "/target.log", &error))
      << error;
  std::string output;
  const int rc = RunInitiator(
      {"--metadata_type=redis", "--metadata_servers=127.0.0.1:6379", "--remote_segment=mySegment",
       "--workload=mix", "--integrity_check", "--threads=8", "--duration=20"},
      dir.path() + "/initiator.log", 120s, &output);
  std::cout << output;
  EXPECT_EQ(rc, 0) << output;
  EXPECT_GT(VerifiedBatches(output), 0u) << output;
  target.Signal(SIGINT);
  EXPECT_TRUE(target.WaitExit(20s));
}

}  // namespace
}  // namespace te_test
