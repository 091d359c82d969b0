#include "netns.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "child_process.h"

namespace te_test {
namespace {

constexpr const char* kPrefix = "te-netns-";
constexpr const char* kNetnsDir = "/run/netns";

std::string Joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// The pid in a name "te-netns-<pid>-...", or 0 when the name is not ours.
pid_t OwnerOf(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return 0;
  const char* digits = name.c_str() + std::strlen(kPrefix);
  char* end = nullptr;
  long pid = std::strtol(digits, &end, 10);
  return end != digits && *end == '-' && pid > 0 ? static_cast<pid_t>(pid) : 0;
}

}  // namespace

int RunCommand(const std::vector<std::string>& argv, std::string* output,
               std::chrono::milliseconds timeout) {
  output->clear();
  const char* tmp = std::getenv("TMPDIR");
  std::string log = std::string(tmp && *tmp ? tmp : "/tmp") + "/te-netns-cmd-XXXXXX";
  int fd = ::mkstemp(log.data());
  if (fd < 0) {
    *output = "mkstemp: " + std::string(std::strerror(errno));
    return -1;
  }
  ::close(fd);
  ChildProcess child;
  std::string error;
  int code = -1;
  if (!child.Start(argv, log, &error, {}, /*pipe_stdout=*/false)) {
    *output = error;
  } else {
    int status = 0;
    const bool exited = child.WaitExit(timeout, &status);
    if (!exited) child.Kill();
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    *output = text.str();
    if (!exited) {
      *output += "(killed after " + std::to_string(timeout.count()) + " ms)";
    } else if (WIFEXITED(status)) {
      code = WEXITSTATUS(status);
    }
  }
  ::unlink(log.c_str());
  return code;
}

std::string FindProgram(const std::string& name) {
  std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
  dirs += ":/usr/sbin:/sbin";
  std::istringstream in(dirs);
  std::string dir;
  while (std::getline(in, dir, ':')) {
    if (dir.empty()) continue;
    std::string path = dir + "/" + name;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

std::string NetnsPair::Unavailable() {
  if (::geteuid() != 0) return "not root (making network namespaces needs CAP_SYS_ADMIN)";
  if (FindProgram("ip").empty()) {
    return "no 'ip' program (iproute2; scripts/install_deps.sh installs it)";
  }
  return "";
}

void NetnsPair::RemoveStale() {
  const std::string ip = FindProgram("ip");
  std::error_code ec;
  if (ip.empty() || !std::filesystem::is_directory(kNetnsDir, ec)) return;
  std::vector<std::string> stale;
  for (const auto& entry : std::filesystem::directory_iterator(kNetnsDir, ec)) {
    const std::string name = entry.path().filename().string();
    const pid_t owner = OwnerOf(name);
    if (owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  std::string output;
  for (const auto& name : stale) RunCommand({ip, "netns", "delete", name}, &output);
}

bool NetnsPair::Ip(const std::vector<std::string>& args, std::string* error) const {
  std::vector<std::string> argv = {ip_};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string output;
  if (RunCommand(argv, &output) == 0) return true;
  *error = "'" + Joined(argv) + "' failed: " + output;
  return false;
}

bool NetnsPair::Create(const NetnsOptions& options, std::string* error) {
  Destroy();
  ip_ = FindProgram("ip");
  if (ip_.empty()) {
    *error = "no 'ip' program";
    return false;
  }
  static std::atomic<int> pairs{0};
  const std::string stem = kPrefix + std::to_string(::getpid()) + "-" + std::to_string(pairs++);
  a_ = stem + "-a";
  b_ = stem + "-b";
  const std::string mtu = std::to_string(options.mtu);
  std::vector<std::vector<std::string>> steps;
  for (const std::string& ns : {a_, b_}) {
    // A namespace of this name can only be left by a dead process that had our pid.
    std::string ignored;
    RunCommand({ip_, "netns", "delete", ns}, &ignored);
    steps.push_back({"netns", "add", ns});
    steps.push_back({"-n", ns, "link", "set", "lo", "up"});
  }
  if (options.unreachable_interface_in_b) {
    // A veth pair of B's own, both ends up: an interface with carrier and an address,
    // as a dummy or a container bridge would be (the dummy driver is not in every
    // kernel), that A has no route to.
    steps.push_back(
        {"-n", b_, "link", "add", kUnreachableB, "type", "veth", "peer", "name", "unreachable1"});
    steps.push_back(
        {"-n", b_, "addr", "add", std::string(kUnreachableAddrB) + "/24", "dev", kUnreachableB});
    steps.push_back({"-n", b_, "link", "set", "unreachable1", "up"});
    steps.push_back({"-n", b_, "link", "set", kUnreachableB, "up"});
  }
  steps.push_back({"-n", a_, "link", "add", kVethA, "mtu", mtu, "type", "veth", "peer", "name",
                   kVethB, "mtu", mtu, "netns", b_});
  steps.push_back({"-n", a_, "addr", "add", std::string(kAddrA) + "/24", "dev", kVethA});
  steps.push_back({"-n", b_, "addr", "add", std::string(kAddrB) + "/24", "dev", kVethB});
  steps.push_back({"-n", a_, "link", "set", kVethA, "up"});
  steps.push_back({"-n", b_, "link", "set", kVethB, "up"});
  for (const auto& step : steps) {
    if (!Ip(step, error)) {
      Destroy();
      return false;
    }
  }
  return true;
}

void NetnsPair::Destroy() {
  std::string output;
  for (std::string* ns : {&a_, &b_}) {
    if (!ns->empty()) RunCommand({ip_, "netns", "delete", *ns}, &output);
    ns->clear();
  }
}

std::vector<std::string> NetnsPair::Launcher(const std::string& ns) const {
  return {ip_, "netns", "exec", ns};
}

int NetnsPair::Exec(const std::string& ns, const std::vector<std::string>& argv,
                    std::string* output) const {
  std::vector<std::string> full = Launcher(ns);
  full.insert(full.end(), argv.begin(), argv.end());
  return RunCommand(full, output);
}

bool NetnsPair::SetLinkUp(bool up, std::string* error) const {
  return Ip({"-n", b_, "link", "set", kVethB, up ? "up" : "down"}, error);
}

NetnsEntry::~NetnsEntry() {
  std::string ignored;
  Leave(&ignored);
}

bool NetnsEntry::Enter(const std::string& ns, std::string* error) {
  if (original_fd_ < 0) {
    original_fd_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original_fd_ < 0) {
      *error = "open /proc/thread-self/ns/net: " + std::string(std::strerror(errno));
      return false;
    }
  }
  const std::string path = std::string(kNetnsDir) + "/" + ns;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "open " + path + ": " + std::strerror(errno);
    return false;
  }
  const bool ok = ::setns(fd, CLONE_NEWNET) == 0;
  if (!ok) *error = "setns(" + path + "): " + std::strerror(errno);
  ::close(fd);
  return ok;
}

bool NetnsEntry::Leave(std::string* error) {
  if (original_fd_ < 0) return true;
  const bool ok = ::setns(original_fd_, CLONE_NEWNET) == 0;
  if (!ok) *error = std::string("setns back: ") + std::strerror(errno);
  ::close(original_fd_);
  original_fd_ = -1;
  return ok;
}

}  // namespace te_test
