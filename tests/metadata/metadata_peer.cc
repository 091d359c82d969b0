// te_metadata_peer: one engine in its own process for the metadata tests. It
// publishes its segment through a central metadata backend, registers one buffer
// holding PatternAt(fill, i), prints
//   READY <segment_name> <base> <length>        (or FAILED <status> and exits 3)
// and serves until stdin closes or says EXIT (then it unpublishes, prints BYE and
// exits 0). Tests SIGKILL it to simulate a crash. Flags (all --key=value):
//   --metadata_type --metadata_servers --name --ttl_s --size --fill
//   --connect_timeout_ms --log_level
// Commands: CHECK <seed> -> OK | MISMATCH <offset> (the buffer against a pattern).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "pattern.h"
#include "te/transfer_engine.h"

namespace {

std::map<std::string, std::string> ParseFlags(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) continue;
    const size_t eq = a.find('=');
    flags[a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2)] =
        eq == std::string::npos ? "" : a.substr(eq + 1);
  }
  return flags;
}

std::string Get(const std::map<std::string, std::string>& f, const std::string& k,
                const std::string& fallback) {
  auto it = f.find(k);
  return it == f.end() ? fallback : it->second;
}

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const auto flags = ParseFlags(argc, argv);
  te::Config config;
  config.metadata_type = Get(flags, "metadata_type", "redis");
  config.metadata_servers = Get(flags, "metadata_servers", "");
  config.local_segment_name = Get(flags, "name", "");
  config.rpc_host = "127.0.0.1";
  config.metadata_ttl_s = static_cast<uint32_t>(std::stoul(Get(flags, "ttl_s", "2")));
  config.connect_timeout_ms =
      static_cast<uint32_t>(std::stoul(Get(flags, "connect_timeout_ms", "1000")));
  config.log_level = Get(flags, "log_level", "warning");
  const size_t size = std::stoull(Get(flags, "size", "1048576"));
  const uint64_t fill = std::stoull(Get(flags, "fill", "1"));

  auto engine = std::make_unique<te::TransferEngine>(config);
  if (!engine->available()) {
    Say("FAILED " + engine->status().ToString());
    return 3;
  }
  void* buffer = nullptr;
  te::MemoryOptions options;
  options.permission = te::Permission::kRemoteReadWrite;
  te::Status s = engine->allocateLocalMemory(&buffer, size, options);
  if (s.ok()) {
    te_test::FillPattern(buffer, size, fill);
    s = engine->registerLocalMemory(buffer, size, options);
  }
  if (!s.ok()) {
    Say("FAILED " + s.ToString());
    return 3;
  }
  Say("READY " + engine->getSegmentName() + " " +
      std::to_string(reinterpret_cast<uintptr_t>(buffer)) + " " + std::to_string(size));

  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "EXIT") break;
    if (line.rfind("CHECK ", 0) == 0) {
      const int64_t bad = te_test::PatternMismatch(buffer, size, std::stoull(line.substr(6)));
      Say(bad < 0 ? "OK" : "MISMATCH " + std::to_string(bad));
    } else {
      Say("ERR unknown command");
    }
  }
  engine.reset();  // unpublishes the segment
  Say("BYE");
  return 0;
}
