// ChildProcess: runs a program (a server or a peer engine) for a test. Its stdout is
// a pipe the test reads lines from; its stderr goes to a log file that failure
// messages quote. The child dies with the test process (PR_SET_PDEATHSIG), and the
// destructor always kills and reaps it. Every wait is bounded.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace te_test {

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess() { Kill(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts argv[0] (a path) with argv; `env` entries ("NAME=value") are added to the
  // environment after removing every TE_* variable, so the caller's shell cannot
  // change the engine under test. stderr (and stdout too when !pipe_stdout) goes to
  // log_path. False with *error when the program cannot start.
  bool Start(const std::vector<std::string>& argv, const std::string& log_path, std::string* error,
             const std::vector<std::string>& env = {}, bool pipe_stdout = true);

  // The next line of stdout (without '\n'); false on timeout or end of output.
  bool ReadLine(std::string* line, std::chrono::milliseconds timeout);
  // Reads lines until one starts with `prefix`; all lines read are appended to
  // *seen when given. False on timeout or end of output.
  bool WaitForLine(const std::string& prefix, std::string* line, std::chrono::milliseconds timeout,
                   std::string* seen = nullptr);
  bool SendLine(const std::string& line);
  // Closes the child's stdin (a polite request to exit, for children that serve it).
  void CloseStdin();
  // True once stdout reached its end.
  bool eof() const { return eof_; }

  void Signal(int sig);
  // True once the child exited (reaped); *status gets the wait status. Its remaining
  // output can still be read.
  bool WaitExit(std::chrono::milliseconds timeout, int* status = nullptr);
  // SIGKILL, reap, close the pipes.
  void Kill();
  // SIGTERM, then SIGKILL after `grace`; reaps.
  void Terminate(std::chrono::milliseconds grace = std::chrono::seconds(5));

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // The last `bytes` of the log file, for failure messages.
  std::string LogTail(size_t bytes = 2000) const;

 private:
  void CloseFds();

  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  bool eof_ = false;
  std::string pending_;
  std::string log_path_;
};

// A loopback TCP port that was free a moment ago (bound to port 0 and released).
uint16_t FreeLoopbackPort();
// True when something accepts TCP connections on 127.0.0.1:port.
bool PortAnswers(uint16_t port);

// A fresh directory under $TMPDIR (or /tmp); removed recursively by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace te_test
