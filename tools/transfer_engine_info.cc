// transfer_engine_info: what this host can do for the engine, like ucx_info -d. The
// configuration comes from the TE_* environment (te::Config::FromEnv).
//   transfer_engine_info [--json]
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "info/host_probes.h"

int main(int argc, char** argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) {
      json = true;
    } else {
      std::fprintf(stderr, "error: unknown argument '%s' (usage: %s [--json])\n", argv[i], argv[0]);
      return 1;
    }
  }
  te::Config config;
  te::Status s = te::Config::FromEnv(&config);
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
    return 1;
  }
  const std::vector<te::Probe> probes = te::ProbeHost(config);
  const std::vector<te::TransportReport> transports = te::ReportTransports(probes);
  if (json) {
    nlohmann::json out = {{"transports", nlohmann::json::array()},
                          {"probes", nlohmann::json::array()}};
    for (const te::TransportReport& t : transports) {
      out["transports"].push_back({{"name", t.name},
                                   {"reach", t.reach},
                                   {"built", t.built},
                                   {"on_by_default", t.on_by_default},
                                   {"usable", t.usable},
                                   {"detail", t.detail}});
    }
    for (const te::Probe& p : probes) {
      out["probes"].push_back({{"name", p.name}, {"usable", p.usable}, {"detail", p.detail}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("transports (in the engine's order of preference)\n");
  for (const te::TransportReport& t : transports) {
    const char* state = !t.built ? "not built" : t.usable ? "usable" : "not usable";
    std::printf("  %-10s %-13s %-11s %-10s %s\n", t.name.c_str(), t.reach.c_str(), state,
                !t.built          ? ""
                : t.on_by_default ? "default"
                                  : "on request",
                t.detail.c_str());
  }
  std::printf("host\n");
  for (const te::Probe& p : probes) {
    std::printf("  %-16s %-3s %s\n", p.name.c_str(), p.usable ? "yes" : "no", p.detail.c_str());
  }
  return 0;
}
