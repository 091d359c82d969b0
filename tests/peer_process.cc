#include "peer_process.h"

#include <signal.h>

#include <cstdlib>
#include <sstream>

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
                        std::chrono::milliseconds timeout,
                        const std::vector<std::string>& launcher) {
  if (running()) {
    *error = "already started";
    return false;
  }
  std::vector<std::string> argv = launcher;
  argv.push_back(ExecutablePath());
  argv.insert(argv.end(), args.begin(), args.end());
  if (!child_.Start(argv, "/dev/stderr", error)) return false;

  auto deadline = Clock::now() + timeout;
  std::string line;
  while (true) {
    if (!ReadLine(&line, std::chrono::milliseconds(RemainingMs(deadline)))) {
      *error = child_.eof() ? "peer exited before READY" : "no READY line in time";
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

void PeerProcess::Stop() {
  if (!running()) return;
  Signal(SIGCONT);  // in case a test left it stopped
  // Closing stdin asks the peer to exit cleanly; then SIGTERM, then SIGKILL.
  child_.CloseStdin();
  if (!WaitExit(std::chrono::seconds(3))) child_.Terminate(std::chrono::seconds(2));
}

}  // namespace te_test
