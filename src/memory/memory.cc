#include "memory/memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>

#include "common/machine.h"
#include "common/strings.h"
#include "memory/device_memory.h"

#ifdef TE_HAVE_NUMA
#include <numa.h>
#include <numaif.h>
#endif

namespace te {

Status ParseCpuLocation(const std::string& location, int* numa_node) {
  if (location.empty() || location == "cpu") {
    *numa_node = 0;
    return Status::OK();
  }
  uint64_t node;
  if (location.rfind("cpu:", 0) != 0 || !ParseUint64(location.substr(4), &node)) {
    if (location.rfind("cuda", 0) == 0) {
      return Status::NotSupported("location '" + location + "' needs a build with -DUSE_CUDA=ON");
    }
    return Status::InvalidArgument("location '" + location + "' is not of the form cpu:N");
  }
  if (node >= static_cast<uint64_t>(NumaNodeCount())) {
    return Status::InvalidArgument("location '" + location + "': this machine has " +
                                   std::to_string(NumaNodeCount()) + " NUMA node(s)");
  }
  *numa_node = static_cast<int>(node);
  return Status::OK();
}

bool IsDeviceLocation(const std::string& location) {
  return location == "cuda" || location.rfind("cuda:", 0) == 0;
}

namespace {
// N of a well-formed "cuda:N", 0 of "cuda"; false for anything else.
bool DeviceIndexOf(std::string_view location, uint64_t* index) {
  constexpr std::string_view kPrefix = "cuda:";
  *index = 0;
  if (location == "cuda") return true;
  return location.substr(0, kPrefix.size()) == kPrefix &&
         ParseUint64(location.substr(kPrefix.size()), index);
}
}  // namespace

Status ParseDeviceLocation(const std::string& location, int* device) {
  if (!DeviceMemoryBuilt()) {
    return Status::NotSupported("location '" + location + "' needs a build with -DUSE_CUDA=ON");
  }
  uint64_t index = 0;
  if (!DeviceIndexOf(location, &index)) {
    return Status::InvalidArgument("location '" + location + "' is not of the form cuda:N");
  }
  const int count = DeviceCount();
  if (count == 0) {
    return Status::NotSupported("location '" + location + "': no CUDA device is available");
  }
  if (index >= static_cast<uint64_t>(count)) {
    return Status::InvalidArgument("location '" + location + "': this machine has " +
                                   std::to_string(count) + " CUDA device(s)");
  }
  *device = static_cast<int>(index);
  return Status::OK();
}

int LocationDevice(const std::string& location) {
  if (!IsDeviceLocation(location)) return kHostMemory;
  uint64_t index = 0;
  // A published location was validated where it was made; anything odd means device 0.
  return DeviceIndexOf(location, &index) && index < (1u << 16) ? static_cast<int>(index) : 0;
}

namespace {
std::mutex g_shm_mu;
std::set<std::string> g_shm_names;  // created by this process, not yet unlinked
}  // namespace

Status CreateSharedMemory(const std::string& name, size_t size, int* out_fd) {
  std::lock_guard<std::mutex> lock(g_shm_mu);
  if (g_shm_names.count(name)) return Status::AlreadyExists("shared memory " + name + " exists");
  int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    ::shm_unlink(name.c_str());
    fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  }
  if (fd < 0) return Status::FromErrno("shm_open " + name, errno);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    ::close(fd);
    ::shm_unlink(name.c_str());
    return Status::FromErrno("ftruncate " + name, err);
  }
  g_shm_names.insert(name);
  *out_fd = fd;
  return Status::OK();
}

void UnlinkSharedMemory(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_shm_mu);
  ::shm_unlink(name.c_str());
  g_shm_names.erase(name);
}

Status AllocateMemory(size_t size, int numa_node, bool shm, Allocation* out) {
  if (size == 0) return Status::InvalidArgument("cannot allocate 0 bytes");
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  if (size > SIZE_MAX - page) return Status::InvalidArgument("allocation size overflows");
  size_t rounded = (size + page - 1) / page * page;
  Allocation a;
  a.size = rounded;
  a.numa_node = numa_node;
  void* addr = MAP_FAILED;
  if (shm) {
    static std::atomic<uint64_t> counter{0};
    a.shm_name = "/te." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    int fd;
    TE_RETURN_IF_ERROR(CreateSharedMemory(a.shm_name, rounded, &fd));
    addr = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = errno;
    ::close(fd);
    if (addr == MAP_FAILED) {
      UnlinkSharedMemory(a.shm_name);
      return Status::ResourceExhausted("mmap of " + std::to_string(rounded) +
                                       " bytes failed: " + std::strerror(err));
    }
  } else {
    addr = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (addr == MAP_FAILED) {
      return Status::ResourceExhausted("mmap of " + std::to_string(rounded) +
                                       " bytes failed: " + std::strerror(errno));
    }
  }
#ifdef TE_HAVE_NUMA
  if (NumaNodeCount() > 1) {
    unsigned long mask = 1UL << numa_node;
    // Best effort: placement is a performance hint, not a correctness requirement.
    ::mbind(addr, rounded, MPOL_PREFERRED, &mask, sizeof(mask) * 8, 0);
  }
#endif
  // Resident from the start, as registered memory is on engines that pin it: a page
  // fault on the data path would land in a transfer's tail latency, and an untouched
  // private page reads as the kernel's shared zero page, which makes transfers from it
  // look faster than any real data can move. After mbind, so pages land where asked.
  // A full /dev/shm or memory cgroup shows here as an error, not later as SIGBUS.
  if (::madvise(addr, rounded, MADV_POPULATE_WRITE) != 0) {
    const int err = errno;
    if (err != EINVAL) {
      a.addr = addr;
      FreeMemory(a);
      return Status::ResourceExhausted("cannot make " + std::to_string(rounded) +
                                       " bytes resident: " + std::strerror(err));
    }
    // Kernels before 5.14; touching shared memory could fault, so it stays lazy.
    if (!shm) {
      for (size_t off = 0; off < rounded; off += page) static_cast<volatile char*>(addr)[off] = 0;
    }
  }
  a.addr = addr;
  *out = std::move(a);
  return Status::OK();
}

Status AllocateDeviceMemory(size_t size, int device, Allocation* out) {
  if (size == 0) return Status::InvalidArgument("cannot allocate 0 bytes");
  Allocation a;
  a.size = size;
  a.device = device;
  TE_RETURN_IF_ERROR(DeviceAllocate(device, size, &a.addr));
  *out = std::move(a);
  return Status::OK();
}

void FreeMemory(const Allocation& a) {
  if (a.device != kHostMemory) {
    DeviceFree(a.addr);
    return;
  }
  if (a.addr) ::munmap(a.addr, a.size);
  if (!a.shm_name.empty()) UnlinkSharedMemory(a.shm_name);
}

int NumaNodeOf(const void* addr) {
#ifdef TE_HAVE_NUMA
  if (NumaNodeCount() > 1) {
    int node = -1;
    void* page = const_cast<void*>(addr);
    if (numa_move_pages(0, 1, &page, nullptr, &node, 0) == 0 && node >= 0) return node;
  }
#endif
  (void)addr;
  return 0;
}

}  // namespace te
