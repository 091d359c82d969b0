// The peer processes of te_fan_bench: the main process starts them (this binary
// again, with --peer_role), talks to each over a line protocol on its stdin and
// stdout, and kills and reaps them on any error or signal.
//
// Protocol (peer -> main on stdout, main -> peer on stdin), one line each:
//   target role:    peer "ready SEG..." (its engines' segments); then serves until
//                   its stdin ends.
//   initiator role: peer "ready"; main "target SEG"; peer opens it from every engine,
//                   "opened"; main "go" (the phase is already kWarmup); peer runs
//                   its workers until kStop, checks each engine's region, sends
//                   "latency NS..." lines and "done MISMATCHES FIRST_ENGINE FIRST_OFFSET";
//                   then waits for its stdin to end.
//   Any failure: peer "error MESSAGE" and exit 1.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "fan_common.h"

namespace te::fan {

// SIGINT, SIGTERM and SIGHUP kill and reap every peer process at once; the run then
// fails on their absence, joins its threads and exits 128+signal (see CaughtSignal).
// A second signal exits at once. SIGPIPE is ignored (a dead peer's stdin gives EPIPE).
void InstallCleanupHandlers();
// The signal that ended the run, or 0.
int CaughtSignal();
// Kills and reaps every peer process still running (also what the handlers do).
void KillAllPeers();

class PeerProcess {
 public:
  PeerProcess() = default;
  ~PeerProcess() { Kill(); }
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;

  // Runs argv (argv[0] a path, or a command looked up in PATH); `keep_fd` stays open
  // in the child. The child gets SIGKILL when this process dies.
  Status Start(const std::vector<std::string>& argv, int keep_fd);
  // The next line (without '\n'), within timeout_ms. An "error ..." line, the end of
  // the output or the time running out is an error naming this peer.
  Status ReadLine(std::string* line, int timeout_ms);
  Status SendLine(const std::string& line);
  // Closes stdin and waits (bounded) for exit code 0; kills it when it overstays.
  Status Finish(int timeout_ms);
  void Kill();

  int stdout_fd() const { return out_fd_; }
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

 private:
  pid_t pid_ = -1;
  int in_fd_ = -1;
  int out_fd_ = -1;
  std::string pending_;
  std::string name_ = "peer process";
};

// Waits timeout_ms while the run goes on. A peer that writes or exits meanwhile (it
// only does so when it failed) or a worker here that failed (Control::failed) ends
// the wait with an error.
Status WatchPeers(std::vector<PeerProcess>* peers, const Control* control, int timeout_ms);

// The main of a peer process (--peer_role given); returns the exit code.
int RunPeerProcess(const Options& options);

}  // namespace te::fan
