// End-to-end tests of the transfer_engine_bench binary: a real target process and
// real initiator processes talking over the loopback network. Every wait is
// bounded, and children still running when a test ends are killed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "memory/device_memory.h"
#include "transport/ucx/ucx_context.h"

#ifndef TE_BENCH_PATH
#error "TE_BENCH_PATH must name the transfer_engine_bench binary"
#endif
#ifndef TE_BENCH_TEST_HOOKS_PATH
#error "TE_BENCH_TEST_HOOKS_PATH must name the transfer_engine_bench_TEST_hooks binary"
#endif

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A child process with its stdout and stderr captured through pipes.
class Child {
 public:
  Child() = default;
  ~Child() { Kill(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Runs the benchmark (or `program`, a build of it) with `args`.
  ::testing::AssertionResult Start(const std::vector<std::string>& args,
                                   const char* program = TE_BENCH_PATH) {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0) return ::testing::AssertionFailure() << "pipe2 failed";
    if (pipe2(err, O_CLOEXEC) != 0) {
      close(out[0]);
      close(out[1]);
      return ::testing::AssertionFailure() << "pipe2 failed";
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    std::vector<std::string> argv_storage = {program};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : argv_storage) argv.push_back(arg.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
    fcntl(out_fd_, F_SETFL, O_NONBLOCK);
    fcntl(err_fd_, F_SETFL, O_NONBLOCK);
    if (rc != 0) {
      pid_ = -1;
      return ::testing::AssertionFailure() << "posix_spawn " << argv[0] << ": " << strerror(rc);
    }
    return ::testing::AssertionSuccess();
  }

  // Waits until stdout contains `needle`; false when the child exits or the time
  // runs out first.
  bool WaitForOutput(const std::string& needle, milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (out_.find(needle) == std::string::npos) {
      if (Clock::now() >= deadline) return false;
      if (Reap()) {
        Drain();
        return out_.find(needle) != std::string::npos;
      }
      Pump(milliseconds(50));
    }
    return true;
  }

  // Waits for the child to exit; false (child left running) on timeout.
  bool Wait(milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!Reap()) {
      if (Clock::now() >= deadline) return false;
      Pump(milliseconds(20));
    }
    Drain();
    return true;
  }

  void Signal(int signal_number) {
    if (pid_ > 0 && !exited_) kill(pid_, signal_number);
  }

  // SIGKILL and reap, if still running; closes the pipes.
  void Kill() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      int status;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      exited_ = true;
      status_ = status;
    }
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
    out_fd_ = err_fd_ = -1;
  }

  bool exited() const { return exited_; }
  // The exit code, or -signal when killed by a signal.
  int exit_code() const {
    if (WIFEXITED(status_)) return WEXITSTATUS(status_);
    if (WIFSIGNALED(status_)) return -WTERMSIG(status_);
    return -1000;
  }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }
  std::string Describe() const {
    return "exit " + std::to_string(exit_code()) + "\n--- stdout:\n" + out_ + "--- stderr:\n" +
           err_;
  }

 private:
  bool Reap() {
    if (pid_ <= 0 || exited_) return exited_;
    int status;
    pid_t rc = waitpid(pid_, &status, WNOHANG);
    if (rc == pid_) {
      exited_ = true;
      status_ = status;
    }
    return exited_;
  }

  // Reads whatever the pipes hold, waiting at most `timeout` for the first byte.
  void Pump(milliseconds timeout) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (poll(fds, 2, static_cast<int>(timeout.count())) <= 0) return;
    ReadAvailable(out_fd_, &out_);
    ReadAvailable(err_fd_, &err_);
  }

  // After exit: everything left up to end of file (bounded, in case a grandchild
  // kept a pipe open).
  void Drain() {
    const auto deadline = Clock::now() + seconds(2);
    while (Clock::now() < deadline) {
      bool out_open = ReadAvailable(out_fd_, &out_);
      bool err_open = ReadAvailable(err_fd_, &err_);
      if (!out_open && !err_open) return;
      pollfd fds[2] = {{out_open ? out_fd_ : -1, POLLIN, 0}, {err_open ? err_fd_ : -1, POLLIN, 0}};
      poll(fds, 2, 20);
    }
  }

  // False once the pipe reached end of file.
  static bool ReadAvailable(int fd, std::string* into) {
    if (fd < 0) return false;
    char buffer[4096];
    for (;;) {
      ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n > 0) {
        into->append(buffer, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) return false;
      if (errno == EINTR) continue;
      return true;  // EAGAIN: open, nothing more for now
    }
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool exited_ = false;
  int status_ = 0;
  std::string out_;
  std::string err_;
};

size_t CountLines(const std::string& text) {
  size_t lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

// Starts a target with `args` and returns the segment its initiator command names.
::testing::AssertionResult StartTarget(Child* target, std::string* segment,
                                       const std::vector<std::string>& args = {}) {
  auto started = target->Start(args);
  if (!started) return started;
  const std::string kFlag = "--remote_segment=";
  if (!target->WaitForOutput(kFlag, seconds(30)) || !target->WaitForOutput("\n", seconds(1))) {
    return ::testing::AssertionFailure() << "target printed no initiator command\n"
                                         << target->Describe();
  }
  const std::string& out = target->out();
  if (out.rfind("Target server has been started.\n", 0) != 0) {
    return ::testing::AssertionFailure() << "unexpected first line\n" << target->Describe();
  }
  size_t begin = out.find(kFlag) + kFlag.size();
  size_t end = out.find_first_of(" '\n", begin);
  if (end == std::string::npos) {
    // The line may not be complete yet.
    target->WaitForOutput(out.substr(begin) + "\n", seconds(1));
    end = target->out().find_first_of(" '\n", begin);
  }
  *segment = target->out().substr(begin, end - begin);
  if (segment->empty()) {
    return ::testing::AssertionFailure() << "empty segment\n" << target->Describe();
  }
  return ::testing::AssertionSuccess();
}

// Sends `signal_number` to the target and expects a clean exit within 5 s.
void ExpectStopsCleanly(Child* target, int signal_number) {
  target->Signal(signal_number);
  const auto start = Clock::now();
  ASSERT_TRUE(target->Wait(seconds(5))) << "target ignored signal " << signal_number << "\n"
                                        << target->Describe();
  EXPECT_LT(Clock::now() - start, seconds(5));
  EXPECT_EQ(target->exit_code(), 0) << target->Describe();
}

// Runs the benchmark with `args` until it exits, for at most `timeout`.
::testing::AssertionResult RunToExit(Child* child, const std::vector<std::string>& args,
                                     seconds timeout, const char* program = TE_BENCH_PATH) {
  auto started = child->Start(args, program);
  if (!started) return started;
  if (!child->Wait(timeout)) {
    return ::testing::AssertionFailure() << "still running after " << timeout.count() << " s\n"
                                         << child->Describe();
  }
  return ::testing::AssertionSuccess();
}

// The batches the integrity line says were verified; 0 when there is no such line.
uint64_t VerifiedBatches(const std::string& out) {
  std::smatch match;
  static const std::regex kVerified(R"(integrity check passed \((\d+) batches verified\))");
  return std::regex_search(out, match, kVerified) ? std::stoull(match[1]) : 0;
}

const std::regex kSummary(
    R"(Test completed: duration \d+\.\d\ds, batch count [1-9]\d*, throughput \d+\.\d+ [GMK]i?[Bb]/s)");

TEST(TransferEngineBenchTest, MixWithIntegrityCheckThenTargetStopsOnSigterm) {
  Child target;
  std::string segment;
  ASSERT_TRUE(StartTarget(&target, &segment));

  Child initiator;
  ASSERT_TRUE(RunToExit(&initiator,
                        {"--remote_segment=" + segment, "--duration=2", "--workload=mix",
                         "--integrity_check", "--threads=2", "--batch=4", "--size=4096"},
                        seconds(60)));
  EXPECT_EQ(initiator.exit_code(), 0) << initiator.Describe();
  EXPECT_NE(initiator.out().find("throughput"), std::string::npos) << initiator.Describe();
  EXPECT_TRUE(std::regex_search(initiator.out(), kSummary)) << initiator.Describe();
  EXPECT_GT(VerifiedBatches(initiator.out()), 0u) << initiator.Describe();
  EXPECT_NE(initiator.out().find("transport: "), std::string::npos) << initiator.Describe();

  ExpectStopsCleanly(&target, SIGTERM);
}

// Two initiators with the integrity check against one target at once: each in its own
// slice of the target's buffers (--initiators, --initiator_index), so neither sees
// the other's writes as corruption. Sharing the regions, their patterns would clash.
TEST(TransferEngineBenchTest, TwoInitiatorsInTheirOwnSlicesBothVerify) {
  Child target;
  std::string segment;
  ASSERT_TRUE(StartTarget(&target, &segment, {"--initiators=2"}));
  Child initiators[2];
  for (int k = 0; k < 2; ++k) {
    ASSERT_TRUE(initiators[k].Start(
        {"--remote_segment=" + segment, "--duration=2", "--workload=mix", "--integrity_check",
         "--threads=2", "--batch=4", "--size=4096", "--initiator_index=" + std::to_string(k)}));
  }
  for (Child& initiator : initiators) {
    ASSERT_TRUE(initiator.Wait(seconds(60))) << initiator.Describe();
    EXPECT_EQ(initiator.exit_code(), 0) << initiator.Describe();
    EXPECT_GT(VerifiedBatches(initiator.out()), 0u) << initiator.Describe();
  }
  ExpectStopsCleanly(&target, SIGTERM);
}

// An index past the slices the target made room for is refused before any transfer,
// in one line that says how to start the target.
TEST(TransferEngineBenchTest, InitiatorIndexPastTheTargetsSlicesFails) {
  Child target;
  std::string segment;
  ASSERT_TRUE(StartTarget(&target, &segment));  // room for one initiator (the default)
  Child initiator;
  ASSERT_TRUE(RunToExit(&initiator,
                        {"--remote_segment=" + segment, "--duration=1", "--workload=mix",
                         "--integrity_check", "--threads=1", "--initiator_index=1"},
                        seconds(30)));
  EXPECT_EQ(initiator.exit_code(), 1) << initiator.Describe();
  // One error line, the last (the engine's start-up warning may come before it).
  const std::string& err = initiator.err();
  const size_t error_line =
      err.find("error: --initiator_index=1 is out of range: the target's buffer");
  ASSERT_NE(error_line, std::string::npos) << initiator.Describe();
  EXPECT_TRUE(error_line == 0 || err[error_line - 1] == '\n') << initiator.Describe();
  EXPECT_EQ(err.find('\n', error_line), err.size() - 1) << initiator.Describe();
  EXPECT_NE(initiator.err().find("holds 1 initiator slice(s)"), std::string::npos)
      << initiator.Describe();
  EXPECT_NE(initiator.err().find("--initiators=2 or more"), std::string::npos)
      << initiator.Describe();
  EXPECT_EQ(initiator.out().find("throughput"), std::string::npos) << initiator.Describe();
  ExpectStopsCleanly(&target, SIGTERM);
}

// The check can fail: a byte the target holds is made wrong between the check's WRITE
// and its READ (the TEST_ build's hook does it with one more WRITE through the
// engine), and the run must fail naming that byte's offset, not report a pass.
TEST(TransferEngineBenchTest, CorruptedByteFailsTheIntegrityCheckNamingItsOffset) {
  Child target;
  std::string segment;
  ASSERT_TRUE(StartTarget(&target, &segment));

  Child initiator;
  ASSERT_TRUE(RunToExit(&initiator,
                        {"--remote_segment=" + segment, "--duration=1", "--warmup=0",
                         "--workload=mix", "--integrity_check", "--threads=1", "--batch=2",
                         "--size=4096", "--TEST_corrupt_offset=5000"},
                        seconds(60), TE_BENCH_TEST_HOOKS_PATH));
  EXPECT_EQ(initiator.exit_code(), 1) << initiator.Describe();
  EXPECT_NE(initiator.err().find("error: integrity check failed at offset 5000 (thread 0)"),
            std::string::npos)
      << initiator.Describe();
  EXPECT_EQ(initiator.out().find("integrity check passed"), std::string::npos)
      << initiator.Describe();
  ExpectStopsCleanly(&target, SIGTERM);
}

// The hook exists only in the test build: the installed bench refuses the flag.
TEST(TransferEngineBenchTest, InstalledBenchHasNoTestHooks) {
  Child child;
  ASSERT_TRUE(RunToExit(&child, {"--TEST_corrupt_offset=0"}, seconds(10)));
  EXPECT_EQ(child.exit_code(), 1) << child.Describe();
  EXPECT_NE(child.err().find("TEST_corrupt_offset"), std::string::npos) << child.Describe();
}

// Both sides on the ucx transport, over UCX's tcp (TE_UCX_TLS, inherited by the
// children): the mixed workload's bytes check out and the report names ucx.
TEST(TransferEngineBenchTest, UcxMixWithIntegrityCheck) {
  if (!te::UcxBuilt()) GTEST_SKIP() << "this build has no UCX (TE_WITH_UCX=OFF or no libucx-dev)";
  ASSERT_EQ(setenv("TE_UCX_TLS", "tcp", 1), 0);
  Child target;
  std::string segment;
  ASSERT_TRUE(StartTarget(&target, &segment, {"--transport=ucx"}));
  Child initiator;
  ASSERT_TRUE(
      RunToExit(&initiator,
                {"--remote_segment=" + segment, "--transport=ucx", "--duration=2", "--workload=mix",
                 "--integrity_check", "--threads=2", "--batch=4", "--size=65537"},
                seconds(60)));
  unsetenv("TE_UCX_TLS");
  EXPECT_EQ(initiator.exit_code(), 0) << initiator.Describe();
  EXPECT_GT(VerifiedBatches(initiator.out()), 0u) << initiator.Describe();
  EXPECT_NE(initiator.out().find("transport: ucx\n"), std::string::npos) << initiator.Describe();
  ExpectStopsCleanly(&target, SIGTERM);
}

// Where the build has no UCX, --transport=ucx is refused in one line that says so.
TEST(TransferEngineBenchTest, UcxNotBuiltIsOneLine) {
  if (te::UcxBuilt()) GTEST_SKIP() << "this build has UCX";
  Child child;
  ASSERT_TRUE(RunToExit(&child, {"--transport=ucx"}, seconds(10)));
  EXPECT_EQ(child.exit_code(), 1) << child.Describe();
  EXPECT_EQ(CountLines(child.err()), 1u) << child.Describe();
  EXPECT_NE(child.err().find("'ucx' is not built"), std::string::npos) << child.Describe();
}

// --use_vram with the integrity check: VRAM to VRAM on this host (CUDA IPC), VRAM to
// VRAM over TCP, and DRAM to VRAM; sizes over two staging chunks and odd ones.
TEST(TransferEngineBenchTest, VramIntegrityCheckOverEachRoute) {
  if (te::DeviceCount() == 0) GTEST_SKIP() << "needs a CUDA device and -DUSE_CUDA=ON";
  const std::vector<std::vector<std::string>> runs = {
      {"--use_dram=false", "--size=5000001", "--threads=2", "--batch=2"},
      {"--use_dram=false", "--transport=tcp", "--size=4097", "--threads=3", "--batch=3"},
      {"--use_vram=false", "--transport=tcp", "--size=5000001", "--threads=2", "--batch=1"}};
  for (const std::vector<std::string>& run : runs) {
    Child target;
    std::string segment;
    std::vector<std::string> target_args = {"--use_dram=false"};
    for (const std::string& arg : run) {
      if (arg.rfind("--transport=", 0) == 0) target_args.push_back(arg);
    }
    ASSERT_TRUE(StartTarget(&target, &segment, target_args));
    std::vector<std::string> args = {"--remote_segment=" + segment, "--duration=2",
                                     "--workload=mix", "--integrity_check"};
    args.insert(args.end(), run.begin(), run.end());
    Child initiator;
    ASSERT_TRUE(RunToExit(&initiator, args, seconds(60)));
    EXPECT_EQ(initiator.exit_code(), 0) << initiator.Describe();
    EXPECT_GT(VerifiedBatches(initiator.out()), 0u) << initiator.Describe();
    ExpectStopsCleanly(&target, SIGTERM);
  }
}

TEST(TransferEngineBenchTest, ReadWriteAndCheckAliasThenSigint) {
  Child target;
  std::string segment;
  ASSERT_TRUE(StartTarget(&target, &segment));

  Child reader;
  ASSERT_TRUE(RunToExit(&reader,
                        {"--remote_segment=" + segment, "--duration=1", "--threads=1", "--batch=2",
                         "--size=8192", "--report_unit=MiB", "--report_precision=3", "--json"},
                        seconds(60)));
  EXPECT_EQ(reader.exit_code(), 0) << reader.Describe();
  EXPECT_TRUE(std::regex_search(reader.out(), kSummary)) << reader.Describe();
  EXPECT_TRUE(std::regex_search(reader.out(), std::regex(R"(throughput \d+\.\d{3} MiB/s)")))
      << reader.Describe();
  // The JSON line is the last one.
  std::string out = reader.out();
  if (!out.empty() && out.back() == '\n') out.pop_back();
  auto json = nlohmann::json::parse(out.substr(out.rfind('\n') + 1), nullptr, false);
  ASSERT_FALSE(json.is_discarded()) << reader.Describe();
  EXPECT_EQ(json["workload"], "read");
  EXPECT_EQ(json["unit"], "MiB");
  EXPECT_GT(json["batch_count"].get<uint64_t>(), 0u);
  EXPECT_EQ(json["bytes"].get<uint64_t>(), json["batch_count"].get<uint64_t>() * 2 * 8192);

  Child writer;
  ASSERT_TRUE(RunToExit(&writer,
                        {"--remote_segment=" + segment, "--duration=1", "--workload=write",
                         "--threads=3", "--batch=1", "--size=1000", "--report_unit=Gb"},
                        seconds(60)));
  EXPECT_EQ(writer.exit_code(), 0) << writer.Describe();
  EXPECT_TRUE(std::regex_search(writer.out(), std::regex(R"(throughput \d+\.\d\d Gb/s)")))
      << writer.Describe();

  Child checker;  // --check is --integrity_check; odd sizes exercise the pattern tail
  ASSERT_TRUE(RunToExit(&checker,
                        {"--remote_segment=" + segment, "--duration=1", "--workload=mix", "--check",
                         "--threads=3", "--batch=3", "--size=1001"},
                        seconds(60)));
  EXPECT_EQ(checker.exit_code(), 0) << checker.Describe();
  EXPECT_GT(VerifiedBatches(checker.out()), 0u) << checker.Describe();

  ExpectStopsCleanly(&target, SIGINT);
}

TEST(TransferEngineBenchTest, ClusterSecretAdmitsOnlyItsHolders) {
  const std::string secret = "--cluster_secret=bench-test-secret-0123456789";
  Child target;
  std::string segment;
  ASSERT_TRUE(StartTarget(&target, &segment, {secret}));
  EXPECT_EQ(target.out().find("bench-test-secret"), std::string::npos)
      << "the printed initiator command must not carry the secret\n"
      << target.Describe();

  Child member;
  ASSERT_TRUE(RunToExit(&member,
                        {"--remote_segment=" + segment, "--duration=1", "--threads=1", secret},
                        seconds(60)));
  EXPECT_EQ(member.exit_code(), 0) << member.Describe();
  EXPECT_TRUE(std::regex_search(member.out(), kSummary)) << member.Describe();

  Child stranger;
  ASSERT_TRUE(RunToExit(&stranger, {"--remote_segment=" + segment, "--duration=1"}, seconds(60)));
  EXPECT_EQ(stranger.exit_code(), 1) << stranger.Describe();
  EXPECT_NE(stranger.err().find("error: "), std::string::npos) << stranger.Describe();
  EXPECT_NE(stranger.err().find("cluster secret"), std::string::npos) << stranger.Describe();
  ExpectStopsCleanly(&target, SIGTERM);
}

// The JSON lines of an initiator's stdout, parsed; a failure for any that is not JSON.
std::vector<nlohmann::json> JsonLines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream stream(out);
  for (std::string line; std::getline(stream, line);) {
    if (line.empty() || line.front() != '{') continue;
    lines.push_back(nlohmann::json::parse(line, nullptr, false));
    EXPECT_FALSE(lines.back().is_discarded()) << line;
  }
  return lines;
}

// The table rows (lines after the header that start with the workload).
std::vector<std::string> TableRows(const std::string& out, const std::string& workload) {
  std::vector<std::string> rows;
  std::istringstream stream(out);
  bool header = false;
  for (std::string line; std::getline(stream, line);) {
    if (line.rfind("workload ", 0) == 0) header = true;
    if (header && line.rfind(workload + " ", 0) == 0) rows.push_back(line);
  }
  EXPECT_TRUE(header) << out;
  return rows;
}

TEST(TransferEngineBenchTest, SweepPrintsOneRowAndOneJsonLinePerCase) {
  Child target;
  std::string segment;
  ASSERT_TRUE(StartTarget(&target, &segment));

  Child initiator;  // stderr is a pipe here: no progress line may appear on it
  ASSERT_TRUE(
      RunToExit(&initiator,
                {"--remote_segment=" + segment, "--duration=1", "--warmup=0", "--workload=write",
                 "--size=4K:8K", "--batch=1,3", "--threads=1", "--json"},
                seconds(60)));
  EXPECT_EQ(initiator.exit_code(), 0) << initiator.Describe();
  // Piped, so no progress line (it redraws with '\r'); the engine's one warning may be there.
  EXPECT_EQ(initiator.err().find('\r'), std::string::npos) << initiator.Describe();
  const std::vector<std::string> rows = TableRows(initiator.out(), "write");
  ASSERT_EQ(rows.size(), 4u) << initiator.Describe();
  // Threads outermost, then batch, then size.
  const std::vector<std::pair<uint64_t, uint64_t>> expected = {
      {1, 4096}, {1, 8192}, {3, 4096}, {3, 8192}};
  const std::vector<nlohmann::json> json = JsonLines(initiator.out());
  ASSERT_EQ(json.size(), 4u) << initiator.Describe();
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(rows[i]);
    EXPECT_EQ(json[i]["batch"], expected[i].first);
    EXPECT_EQ(json[i]["size"], expected[i].second);
    EXPECT_EQ(json[i]["threads"], 1);
    EXPECT_EQ(json[i]["workload"], "write");
    EXPECT_EQ(json[i]["warmup_s"], 0.0);
    EXPECT_GT(json[i]["batch_count"].get<uint64_t>(), 0u);
    EXPECT_EQ(json[i]["bytes"].get<uint64_t>(),
              json[i]["batch_count"].get<uint64_t>() * expected[i].first * expected[i].second);
    // Percentiles of one histogram: ordered, and within [0, max].
    const double p50 = json[i]["latency_p50_us"], p99 = json[i]["latency_p99_us"],
                 p999 = json[i]["latency_p999_us"], max = json[i]["latency_max_us"];
    EXPECT_GT(p50, 0.0);
    EXPECT_LE(p50, p99);
    EXPECT_LE(p99, p999);
    EXPECT_LE(p999, max);
    EXPECT_GT(json[i]["latency_avg_us"].get<double>(), 0.0);
    EXPECT_GE(json[i]["cpu_seconds"].get<double>(), 0.0);
    EXPECT_NE(rows[i].find(i % 2 ? "8KiB" : "4KiB"), std::string::npos);
  }
  // The spec's summary line belongs to a run of one case.
  EXPECT_EQ(initiator.out().find("Test completed"), std::string::npos) << initiator.Describe();

  ExpectStopsCleanly(&target, SIGTERM);
}

TEST(TransferEngineBenchTest, WarmupIsReported) {
  Child target;
  std::string segment;
  ASSERT_TRUE(StartTarget(&target, &segment));

  Child initiator;
  ASSERT_TRUE(RunToExit(&initiator,
                        {"--remote_segment=" + segment, "--duration=1", "--warmup=0.5",
                         "--threads=2", "--batch=2", "--size=4096", "--json"},
                        seconds(60)));
  EXPECT_EQ(initiator.exit_code(), 0) << initiator.Describe();
  // Piped, so no progress line (it redraws with '\r'); the engine's one warning may be there.
  EXPECT_EQ(initiator.err().find('\r'), std::string::npos) << initiator.Describe();
  EXPECT_TRUE(std::regex_search(initiator.out(), kSummary)) << initiator.Describe();
  EXPECT_EQ(TableRows(initiator.out(), "read").size(), 1u);
  const std::vector<nlohmann::json> json = JsonLines(initiator.out());
  ASSERT_EQ(json.size(), 1u) << initiator.Describe();
  EXPECT_EQ(json[0]["warmup_s"], 0.5);
  EXPECT_GE(json[0]["duration_s"].get<double>(), 1.0);

  ExpectStopsCleanly(&target, SIGTERM);
}

TEST(TransferEngineBenchTest, WorkingSetLargerThanRemoteBufferFails) {
  Child target;
  std::string segment;
  ASSERT_TRUE(StartTarget(&target, &segment));

  Child initiator;  // 2 GiB against the target's 1 GiB buffers
  ASSERT_TRUE(RunToExit(&initiator,
                        {"--remote_segment=" + segment, "--duration=1", "--size=1073741824",
                         "--batch=2", "--threads=1"},
                        seconds(30)));
  EXPECT_EQ(initiator.exit_code(), 1) << initiator.Describe();
  EXPECT_NE(initiator.err().find("size x batch x threads (2147483648 bytes) exceeds remote "
                                 "buffer ("),
            std::string::npos)
      << initiator.Describe();

  ExpectStopsCleanly(&target, SIGTERM);
}

TEST(TransferEngineBenchTest, UnreachablePeerFailsQuickly) {
  Child initiator;
  const auto start = Clock::now();
  ASSERT_TRUE(RunToExit(&initiator, {"--remote_segment=127.0.0.1:1", "--duration=1"}, seconds(20)));
  EXPECT_LT(Clock::now() - start, seconds(15));
  EXPECT_NE(initiator.exit_code(), 0) << initiator.Describe();
  EXPECT_NE(initiator.err().find("error: "), std::string::npos) << initiator.Describe();
  EXPECT_EQ(initiator.out().find("throughput"), std::string::npos) << initiator.Describe();
}

TEST(TransferEngineBenchTest, MalformedSegmentNameFails) {
  Child initiator;
  ASSERT_TRUE(
      RunToExit(&initiator, {"--remote_segment=no port here", "--duration=1"}, seconds(20)));
  EXPECT_NE(initiator.exit_code(), 0) << initiator.Describe();
  EXPECT_NE(initiator.err().find("error: "), std::string::npos) << initiator.Describe();
}

TEST(TransferEngineBenchTest, CentralMetadataFailsWithOneLine) {
  // Not supported by this build; should that change, there is still no server.
  Child initiator;
  ASSERT_TRUE(RunToExit(&initiator,
                        {"--metadata_type=redis", "--metadata_servers=127.0.0.1:1",
                         "--remote_segment=segment", "--duration=1"},
                        seconds(30)));
  EXPECT_NE(initiator.exit_code(), 0) << initiator.Describe();
  EXPECT_NE(initiator.err().find("error: "), std::string::npos) << initiator.Describe();
}

// Rejected before anything starts: exit 1, one "error: " line on stderr, nothing on
// stdout. (Without the check these would start a target, which never exits.)
class BadFlagsTest : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(BadFlagsTest, OneLineErrorAndExitOne) {
  for (const std::string& arg : GetParam()) {
    if (arg.rfind("--use_", 0) == 0 && te::DeviceCount() > 0) {
      GTEST_SKIP() << arg << " is valid where a CUDA device is available";
    }
  }
  Child child;
  ASSERT_TRUE(RunToExit(&child, GetParam(), seconds(10)));
  EXPECT_EQ(child.exit_code(), 1) << child.Describe();
  EXPECT_EQ(child.err().rfind("error: ", 0), 0u) << child.Describe();
  EXPECT_EQ(CountLines(child.err()), 1u) << child.Describe();
  EXPECT_EQ(child.out(), "") << child.Describe();
}

INSTANTIATE_TEST_SUITE_P(
    All, BadFlagsTest,
    ::testing::Values(
        std::vector<std::string>{"--workload=bogus"}, std::vector<std::string>{"--report_unit=TB"},
        std::vector<std::string>{"--batch=0"}, std::vector<std::string>{"--size=0"},
        std::vector<std::string>{"--threads=0"}, std::vector<std::string>{"--threads=-2"},
        std::vector<std::string>{"--duration=0"}, std::vector<std::string>{"--report_precision=13"},
        std::vector<std::string>{"--metadata_type=etcd"}, std::vector<std::string>{"--use_vram"},
        std::vector<std::string>{"--use_vram=true", "--remote_segment=x:1"},
        std::vector<std::string>{"--use_dram=false"},
        std::vector<std::string>{"--transport=carrier-pigeon"},
        std::vector<std::string>{"--integrity_check"},
        std::vector<std::string>{"--check", "--workload=write"},
        std::vector<std::string>{"--size=1125899906842624", "--batch=1048576"},
        std::vector<std::string>{"--size=64K:4K"}, std::vector<std::string>{"--size=4K,,8K"},
        std::vector<std::string>{"--threads=1:4:2"},
        std::vector<std::string>{"--batch=1:1000000:+1"}, std::vector<std::string>{"--warmup=-1"},
        std::vector<std::string>{"--initiators=0"}, std::vector<std::string>{"--initiator_index=1"},
        std::vector<std::string>{"--initiators=2", "--remote_segment=x:1"},
        std::vector<std::string>{"stray-argument"}));

TEST(TransferEngineBenchTest, UseVramMessage) {
  if (te::DeviceCount() > 0) GTEST_SKIP() << "--use_vram is valid where a CUDA device is available";
  Child child;
  ASSERT_TRUE(RunToExit(&child, {"--use_vram"}, seconds(10)));
  EXPECT_EQ(child.exit_code(), 1);
  EXPECT_EQ(child.err(), te::DeviceMemoryBuilt()
                             ? "error: --use_vram: no CUDA device is available\n"
                             : "error: --use_vram needs a build with -DUSE_CUDA=ON\n");
}

TEST(TransferEngineBenchTest, FlagsGflagsRejects) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--no_such_flag"}, std::vector<std::string>{"--batch=abc"},
        std::vector<std::string>{"--size=-1"}}) {
    Child child;
    ASSERT_TRUE(RunToExit(&child, args, seconds(10)));
    EXPECT_NE(child.exit_code(), 0) << args[0] << "\n" << child.Describe();
    EXPECT_FALSE(child.err().empty()) << args[0];
  }
}

}  // namespace
