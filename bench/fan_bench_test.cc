// End-to-end tests of te_fan_bench: the real binary with its real peer processes over
// loopback TCP, run tiny (N = 1 and 4, one second per case).
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "child_process.h"

#ifndef TE_FAN_BENCH_PATH
#error "TE_FAN_BENCH_PATH must name the te_fan_bench binary"
#endif
#ifndef TE_TCP_FAN_BASELINE_PATH
#error "TE_TCP_FAN_BASELINE_PATH must name the te_tcp_fan_baseline binary"
#endif
#ifndef TE_FAN_BENCH_TEST_HOOKS_PATH
#error "TE_FAN_BENCH_TEST_HOOKS_PATH must name the te_fan_bench_TEST_hooks binary"
#endif

namespace {

using std::chrono::seconds;

struct BenchRun {
  int exit_code = -1;
  std::vector<std::string> rows;  // table rows (after the header)
  std::vector<nlohmann::json> json;
  std::string log;  // stderr
};

// Runs the bench (or `program`, a build of it) with `args` to its end (bounded),
// collecting its stdout lines.
BenchRun RunBench(const std::vector<std::string>& args, const char* program = TE_FAN_BENCH_PATH) {
  te_test::TempDir dir;
  te_test::ChildProcess child;
  std::vector<std::string> argv = {program};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string error;
  BenchRun run;
  if (!child.Start(argv, dir.path() + "/stderr.log", &error)) {
    ADD_FAILURE() << error;
    return run;
  }
  bool header = false;
  for (std::string line; child.ReadLine(&line, seconds(240));) {
    if (line.rfind("mode ", 0) == 0) header = true;
    if (line.rfind("{", 0) == 0) {
      run.json.push_back(nlohmann::json::parse(line, nullptr, false));
      EXPECT_FALSE(run.json.back().is_discarded()) << line;
    } else if (header && line.rfind("fan-", 0) == 0) {
      run.rows.push_back(line);
    }
  }
  int status = 0;
  EXPECT_TRUE(child.WaitExit(seconds(60), &status)) << "still running";
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  run.log = child.LogTail();
  return run;
}

std::string Describe(const BenchRun& run) {
  std::string text = "exit " + std::to_string(run.exit_code) + "\n";
  for (const std::string& row : run.rows) text += row + "\n";
  return text + "--- stderr:\n" + run.log;
}

// Both modes at N = 1 and 4: one row and one JSON line per case, in order, with the
// data check passed and the engine's figures sampled while it worked.
TEST(FanBenchTest, TinyFanOutAndFanInPrintARowAndAJsonLinePerCase) {
  const BenchRun run = RunBench({"--peers=1,4", "--duration=1", "--warmup=0.2", "--threads=2",
                                 "--batch=4", "--size=16K", "--json"});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  ASSERT_EQ(run.rows.size(), 4u) << Describe(run);
  ASSERT_EQ(run.json.size(), 4u) << Describe(run);
  const std::vector<std::pair<std::string, uint64_t>> expected = {
      {"fan-out", 1}, {"fan-out", 4}, {"fan-in", 1}, {"fan-in", 4}};
  for (size_t i = 0; i < expected.size(); ++i) {
    const nlohmann::json& j = run.json[i];
    SCOPED_TRACE(j.dump());
    EXPECT_EQ(run.rows[i].rfind(expected[i].first + " ", 0), 0u) << run.rows[i];
    EXPECT_EQ(j["mode"], expected[i].first);
    EXPECT_EQ(j["peers"], expected[i].second);
    EXPECT_EQ(j["procs"], expected[i].second);  // N <= --procs: one engine per process
    EXPECT_EQ(j["transport"], "tcp");
    EXPECT_EQ(j["workload"], "write");
    EXPECT_EQ(j["threads"], 2);
    EXPECT_EQ(j["batch"], 4);
    EXPECT_EQ(j["size"], 16384);
    EXPECT_GT(j["batch_count"].get<uint64_t>(), 0u);
    EXPECT_EQ(j["bytes"].get<uint64_t>(), j["batch_count"].get<uint64_t>() * 4 * 16384);
    EXPECT_GT(j["throughput"].get<double>(), 0.0);
    EXPECT_GE(j["duration_s"].get<double>(), 1.0);
    const double p50 = j["latency_p50_us"], p99 = j["latency_p99_us"];
    EXPECT_GT(p50, 0.0);
    EXPECT_LE(p50, p99);
    // Sampled mid-run: the engine's threads and connections exist beside the idle ones.
    EXPECT_GT(j["engine_threads"].get<uint64_t>(), 1u);
    EXPECT_GT(j["engine_fds"].get<uint64_t>(), j["idle_fds"].get<uint64_t>());
    EXPECT_GT(j["engine_rss_kib"].get<uint64_t>(), 0u);
    EXPECT_TRUE(j["rss_per_peer_kib"].is_number());
    EXPECT_GT(j["cpu_seconds"].get<double>(), 0.0);
    EXPECT_GT(j["cpu_seconds_per_gb"].get<double>(), 0.0);
    EXPECT_EQ(j["verified_regions"], expected[i].second);
    EXPECT_EQ(j["mismatches"], 0);
  }
}

// Fan-out with each batch to one peer: its own mode name, every target's block checked.
TEST(FanBenchTest, FanOutBatchIsAModeOfItsOwn) {
  const BenchRun run = RunBench({"--peers=4", "--modes=out-batch", "--duration=1", "--warmup=0",
                                 "--batch=4", "--size=16K", "--json"});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  ASSERT_EQ(run.json.size(), 1u) << Describe(run);
  EXPECT_EQ(run.rows[0].rfind("fan-out-batch ", 0), 0u) << run.rows[0];
  EXPECT_EQ(run.json[0]["mode"], "fan-out-batch");
  EXPECT_GT(run.json[0]["batch_count"].get<uint64_t>(), 0u);
  EXPECT_EQ(run.json[0]["verified_regions"], 4);
  EXPECT_EQ(run.json[0]["mismatches"], 0);
}

// The check can fail: the TEST_ build writes one wrong byte into one peer's region
// between the check's WRITE and its READ, and the run must fail naming that peer and
// the byte's offset, in either mode.
TEST(FanBenchTest, CorruptedByteFailsTheCheckNamingPeerAndOffset) {
  for (const auto& [mode, peer] :
       {std::pair{"out", "target 2"}, {"out-batch", "target 2"}, {"in", "initiator 2"}}) {
    const BenchRun run = RunBench({"--peers=4", std::string("--modes=") + mode, "--duration=1",
                                   "--warmup=0", "--batch=2", "--size=8K", "--TEST_corrupt_peer=2"},
                                  TE_FAN_BENCH_TEST_HOOKS_PATH);
    SCOPED_TRACE(mode);
    EXPECT_EQ(run.exit_code, 1) << Describe(run);
    EXPECT_NE(run.log.find(std::string(peer) + "'s region read back 1 wrong byte(s), the first at "
                                               "offset 5000"),
              std::string::npos)
        << Describe(run);
    EXPECT_TRUE(run.rows.empty()) << Describe(run);
  }
}

// The hook exists only in the test build.
TEST(FanBenchTest, InstalledBenchHasNoTestHooks) {
  const BenchRun run = RunBench({"--peers=1", "--TEST_corrupt_peer=0"});
  EXPECT_EQ(run.exit_code, 2) << Describe(run);
  EXPECT_NE(run.log.find("unknown argument '--TEST_corrupt_peer=0'"), std::string::npos)
      << Describe(run);
}

// Bad flags: one "error: " line on stderr, exit code 2, nothing started.
TEST(FanBenchTest, BadFlagsExitTwoWithOneLine) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--no_such_flag=1"}, std::vector<std::string>{"--peers=0"},
        std::vector<std::string>{"--peers=4,,16"}, std::vector<std::string>{"--modes=sideways"},
        std::vector<std::string>{"--size=0"}, std::vector<std::string>{"--threads=abc"},
        std::vector<std::string>{"--duration=0"}, std::vector<std::string>{"--workload=mix"},
        std::vector<std::string>{"--json=maybe"}, std::vector<std::string>{"stray"},
        std::vector<std::string>{"--peers=4096", "--size=64M", "--batch=16"}}) {
    const BenchRun run = RunBench(args);
    SCOPED_TRACE(args[0]);
    EXPECT_EQ(run.exit_code, 2) << Describe(run);
    EXPECT_EQ(run.log.rfind("error: ", 0), 0u) << Describe(run);
    EXPECT_EQ(std::count(run.log.begin(), run.log.end(), '\n'), 1) << Describe(run);
    EXPECT_TRUE(run.rows.empty());
  }
}

// The pids of processes whose parent is `parent`.
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> children;
  DIR* proc = opendir("/proc");
  if (!proc) return children;
  while (const dirent* entry = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Field 4, after the command name in parentheses (which may hold spaces).
    std::istringstream fields(text.substr(text.rfind(')') + 1));
    std::string state;
    pid_t ppid = 0;
    if (fields >> state >> ppid && ppid == parent) children.push_back(pid);
  }
  closedir(proc);
  return children;
}

// SIGTERM mid-run: the bench kills and reaps its peer processes, joins its own threads
// (a sanitizer build reports threads left behind) and exits 128+SIGTERM saying why.
TEST(FanBenchTest, SigtermKillsAndReapsThePeerProcesses) {
  te_test::TempDir dir;
  te_test::ChildProcess child;
  std::string error;
  ASSERT_TRUE(child.Start({TE_FAN_BENCH_PATH, "--peers=4", "--modes=out", "--duration=120"},
                          dir.path() + "/stderr.log", &error))
      << error;
  // The rows come after the run; the peers exist once their processes were forked.
  std::vector<pid_t> peers;
  const auto deadline = std::chrono::steady_clock::now() + seconds(60);
  while (peers.size() < 4 && std::chrono::steady_clock::now() < deadline) {
    peers = ChildrenOf(child.pid());
    std::string line;
    child.ReadLine(&line, std::chrono::milliseconds(50));  // bounded wait between looks
  }
  ASSERT_EQ(peers.size(), 4u) << child.LogTail();
  child.Signal(SIGTERM);
  int status = 0;
  ASSERT_TRUE(child.WaitExit(seconds(30), &status)) << child.LogTail();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM)
      << "wait status " << status << "\n"
      << child.LogTail();
  EXPECT_NE(child.LogTail().find("error: interrupted by Terminated"), std::string::npos)
      << child.LogTail();
  for (pid_t pid : peers) {
    EXPECT_EQ(kill(pid, 0), -1) << "peer process " << pid << " is still there";
    EXPECT_EQ(errno, ESRCH);
  }
}

// The raw-socket floor beside fan-out and fan-in (bench/tcp_fan_baseline.cc): a row
// and a JSON line per mode and N with figures, and bad flags refused.
TEST(TcpFanBaselineTest, GivesARowAndAJsonLinePerModeAndPeerCount) {
  const BenchRun run =
      RunBench({"--peers=1,3", "--modes=out,in", "--duration=1", "--warmup=0", "--json"},
               TE_TCP_FAN_BASELINE_PATH);
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  ASSERT_EQ(run.rows.size(), 4u) << Describe(run);
  ASSERT_EQ(run.json.size(), 4u) << Describe(run);
  for (size_t i = 0; i < 4; ++i) {
    const nlohmann::json& j = run.json[i];
    EXPECT_EQ(j.value("mode", ""), i < 2 ? "fan-out-raw" : "fan-in-raw");
    EXPECT_EQ(j.value("peers", 0), i % 2 == 0 ? 1 : 3);
    EXPECT_GT(j.value("throughput", 0.0), 0.0) << j.dump();
    EXPECT_GT(j.value("cpu_seconds_per_gb", 0.0), 0.0) << j.dump();
    EXPECT_GT(j.value("p99_us", 0.0), 0.0) << j.dump();
  }
}

TEST(TcpFanBaselineTest, BadFlagsExitTwoWithOneLine) {
  for (const char* flag : {"--peers=0", "--peers=1,x", "--size=0", "--threads=0",
                           "--modes=sideways", "--modes=out,"}) {
    const BenchRun run = RunBench({flag}, TE_TCP_FAN_BASELINE_PATH);
    EXPECT_EQ(run.exit_code, 2) << flag << "\n" << Describe(run);
    EXPECT_TRUE(run.rows.empty()) << flag;
    EXPECT_NE(run.log.find("error: "), std::string::npos) << flag << "\n" << run.log;
  }
}

}  // namespace
