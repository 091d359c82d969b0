// Two "hosts" on one machine for tests: network namespaces A and B joined by a veth
// pair (MTU 1500 by default), made with iproute2 and removed again. Namespace names
// carry the test process's pid ("te-netns-<pid>-<n>-a"), so concurrent test processes
// never share one, and RemoveStale() deletes those of processes that are gone.
// Interfaces and addresses live inside the namespaces, so every pair uses the same
// ones (kAddrA, kAddrB) without clashing with the machine's or another pair's.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace te_test {

// Runs argv to completion (argv[0] a path); *output gets its stdout and stderr.
// Returns the exit code, or -1 when it could not start, was killed or outlived
// `timeout` (then *output says so).
int RunCommand(const std::vector<std::string>& argv, std::string* output,
               std::chrono::milliseconds timeout = std::chrono::seconds(20));

// Path of `name` in $PATH, /usr/sbin or /sbin; empty when not found.
std::string FindProgram(const std::string& name);

struct NetnsOptions {
  int mtu = 1500;
  // A second interface in B (kUnreachableB: up, with carrier) with an address A has no
  // route to, made before the veth so that it is B's first non-loopback IPv4
  // address: the one an engine picks by default.
  bool unreachable_interface_in_b = false;
};

class NetnsPair {
 public:
  static constexpr const char* kAddrA = "10.213.0.1";
  static constexpr const char* kAddrB = "10.213.0.2";
  static constexpr const char* kUnreachableB = "unreachable0";
  static constexpr const char* kUnreachableAddrB = "10.213.9.1";
  static constexpr const char* kVethA = "veth-a";
  static constexpr const char* kVethB = "veth-b";

  NetnsPair() = default;
  ~NetnsPair() { Destroy(); }
  NetnsPair(const NetnsPair&) = delete;
  NetnsPair& operator=(const NetnsPair&) = delete;

  // Why namespaces cannot be made here ("not root", "no ip"), empty when they may.
  static std::string Unavailable();
  // Deletes namespaces named by this helper whose process no longer runs.
  static void RemoveStale();

  // Makes A and B, the veth pair with kAddrA/kAddrB and, if asked, B's unreachable
  // interface. On failure removes what it made and says why in *error.
  bool Create(const NetnsOptions& options, std::string* error);
  // Deletes both namespaces (their interfaces go with them). Processes still inside
  // keep them alive until they exit, so stop those first.
  void Destroy();

  const std::string& a() const { return a_; }
  const std::string& b() const { return b_; }
  // The argv prefix that runs a program inside `ns`: ip netns exec <ns>.
  std::vector<std::string> Launcher(const std::string& ns) const;
  // Runs argv inside `ns` (see RunCommand).
  int Exec(const std::string& ns, const std::vector<std::string>& argv, std::string* output) const;
  // Takes B's end of the veth down or up: A then sees the carrier go, as if the
  // cable were pulled, and what it sends is dropped without an error.
  bool SetLinkUp(bool up, std::string* error) const;

 private:
  bool Ip(const std::vector<std::string>& args, std::string* error) const;

  std::string ip_;
  std::string a_, b_;
};

// Moves the calling thread into a network namespace and back. Only threads this
// thread creates afterwards follow it (sockets keep the namespace they were made
// in), so a test enters before it creates any engine and leaves after destroying it.
class NetnsEntry {
 public:
  NetnsEntry() = default;
  ~NetnsEntry();
  NetnsEntry(const NetnsEntry&) = delete;
  NetnsEntry& operator=(const NetnsEntry&) = delete;

  bool Enter(const std::string& ns, std::string* error);
  // Back to the namespace the thread was in before Enter; a no-op when not entered.
  bool Leave(std::string* error);

 private:
  int original_fd_ = -1;
};

}  // namespace te_test
