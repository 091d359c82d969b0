// Page-aligned DRAM for segment buffers: anonymous or POSIX shared memory, placed on a
// NUMA node.
#pragma once

#include <cstddef>
#include <string>

#include "te/status.h"

namespace te {

struct Allocation {
  void* addr = nullptr;
  size_t size = 0;  // rounded up to whole pages
  int numa_node = 0;
  std::string shm_name;  // "/te.<pid>.<n>" for shared memory, else empty
};

// Parses "cpu:N" (or "cpu" for node 0); N must be an existing NUMA node.
Status ParseCpuLocation(const std::string& location, int* numa_node);
// Allocates size bytes; shm places them in a POSIX shared-memory object named after
// this process so stale objects of dead processes can be told apart.
Status AllocateMemory(size_t size, int numa_node, bool shm, Allocation* out);
// Creates a POSIX shared-memory object of `size` bytes for this process and returns
// its descriptor. kAlreadyExists if this process created the name and has not
// unlinked it. Our names embed our pid, so any other existing object of that name is
// a leftover of a dead process that had our pid: it is replaced.
Status CreateSharedMemory(const std::string& name, size_t size, int* fd);
// Unlinks an object made by CreateSharedMemory.
void UnlinkSharedMemory(const std::string& name);
// Unmaps and, for shared memory, unlinks the object.
void FreeMemory(const Allocation& a);
// NUMA node the page at addr lives on; 0 when unknown.
int NumaNodeOf(const void* addr);

}  // namespace te
