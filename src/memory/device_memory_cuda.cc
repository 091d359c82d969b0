// The device seam of a -DUSE_CUDA=ON build, on the CUDA runtime API alone (no
// kernels). The driver API is reached only through the runtime's entry-point lookup,
// so the library never links libcuda and loads on machines without a driver, where
// DeviceCount() is 0.
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>

#include "common/strings.h"
#include "memory/device_memory.h"

namespace te {
namespace {

Status CudaStatus(const std::string& what, cudaError_t err) {
  if (err == cudaSuccess) return Status::OK();
  // Sticky errors stay; a plain one is consumed so it is not reported by a later call.
  cudaGetLastError();
  std::string text = what + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
  return err == cudaErrorMemoryAllocation ? Status::ResourceExhausted(text) : Status::IoError(text);
}

Status SetDevice(int device) {
  return CudaStatus("cudaSetDevice(" + std::to_string(device) + ")", cudaSetDevice(device));
}

// The start of the allocation holding addr: IPC handles name whole allocations, so
// a buffer registered inside one travels as (handle, offset).
Status AllocationBase(void* addr, char** base) {
  static PFN_cuMemGetAddressRange_v3020 get_range = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &fn, 3020, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      fn = nullptr;
    }
    return reinterpret_cast<PFN_cuMemGetAddressRange_v3020>(fn);
  }();
  if (!get_range) return Status::NotSupported("the driver lacks cuMemGetAddressRange");
  CUdeviceptr start = 0;
  size_t size = 0;
  if (get_range(&start, &size, reinterpret_cast<CUdeviceptr>(addr)) != CUDA_SUCCESS) {
    return Status::InvalidArgument("not device memory of a live allocation");
  }
  *base = reinterpret_cast<char*>(start);
  return Status::OK();
}

class CudaCopyStream : public CopyStream {
 public:
  explicit CudaCopyStream(cudaStream_t stream) : stream_(stream) {}
  ~CudaCopyStream() override { cudaStreamDestroy(stream_); }

  Status CopyAsync(void* dst, const void* src, size_t len) override {
    return CudaStatus("cudaMemcpyAsync",
                      cudaMemcpyAsync(dst, src, len, cudaMemcpyDefault, stream_));
  }
  Status Wait() override {
    return CudaStatus("cudaStreamSynchronize", cudaStreamSynchronize(stream_));
  }

 private:
  cudaStream_t stream_;
};

}  // namespace

bool DeviceMemoryBuilt() { return true; }

int DeviceCount() {
  // No driver or no device is an error here, which means none: CPU-only machines run
  // a CUDA build like any other.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

Status DeviceAllocate(int device, size_t size, void** out) {
  TE_RETURN_IF_ERROR(SetDevice(device));
  return CudaStatus(
      "cudaMalloc of " + std::to_string(size) + " bytes on cuda:" + std::to_string(device),
      cudaMalloc(out, size));
}

void DeviceFree(void* addr) { cudaFree(addr); }

int DeviceOf(const void* addr) {
  if (DeviceCount() == 0) return kHostMemory;
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, addr) != cudaSuccess) {
    cudaGetLastError();
    return kHostMemory;
  }
  // Managed memory is reachable from the host, so it is treated as host memory.
  return attributes.type == cudaMemoryTypeDevice ? attributes.device : kHostMemory;
}

Status CopyMemory(void* dst, const void* src, size_t len) {
  if (DeviceCount() == 0) {
    // Without a driver every call fails, host to host included.
    std::memmove(dst, src, len);
    return Status::OK();
  }
  return CudaStatus("cudaMemcpy", cudaMemcpy(dst, src, len, cudaMemcpyDefault));
}

Status AllocatePinned(size_t size, void** out) {
  // Portable: any thread's current device may copy through it.
  return CudaStatus("cudaHostAlloc of " + std::to_string(size) + " bytes",
                    cudaHostAlloc(out, size, cudaHostAllocPortable));
}

void FreePinned(void* addr) { cudaFreeHost(addr); }

Status ExportDeviceHandle(void* addr, std::string* handle) {
  const int device = DeviceOf(addr);
  if (device == kHostMemory) return Status::InvalidArgument("not device memory");
  TE_RETURN_IF_ERROR(SetDevice(device));
  char* base = nullptr;
  TE_RETURN_IF_ERROR(AllocationBase(addr, &base));
  cudaIpcMemHandle_t h;
  TE_RETURN_IF_ERROR(CudaStatus("cudaIpcGetMemHandle", cudaIpcGetMemHandle(&h, base)));
  std::string text;
  text.reserve(sizeof(h.reserved) * 2 + 24);
  for (char c : h.reserved) {
    char hex[3];
    std::snprintf(hex, sizeof(hex), "%02x", static_cast<unsigned char>(c));
    text += hex;
  }
  *handle = text + "+" + std::to_string(static_cast<char*>(addr) - base);
  return Status::OK();
}

Status OpenDeviceHandle(const std::string& handle, int device, DeviceMapping* out) {
  cudaIpcMemHandle_t h;
  const size_t hex_len = sizeof(h.reserved) * 2;
  uint64_t offset = 0;
  if (handle.size() <= hex_len || handle[hex_len] != '+' ||
      !ParseUint64(std::string_view(handle).substr(hex_len + 1), &offset)) {
    return Status::ProtocolError("malformed device handle");
  }
  for (size_t i = 0; i < sizeof(h.reserved); ++i) {
    unsigned value = 0;
    if (std::sscanf(handle.c_str() + 2 * i, "%2x", &value) != 1) {
      return Status::ProtocolError("malformed device handle");
    }
    h.reserved[i] = static_cast<char>(value);
  }
  TE_RETURN_IF_ERROR(SetDevice(device));
  void* mapping = nullptr;
  TE_RETURN_IF_ERROR(CudaStatus("cudaIpcOpenMemHandle",
                                cudaIpcOpenMemHandle(&mapping, h, cudaIpcMemLazyEnablePeerAccess)));
  out->mapping = mapping;
  out->addr = static_cast<char*>(mapping) + offset;
  return Status::OK();
}

void CloseDeviceHandle(const DeviceMapping& mapping) {
  if (mapping.mapping) cudaIpcCloseMemHandle(mapping.mapping);
}

Status CopyStream::Create(int device, std::unique_ptr<CopyStream>* out) {
  TE_RETURN_IF_ERROR(SetDevice(device));
  cudaStream_t stream;
  // Non-blocking: copies on it never wait for (or hold up) the legacy default stream
  // other threads' cudaMemcpy calls use.
  TE_RETURN_IF_ERROR(CudaStatus("cudaStreamCreateWithFlags",
                                cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)));
  *out = std::make_unique<CudaCopyStream>(stream);
  return Status::OK();
}

}  // namespace te
