#include "transport/tcp/tcp_endpoint.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>

#include <algorithm>

#include "common/strings.h"

namespace te {
namespace {

struct Subnet {
  uint32_t addr;  // host byte order
  uint32_t mask;
};

std::vector<Subnet> LocalSubnets() {
  std::vector<Subnet> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || !i->ifa_netmask || i->ifa_addr->sa_family != AF_INET) continue;
    if (!(i->ifa_flags & IFF_UP)) continue;
    const auto* a = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    const auto* m = reinterpret_cast<const sockaddr_in*>(i->ifa_netmask);
    out.push_back({ntohl(a->sin_addr.s_addr), ntohl(m->sin_addr.s_addr)});
  }
  ::freeifaddrs(list);
  return out;
}

bool OnLocalSubnet(const std::string& host, const std::vector<Subnet>& subnets) {
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) != 1) return false;
  const uint32_t addr = ntohl(a.s_addr);
  return std::any_of(subnets.begin(), subnets.end(),
                     [addr](const Subnet& s) { return (addr & s.mask) == (s.addr & s.mask); });
}

}  // namespace

Status TcpEndpoint::Parse(const std::string& text, TcpEndpoint* out) {
  std::vector<Address> parsed;
  for (const std::string& item : SplitList(text, ',')) {
    Address a;
    if (!ParseHostPort(item, &a.host, &a.port) || a.port == 0) {
      return Status::ProtocolError("bad tcp endpoint '" + text + "'");
    }
    parsed.push_back(std::move(a));
  }
  if (parsed.empty()) return Status::ProtocolError("empty tcp endpoint");
  const std::vector<Subnet> subnets = LocalSubnets();
  std::stable_partition(parsed.begin(), parsed.end(),
                        [&](const Address& a) { return OnLocalSubnet(a.host, subnets); });
  out->addresses = std::move(parsed);
  out->preferred = 0;
  return Status::OK();
}

std::string TcpEndpoint::Format(const std::vector<std::string>& hosts, uint16_t port) {
  std::string out;
  for (const std::string& host : hosts) {
    if (!out.empty()) out += ',';
    out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
    out += ":" + std::to_string(port);
  }
  return out;
}

std::vector<size_t> TcpEndpoint::TryOrder() const {
  const size_t first = preferred.load(std::memory_order_relaxed);
  std::vector<size_t> order{first};
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (i != first) order.push_back(i);
  }
  return order;
}

std::string TcpEndpoint::Describe() const {
  const Address& a = addresses[preferred.load(std::memory_order_relaxed)];
  return a.host + ":" + std::to_string(a.port);
}

std::vector<std::string> AdvertisedHosts(const std::string& configured,
                                         const std::string& fallback) {
  if (!configured.empty()) return {configured};
  std::vector<std::string> hosts{fallback};
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return hosts;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    if (!(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    char text[INET_ADDRSTRLEN];
    const auto* a = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if (!::inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text))) continue;
    if (std::find(hosts.begin(), hosts.end(), text) == hosts.end()) hosts.push_back(text);
  }
  ::freeifaddrs(list);
  return hosts;
}

}  // namespace te
