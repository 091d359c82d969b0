// Observing a peer process from outside, so tests wait for events instead of
// sleeping: that a SIGSTOP took effect, that requests reached a stopped peer's
// sockets, that a resumed peer answered everything (all from /proc).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "peer_process.h"

namespace te_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// SIGSTOP, and wait until the kernel has stopped the peer (the signal is asynchronous).
inline void StopPeer(PeerProcess* peer) {
  peer->Signal(SIGSTOP);
  const std::string stat = "/proc/" + std::to_string(peer->pid()) + "/stat";
  for (auto deadline = Clock::now() + 5s; Clock::now() < deadline;) {
    std::ifstream in(stat);
    std::string line;
    std::getline(in, line);
    const size_t paren = line.rfind(')');
    if (paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'T') return;
    std::this_thread::sleep_for(1ms);
  }
  ADD_FAILURE() << "peer " << peer->pid() << " did not stop";
}

// Bytes queued in the TCP sockets `pid` holds: received but not yet read by it (rx),
// and sent but not yet acknowledged by the other end (tx). From /proc: the socket
// inodes of its descriptors, matched against the netns's TCP tables.
struct SocketQueues {
  uint64_t rx = 0;
  uint64_t tx = 0;
};

inline SocketQueues PeerSocketQueues(pid_t pid) {
  std::set<std::string> inodes;
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(fd_dir, ec)) {
    const std::string target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
  }
  SocketQueues queues;
  for (const char* table : {"/net/tcp", "/net/tcp6"}) {
    std::ifstream in("/proc/" + std::to_string(pid) + table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, local, remote, state, queue, timer, retransmits, uid, timeout, inode;
      fields >> sl >> local >> remote >> state >> queue >> timer >> retransmits >> uid >> timeout >>
          inode;
      if (!inodes.count(inode)) continue;
      const size_t colon = queue.find(':');
      queues.tx += std::stoull(queue.substr(0, colon), nullptr, 16);
      queues.rx += std::stoull(queue.substr(colon + 1), nullptr, 16);
    }
  }
  return queues;
}

// Waits until `done(queues of the peer's sockets)`; fails the test after 10 s.
inline void WaitForPeerQueues(const PeerProcess& peer,
                              const std::function<bool(SocketQueues)>& done, const char* what) {
  SocketQueues queues;
  for (auto deadline = Clock::now() + 10s; Clock::now() < deadline;) {
    queues = PeerSocketQueues(peer.pid());
    if (done(queues)) return;
    std::this_thread::sleep_for(1ms);
  }
  ADD_FAILURE() << "peer " << peer.pid() << ": " << what << " never happened (rx " << queues.rx
                << ", tx " << queues.tx << ")";
}

// The stopped peer's kernel holds requests it has not read: they reached it.
inline void WaitUntilRequestsReachStoppedPeer(const PeerProcess& peer) {
  WaitForPeerQueues(
      peer, [](SocketQueues q) { return q.rx > 0; }, "requests reaching it");
}

// The resumed peer has read everything sent to it and everything it sent was
// acknowledged: it has answered all it will answer.
inline void WaitUntilPeerAnsweredEverything(const PeerProcess& peer) {
  WaitForPeerQueues(
      peer, [](SocketQueues q) { return q.rx == 0 && q.tx == 0; }, "draining its sockets");
}

}  // namespace te_test
