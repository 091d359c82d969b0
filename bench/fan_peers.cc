#include "fan_peers.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <thread>

namespace te::fan {
namespace {

using Clock = std::chrono::steady_clock;

// Every running peer process, for the signal handlers: a fixed table of atomics, so
// that a handler may walk it.
constexpr size_t kMaxPeerProcesses = 128;
std::atomic<pid_t> g_peer_pids[kMaxPeerProcesses];

void Remember(pid_t pid) {
  for (std::atomic<pid_t>& slot : g_peer_pids) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, pid)) return;
  }
}

// Takes `pid` out of the table; false when a signal handler took it first (and reaps
// it), so that only one of them ever waits for it and nobody signals a reused pid.
bool Forget(pid_t pid) {
  for (std::atomic<pid_t>& slot : g_peer_pids) {
    pid_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0)) return true;
  }
  return false;
}

std::atomic<int> g_caught_signal{0};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<pid_t>::is_always_lock_free,
              "the signal handler may only touch lock-free atomics");

// Returns instead of exiting: with the peers gone every wait of the run ends in an
// error, so the main thread stops and joins its workers before it exits 128+signal.
void OnSignal(int signal_number) {
  if (g_caught_signal.exchange(signal_number) != 0) _exit(128 + signal_number);  // the second
  const int saved_errno = errno;
  KillAllPeers();
  errno = saved_errno;
}

// Rounded up, so that a wait for it never ends before the deadline.
int MillisecondsLeft(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

}  // namespace

void KillAllPeers() {
  for (std::atomic<pid_t>& slot : g_peer_pids) {
    const pid_t pid = slot.exchange(0);
    if (pid <= 0) continue;
    kill(pid, SIGKILL);
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

int CaughtSignal() { return g_caught_signal.load(); }

void InstallCleanupHandlers() {
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) sigaction(signal_number, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

Status PeerProcess::Start(const std::vector<std::string>& argv, int keep_fd) {
  // Everything the child needs exists before fork: the parent may have threads.
  std::vector<std::string> storage = argv;
  std::vector<char*> args;
  for (std::string& arg : storage) args.push_back(arg.data());
  args.push_back(nullptr);
  const std::string failed = "error cannot run " + argv[0] + "\n";
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) return Status::FromErrno("pipe2", errno);
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return Status::FromErrno("pipe2", errno);
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
    return Status::FromErrno("fork", errno);
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    if (keep_fd >= 0) fcntl(keep_fd, F_SETFD, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) signal(signal_number, SIG_DFL);
    execvp(args[0], args.data());
    ssize_t ignored = write(STDOUT_FILENO, failed.data(), failed.size());
    (void)ignored;
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  pid_ = pid;
  in_fd_ = in[1];
  out_fd_ = out[0];
  Remember(pid);
  return Status::OK();
}

Status PeerProcess::ReadLine(std::string* line, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const size_t newline = pending_.find('\n');
    if (newline != std::string::npos) {
      *line = pending_.substr(0, newline);
      pending_.erase(0, newline + 1);
      if (line->rfind("error ", 0) == 0) return Status::Internal(name_ + ": " + line->substr(6));
      return Status::OK();
    }
    pollfd fd{out_fd_, POLLIN, 0};
    const int ready = poll(&fd, 1, MillisecondsLeft(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return Status::Timeout(name_ + " did not answer in time");
    char buffer[65536];
    const ssize_t n = read(out_fd_, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Unavailable(name_ + " exited unexpectedly");
    pending_.append(buffer, static_cast<size_t>(n));
  }
}

Status PeerProcess::SendLine(const std::string& line) {
  const std::string text = line + "\n";
  for (size_t sent = 0; sent < text.size();) {
    const ssize_t n = write(in_fd_, text.data() + sent, text.size() - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Unavailable(name_ + " stopped reading (" + strerror(errno) + ")");
    sent += static_cast<size_t>(n);
  }
  return Status::OK();
}

Status PeerProcess::Finish(int timeout_ms) {
  if (pid_ <= 0) return Status::OK();
  close(in_fd_);
  in_fd_ = -1;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  // WNOWAIT leaves it a zombie, its pid not reusable, until whoever Forget() names reaps it.
  siginfo_t exited{};
  auto has_exited = [&] {
    exited.si_pid = 0;
    return waitid(P_PID, pid_, &exited, WEXITED | WNOHANG | WNOWAIT) != 0 || exited.si_pid != 0;
  };
  while (!has_exited() && Clock::now() < deadline) {
    pollfd fd{out_fd_, POLLIN, 0};
    if (poll(&fd, 1, 20) > 0) {
      char buffer[4096];
      if (read(out_fd_, buffer, sizeof(buffer)) <= 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  if (exited.si_pid != pid_) {
    Kill();
    return Status::Timeout(name_ + " did not exit after its stdin closed");
  }
  Kill();  // reaps it (unless the signal handler did) and closes the pipes
  if (exited.si_code != CLD_EXITED || exited.si_status != 0) {
    return Status::Internal(name_ + " ended with " +
                            (exited.si_code == CLD_EXITED ? "exit code " : "signal ") +
                            std::to_string(exited.si_status));
  }
  return Status::OK();
}

void PeerProcess::Kill() {
  if (pid_ > 0 && Forget(pid_)) {
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
  for (int* fd : {&in_fd_, &out_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

Status WatchPeers(std::vector<PeerProcess>* peers, const Control* control, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::vector<pollfd> fds;
  for (const PeerProcess& peer : *peers) fds.push_back({peer.stdout_fd(), POLLIN, 0});
  for (;;) {
    if (control->failed.load()) return Status::Internal("a worker failed");
    const int left = MillisecondsLeft(deadline);
    if (left == 0) return Status::OK();
    const int ready = poll(fds.data(), fds.size(), std::min(left, 100));
    if (ready <= 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      std::string line;
      Status status = (*peers)[i].ReadLine(&line, 1000);
      if (status.ok()) status = Status::ProtocolError((*peers)[i].name() + " said '" + line + "'");
      return status;
    }
  }
}

// ---------------------------------------------------------------------------
// The peer process

namespace {

void Send(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// The next line from the main process; it closing our stdin is an error here.
Status Receive(const std::string& expected_word, std::string* rest) {
  std::string line;
  if (!std::getline(std::cin, line)) return Status::Cancelled("the main process went away");
  if (line.rfind(expected_word, 0) != 0) {
    return Status::ProtocolError("expected '" + expected_word + "', got '" + line + "'");
  }
  *rest = line.size() > expected_word.size() ? line.substr(expected_word.size() + 1) : "";
  return Status::OK();
}

struct PeerEngines {
  std::vector<std::unique_ptr<te::TransferEngine>> engines;
  std::vector<Route> routes;  // one per engine
};

Status StartEngines(const Options& o, PeerEngines* peers) {
  for (uint64_t i = 0; i < o.peer_count; ++i) {
    std::unique_ptr<te::TransferEngine> engine;
    TE_RETURN_IF_ERROR(MakeEngine(o.host, o.transport, &engine));
    Route route;
    route.engine = engine.get();
    TE_RETURN_IF_ERROR(
        AllocateRegistered(engine.get(), o.RegionBytes(), o.ShmBuffers(), &route.local));
    peers->engines.push_back(std::move(engine));
    peers->routes.push_back(route);
  }
  return Status::OK();
}

// Every engine opens the target; engine g's region starts at g x region in the
// target's first buffer.
Status OpenTarget(const Options& o, const std::string& segment, PeerEngines* peers) {
  for (uint64_t i = 0; i < peers->routes.size(); ++i) {
    Route& route = peers->routes[i];
    TE_RETURN_IF_ERROR(route.engine->openSegment(&route.segment, segment));
    te::SegmentInfo info;
    TE_RETURN_IF_ERROR(route.engine->getSegmentInfo(route.segment, &info));
    const uint64_t offset = (o.peer_first + i) * o.RegionBytes();
    if (info.buffers.empty() || info.buffers[0].length < offset + o.RegionBytes()) {
      return Status::OutOfRange("the target's buffer has no room for initiator " +
                                std::to_string(o.peer_first + i));
    }
    route.remote = info.buffers[0].base + offset;
  }
  return Status::OK();
}

// The workers' run, then each engine's region checked; sends the latencies and the
// "done" line.
Status RunInitiators(const Options& o, Control* control, PeerEngines* peers) {
  std::vector<std::vector<uint64_t>> latencies(o.threads);
  std::vector<std::string> errors(o.threads);
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < o.threads; ++t) {
    WorkerSpec spec{peers->routes, t, o.batch, o.size, o.Opcode(), false, true, control};
    threads.emplace_back(RunWorker, spec, &latencies[t], &errors[t]);
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& error : errors) {
    if (!error.empty()) return Status::Internal(error);
  }
  uint64_t mismatches = 0, first_engine = 0, first_offset = 0;
  for (uint64_t i = 0; i < peers->routes.size(); ++i) {
    uint64_t bad = 0, first = 0;
    TE_RETURN_IF_ERROR(
        VerifyRegion(o, peers->routes[i], o.RegionBytes(), o.peer_first + i, &bad, &first));
    if (bad > 0 && mismatches == 0) {
      first_engine = o.peer_first + i;
      first_offset = first;
    }
    mismatches += bad;
  }
  std::string line;
  for (const std::vector<uint64_t>& samples : latencies) {
    for (size_t i = 0; i < samples.size(); ++i) {
      line += (line.empty() ? "latency " : " ") + std::to_string(samples[i]);
      if (line.size() > 8000) {
        Send(line);
        line.clear();
      }
    }
  }
  if (!line.empty()) Send(line);
  Send("done " + std::to_string(mismatches) + " " + std::to_string(first_engine) + " " +
       std::to_string(first_offset));
  return Status::OK();
}

Status RunPeer(const Options& o) {
  PeerEngines peers;
  TE_RETURN_IF_ERROR(StartEngines(o, &peers));
  std::string rest;
  if (o.peer_role == "target") {
    std::string segments;
    for (const auto& engine : peers.engines) segments += " " + engine->getSegmentName();
    Send("ready" + segments);
    while (std::getline(std::cin, rest)) {
    }
    return Status::OK();
  }
  Control* control = nullptr;
  TE_RETURN_IF_ERROR(MapControl(o.control_fd, &control));
  Send("ready");
  TE_RETURN_IF_ERROR(Receive("target", &rest));
  TE_RETURN_IF_ERROR(OpenTarget(o, rest, &peers));
  Send("opened");
  TE_RETURN_IF_ERROR(Receive("go", &rest));
  TE_RETURN_IF_ERROR(RunInitiators(o, control, &peers));
  while (std::getline(std::cin, rest)) {
  }
  return Status::OK();
}

}  // namespace

int RunPeerProcess(const Options& options) {
  Status status = RunPeer(options);
  if (status.ok()) return 0;
  std::string message = status.ToString();
  std::replace(message.begin(), message.end(), '\n', ' ');
  Send("error " + message);
  return 1;
}

}  // namespace te::fan
