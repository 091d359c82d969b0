// Device (GPU) memory behind one seam. A -DUSE_CUDA=ON build links
// device_memory_cuda.cc (the CUDA runtime); every other build links
// device_memory_none.cc, where there is no device and every operation is NotSupported.
// Nothing else in the engine names CUDA, so the rest compiles the same either way and
// a build without CUDA behaves as before: no buffer is ever on a device there.
//
// Copies into or out of device memory must go through this seam: a plain memcpy,
// process_vm_readv or shared-memory mapping of a device address faults.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "te/status.h"

namespace te {

// What DeviceOf reports for host memory (pageable or pinned).
inline constexpr int kHostMemory = -1;

// True when this build has device support (-DUSE_CUDA=ON).
bool DeviceMemoryBuilt();
// Devices usable now; 0 without device support or without a working driver.
int DeviceCount();

// Device memory from the device allocator (never managed memory).
Status DeviceAllocate(int device, size_t size, void** out);
void DeviceFree(void* addr);
// The device holding addr, or kHostMemory.
int DeviceOf(const void* addr);

// Copies len bytes between any mix of host and device memory and returns once they
// landed. Host to host is a memmove.
Status CopyMemory(void* dst, const void* src, size_t len);

// Page-locked host memory, which device copies read and write at full speed.
Status AllocatePinned(size_t size, void** out);
void FreePinned(void* addr);

// Sharing device memory with another process on this machine. The exported handle is
// an opaque string for the segment descriptor; it covers [addr, end of addr's
// allocation).
Status ExportDeviceHandle(void* addr, std::string* handle);
struct DeviceMapping {
  void* mapping = nullptr;  // what CloseDeviceHandle takes
  char* addr = nullptr;     // the exported address, in this process
};
// Opens a handle exported by another process, on `device` of this process.
Status OpenDeviceHandle(const std::string& handle, int device, DeviceMapping* out);
void CloseDeviceHandle(const DeviceMapping& mapping);

// An ordered queue of asynchronous copies on one device, and a way to wait for them.
class CopyStream {
 public:
  static Status Create(int device, std::unique_ptr<CopyStream>* out);
  virtual ~CopyStream() = default;
  // Queues a copy; src and dst must stay valid until Wait returns.
  virtual Status CopyAsync(void* dst, const void* src, size_t len) = 0;
  // Returns once every queued copy is done; the first failure among them.
  virtual Status Wait() = 0;
};

}  // namespace te
