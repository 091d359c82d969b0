// The device seam of a build without CUDA: there is no device, so no buffer is ever
// device memory and the engine's device paths are never taken.
#include <cstring>

#include "memory/device_memory.h"

namespace te {
namespace {
Status NotBuilt() { return Status::NotSupported("device memory needs a build with -DUSE_CUDA=ON"); }
}  // namespace

bool DeviceMemoryBuilt() { return false; }
int DeviceCount() { return 0; }

Status DeviceAllocate(int, size_t, void**) { return NotBuilt(); }
void DeviceFree(void*) {}
int DeviceOf(const void*) { return kHostMemory; }

Status CopyMemory(void* dst, const void* src, size_t len) {
  std::memmove(dst, src, len);
  return Status::OK();
}

Status AllocatePinned(size_t, void**) { return NotBuilt(); }
void FreePinned(void*) {}

Status ExportDeviceHandle(void*, std::string*) { return NotBuilt(); }
Status OpenDeviceHandle(const std::string&, int, DeviceMapping*) { return NotBuilt(); }
void CloseDeviceHandle(const DeviceMapping&) {}

Status CopyStream::Create(int, std::unique_ptr<CopyStream>*) { return NotBuilt(); }

}  // namespace te
