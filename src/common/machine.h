// Facts about the host this process runs on.
#pragma once

#include <cstdint>
#include <string>

namespace te {

// Contents of /etc/machine-id (or /var/lib/dbus/machine-id); the hostname if neither.
std::string ReadMachineId();
// The IPv4 address of the default route's interface; without a default route, the
// first non-loopback IPv4 address of an interface that is up; "127.0.0.1" if none.
std::string DefaultAdvertiseAddress();
// Raises this process's soft open-file limit to its hard limit, once: an engine with
// hundreds of peers needs more sockets than the usual soft 1024.
void RaiseOpenFileLimit();
// Number of NUMA nodes with memory (1 without libnuma).
int NumaNodeCount();

}  // namespace te
