// TcpEndpoint: where a peer's TCP data port is. A target advertises every address it
// may be reached at ("10.0.0.1:4000,192.168.1.7:4000"; just the configured one when
// rpc_host is set), because it cannot know which its peers reach: a host with two
// networks has two. The initiator tries those on a subnet of its own first, then the
// rest in the advertised order, and keeps trying first the one that last connected.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "te/status.h"

namespace te {

struct TcpEndpoint {
  struct Address {
    std::string host;
    uint16_t port = 0;
  };
  std::vector<Address> addresses;  // in the order to try
  std::atomic<size_t> preferred{0};

  // Parses the advertised text, ordered for this host's interfaces.
  static Status Parse(const std::string& text, TcpEndpoint* out);
  // The advertised text for hosts (IPv6 ones get brackets).
  static std::string Format(const std::vector<std::string>& hosts, uint16_t port);
  // Indices into addresses, the preferred one first.
  std::vector<size_t> TryOrder() const;
  // "host:port" of the preferred address.
  std::string Describe() const;
};

// The hosts a target advertises: `configured` alone when set, else `fallback` first
// and then every other non-loopback IPv4 address of an interface that is up.
std::vector<std::string> AdvertisedHosts(const std::string& configured,
                                         const std::string& fallback);

}  // namespace te
