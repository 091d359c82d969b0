#include "common/machine.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <sstream>

#ifdef TE_HAVE_NUMA
#include <numa.h>
#endif

namespace te {

std::string ReadMachineId() {
  for (const char* path : {"/etc/machine-id", "/var/lib/dbus/machine-id"}) {
    std::ifstream in(path);
    std::string id;
    if (in >> id && !id.empty()) return id;
  }
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  return std::string("host-") + host;
}

namespace {

// The interface of the IPv4 default route (/proc/net/route), or "" without one.
std::string DefaultRouteInterface() {
  std::ifstream routes("/proc/net/route");
  std::string line;
  std::getline(routes, line);  // the column names
  while (std::getline(routes, line)) {
    std::istringstream fields(line);
    std::string iface, destination, gateway, flags, refcnt, use, metric, mask;
    if (!(fields >> iface >> destination >> gateway >> flags >> refcnt >> use >> metric >> mask)) {
      continue;
    }
    if (destination == "00000000" && mask == "00000000") return iface;
  }
  return "";
}

}  // namespace

std::string DefaultAdvertiseAddress() {
  ifaddrs* list = nullptr;
  std::string first, routed;
  if (::getifaddrs(&list) != 0) return "127.0.0.1";
  const std::string route_iface = DefaultRouteInterface();
  for (ifaddrs* p = list; p; p = p->ifa_next) {
    if (!p->ifa_addr || p->ifa_addr->sa_family != AF_INET) continue;
    if (!(p->ifa_flags & IFF_UP) || (p->ifa_flags & IFF_LOOPBACK)) continue;
    char buf[INET_ADDRSTRLEN];
    auto* sin = reinterpret_cast<sockaddr_in*>(p->ifa_addr);
    if (!::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf))) continue;
    if (first.empty()) first = buf;
    if (routed.empty() && p->ifa_name && route_iface == p->ifa_name) routed = buf;
  }
  ::freeifaddrs(list);
  // The default route's interface is the one other hosts most likely reach.
  if (!routed.empty()) return routed;
  return first.empty() ? "127.0.0.1" : first;
}

int NumaNodeCount() {
#ifdef TE_HAVE_NUMA
  if (numa_available() >= 0) return numa_max_node() + 1;
#endif
  return 1;
}

void RaiseOpenFileLimit() {
  static std::once_flag once;
  std::call_once(once, [] {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
      limit.rlim_cur = limit.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &limit);
    }
  });
}

}  // namespace te
