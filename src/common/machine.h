// Facts about the host this process runs on.
#pragma once

#include <string>

namespace te {

// Contents of /etc/machine-id (or /var/lib/dbus/machine-id); the hostname if neither.
std::string ReadMachineId();
// First non-loopback IPv4 address of an interface that is up; "127.0.0.1" if none.
std::string DefaultAdvertiseAddress();
// Number of NUMA nodes with memory (1 without libnuma).
int NumaNodeCount();

}  // namespace te
