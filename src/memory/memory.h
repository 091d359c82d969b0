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
  int device = -1;       // a device (GPU) allocation when >= 0: no pages, no shm
  std::string shm_name;  // "/te.<pid>.<n>" for shared memory, else empty
};

// Parses "cpu:N" (or "cpu" for node 0); N must be an existing NUMA node.
Status ParseCpuLocation(const std::string& location, int* numa_node);
// True for locations naming device memory ("cuda" or "cuda:N"); says nothing about
// whether the device exists.
bool IsDeviceLocation(const std::string& location);
// "cuda:N" (or "cuda" for device 0) to N, checked against DeviceCount():
// kNotSupported without device support or without any device, kInvalidArgument for
// a malformed location or N beyond the devices there are.
Status ParseDeviceLocation(const std::string& location, int* device);
// The device of a location already validated (a registered or published buffer's):
// N for "cuda:N", kHostMemory (-1) for anything else. Cheap enough per request.
int LocationDevice(const std::string& location);
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
// Device memory on `device`; size is kept as asked (devices have their own granularity).
Status AllocateDeviceMemory(size_t size, int device, Allocation* out);
// Unmaps and, for shared memory, unlinks the object; frees device memory.
void FreeMemory(const Allocation& a);
// NUMA node the page at addr lives on; 0 when unknown.
int NumaNodeOf(const void* addr);

}  // namespace te
