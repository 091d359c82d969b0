#include "peer_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

extern char** environ;

#ifndef TE_TEST_PEER_PATH
#define TE_TEST_PEER_PATH "te_test_peer"
#endif

namespace te_test {
namespace {

using Clock = std::chrono::steady_clock;

bool IsReplyKeyword(const std::string& word) {
  static const char* kKeywords[] = {"PONG",          "OK",         "ERR",  "CHECKSUM",
                                    "NOTIFICATIONS", "REGISTERED", "DONE", "BYE"};
  for (const char* k : kKeywords) {
    if (word == k) return true;
  }
  return false;
}

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

}  // namespace

std::string PeerProcess::ExecutablePath() {
  const char* env = std::getenv("TE_TEST_PEER");
  return env != nullptr && *env != '\0' ? env : TE_TEST_PEER_PATH;
}

PeerProcess::~PeerProcess() { Stop(); }

bool PeerProcess::Start(const std::vector<std::string>& args, std::string* error,
                        std::chrono::milliseconds timeout) {
  if (running()) {
    *error = "already started";
    return false;
  }
  // A write to a peer that died must fail with EPIPE, not kill the test.
  signal(SIGPIPE, SIG_IGN);

  int in_pipe[2], out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) {
    *error = std::string("pipe2: ") + std::strerror(errno);
    return false;
  }
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    *error = std::string("pipe2: ") + std::strerror(errno);
    close(in_pipe[0]);
    close(in_pipe[1]);
    return false;
  }
  // dup2 clears O_CLOEXEC on the child's 0 and 1; every other end stays private, so
  // a second peer never inherits this one's stdin (which would hide its EOF).
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);

  std::string path = ExecutablePath();
  std::vector<std::string> argv_storage;
  argv_storage.push_back(path);
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = -1;
  int rc = posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in_pipe[0]);
  close(out_pipe[1]);
  if (rc != 0) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    *error = "posix_spawn " + path + ": " + std::strerror(rc);
    return false;
  }
  pid_ = pid;
  stdin_fd_ = in_pipe[1];
  stdout_fd_ = out_pipe[0];
  eof_ = false;
  pending_.clear();

  auto deadline = Clock::now() + timeout;
  std::string line;
  while (true) {
    if (!ReadLine(&line, std::chrono::milliseconds(RemainingMs(deadline)))) {
      *error = eof_ ? "peer exited before READY" : "no READY line in time";
      Stop();
      return false;
    }
    std::istringstream in(line);
    std::string word;
    in >> word;
    if (word == "ERROR") {
      *error = "peer failed: " + line;
      Stop();
      return false;
    }
    if (word != "READY") continue;
    if (!(in >> segment_name_)) {
      *error = "malformed READY line: " + line;
      Stop();
      return false;
    }
    buffers_.clear();
    Buffer b;
    while (in >> b.base >> b.length) buffers_.push_back(b);
    return true;
  }
}

bool PeerProcess::SendLine(const std::string& line) {
  if (stdin_fd_ < 0) return false;
  std::string data = line + "\n";
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(stdin_fd_, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

bool PeerProcess::ReadLine(std::string* line, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    size_t pos = pending_.find('\n');
    if (pos != std::string::npos) {
      *line = pending_.substr(0, pos);
      pending_.erase(0, pos + 1);
      return true;
    }
    if (eof_ || stdout_fd_ < 0) return false;
    pollfd pfd{stdout_fd_, POLLIN, 0};
    int rc = poll(&pfd, 1, RemainingMs(deadline));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (rc == 0) return false;  // timed out
    char chunk[4096];
    ssize_t n = read(stdout_fd_, chunk, sizeof(chunk));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      eof_ = true;
      return false;
    }
    if (n == 0) {
      eof_ = true;  // only complete lines count; a trailing fragment is dropped
      continue;
    }
    pending_.append(chunk, static_cast<size_t>(n));
  }
}

std::string PeerProcess::Command(const std::string& line, std::chrono::milliseconds timeout) {
  if (!SendLine(line)) return "";
  auto deadline = Clock::now() + timeout;
  std::string reply;
  while (ReadLine(&reply, std::chrono::milliseconds(RemainingMs(deadline)))) {
    std::istringstream in(reply);
    std::string word;
    in >> word;
    if (IsReplyKeyword(word)) return reply;
  }
  return "";
}

void PeerProcess::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

bool PeerProcess::WaitExit(std::chrono::milliseconds timeout, int* wait_status) {
  if (pid_ <= 0) return true;
  auto deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      if (wait_status != nullptr) *wait_status = status;
      pid_ = -1;
      CloseFds();
      return true;
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void PeerProcess::Stop() {
  if (pid_ > 0) {
    kill(pid_, SIGCONT);  // in case a test left it stopped
    // Closing stdin asks the peer to exit cleanly.
    if (stdin_fd_ >= 0) {
      close(stdin_fd_);
      stdin_fd_ = -1;
    }
    if (!WaitExit(std::chrono::seconds(3))) {
      kill(pid_, SIGTERM);
      if (!WaitExit(std::chrono::seconds(2))) {
        kill(pid_, SIGKILL);
        WaitExit(std::chrono::seconds(10));
      }
    }
  }
  CloseFds();
}

void PeerProcess::CloseFds() {
  if (stdin_fd_ >= 0) close(stdin_fd_);
  if (stdout_fd_ >= 0) close(stdout_fd_);
  stdin_fd_ = stdout_fd_ = -1;
}

}  // namespace te_test
