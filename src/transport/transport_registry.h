// The table of transports: every transport this code base knows, one row each, in
// the engine's order of preference. Config::Validate, Config::DefaultTransports, the
// engine, the benchmark's --transport and the Python package all read it, so adding a
// transport is one folder, one row in transport_registry.cc and one CMake line.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "te/status.h"
#include "transport/transport.h"

namespace te {

// Which peers a transport can reach.
enum class TransportReach {
  kSameProcess,  // only this engine's own segment
  kSameHost,     // engines on this machine: they copy into each other's memory, so
                 // the engine shares its pin table when one of these is enabled
  kAnyHost,      // engines anywhere the network reaches
};

const char* TransportReachName(TransportReach reach);  // "same process", ...

struct TransportEntry {
  const char* name;
  TransportReach reach;
  bool built;                              // compiled into this build (and usable in principle)
  bool enabled_by_default;                 // in Config::DefaultTransports when built
  std::unique_ptr<Transport> (*create)();  // null when not built
  // The key this transport's per-buffer data had in descriptors written before
  // transports owned it (see LegacyBufferKeys); null when it had none.
  const char* legacy_buffer_key;
};

// Every row, built or not, in order of preference.
const std::vector<TransportEntry>& TransportTable();
// The row named `name`, or nullptr when no transport has that name.
const TransportEntry* FindTransport(const std::string& name);
// The built transports' names, comma-separated, e.g. "local, shm, cma, tcp".
std::string BuiltTransportNames();
// OK when `name` is a transport of this build; otherwise NotSupported, in one line
// that names it (and says whether it is unknown or just not built here).
Status CheckTransportBuilt(const std::string& name);
// A new, unstarted transport; the CheckTransportBuilt error when there is none.
Status CreateTransport(const std::string& name, std::unique_ptr<Transport>* out);

}  // namespace te
