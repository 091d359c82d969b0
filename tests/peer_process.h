// PeerProcess: runs tests/test_peer.cc (te_test_peer) as a ChildProcess, waits for its
// READY line, sends it commands and reads its replies with timeouts. The peer's stderr
// goes to the test's. The destructor always stops and reaps the child.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "child_process.h"

namespace te_test {

class PeerProcess {
 public:
  struct Buffer {
    uint64_t base = 0;
    uint64_t length = 0;
  };

  PeerProcess() = default;
  ~PeerProcess();
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;

  // Path of the peer executable: $TE_TEST_PEER if set, else the one CMake built.
  static std::string ExecutablePath();

  // Spawns the peer with `args` (flags without argv[0]) and waits up to `timeout` for
  // its READY line. On failure returns false, says why in *error and reaps the child.
  // A `launcher` (e.g. {"/usr/sbin/ip", "netns", "exec", "ns"}) is run with the peer's
  // command line after it; it must exec the peer in its own process.
  bool Start(const std::vector<std::string>& args, std::string* error,
             std::chrono::milliseconds timeout = std::chrono::seconds(20),
             const std::vector<std::string>& launcher = {});

  const std::string& segment_name() const { return segment_name_; }
  // The buffers from the READY line, in registration order.
  const std::vector<Buffer>& buffers() const { return buffers_; }
  pid_t pid() const { return child_.pid(); }
  bool running() const { return child_.running(); }

  bool SendLine(const std::string& line) { return child_.SendLine(line); }
  // Reads the next line of the peer's stdout (without '\n'). False on timeout or EOF.
  bool ReadLine(std::string* line, std::chrono::milliseconds timeout) {
    return child_.ReadLine(line, timeout);
  }
  // Sends `line` and returns the peer's reply: the next line whose first word is a
  // reply keyword (other output is skipped). Empty on timeout, EOF or a dead peer.
  std::string Command(const std::string& line,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20));

  // Sends a signal to the peer (no-op once reaped).
  void Signal(int sig) { child_.Signal(sig); }
  // Waits for the peer to exit and reaps it. False when it is still running.
  bool WaitExit(std::chrono::milliseconds timeout, int* wait_status = nullptr) {
    return child_.WaitExit(timeout, wait_status);
  }
  // Closes stdin, then escalates SIGTERM -> SIGKILL until the peer is reaped.
  void Stop();

 private:
  ChildProcess child_;
  std::string segment_name_;
  std::vector<Buffer> buffers_;
};

}  // namespace te_test
