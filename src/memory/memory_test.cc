#include "memory/memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/machine.h"
#include "memory/device_memory.h"

namespace te {
namespace {

size_t PageSize() { return static_cast<size_t>(::sysconf(_SC_PAGESIZE)); }

bool ShmExists(const std::string& name) {
  // POSIX shared-memory objects live under /dev/shm on Linux, named without the '/'.
  std::string path = "/dev/shm/" + name.substr(1);
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

TEST(MemoryTest, AnonymousAllocation) {
  Allocation a;
  Status s = AllocateMemory(3 * PageSize(), 0, /*shm=*/false, &a);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_NE(a.addr, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.addr) % PageSize(), 0u);
  EXPECT_EQ(a.size, 3 * PageSize());
  EXPECT_EQ(a.numa_node, 0);
  EXPECT_TRUE(a.shm_name.empty());
  auto* p = static_cast<unsigned char*>(a.addr);
  EXPECT_EQ(p[0], 0);  // fresh anonymous memory is zeroed
  EXPECT_EQ(p[a.size - 1], 0);
  std::memset(a.addr, 0xab, a.size);
  EXPECT_EQ(p[a.size - 1], 0xab);
  FreeMemory(a);
}

// Untouched pages would fault on the data path and, private ones, read as the shared
// zero page (which once made WRITEs from them look faster than memcpy).
TEST(MemoryTest, AllocationsAreResidentFromTheStart) {
  for (bool shm : {false, true}) {
    SCOPED_TRACE(shm ? "shm" : "anonymous");
    Allocation a;
    ASSERT_TRUE(AllocateMemory(64 * PageSize(), 0, shm, &a).ok());
    std::vector<unsigned char> resident(a.size / PageSize());
    ASSERT_EQ(::mincore(a.addr, a.size, resident.data()), 0) << std::strerror(errno);
    for (size_t i = 0; i < resident.size(); ++i) EXPECT_TRUE(resident[i] & 1) << "page " << i;
    FreeMemory(a);
  }
}

TEST(MemoryTest, RoundsUpToPages) {
  const size_t page = PageSize();
  const std::pair<size_t, size_t> cases[] = {
      {1, page}, {page - 1, page}, {page, page}, {page + 1, 2 * page}, {10 * page + 7, 11 * page}};
  for (auto [request, expected] : cases) {
    SCOPED_TRACE(request);
    Allocation a;
    ASSERT_TRUE(AllocateMemory(request, 0, false, &a).ok());
    EXPECT_EQ(a.size, expected);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.addr) % page, 0u);
    static_cast<char*>(a.addr)[a.size - 1] = 1;  // the whole rounded size is usable
    FreeMemory(a);
  }
}

TEST(MemoryTest, RejectsBadSizes) {
  Allocation a;
  a.addr = reinterpret_cast<void*>(0x1234);
  EXPECT_EQ(AllocateMemory(0, 0, false, &a).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(AllocateMemory(0, 0, true, &a).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(AllocateMemory(SIZE_MAX, 0, false, &a).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(AllocateMemory(SIZE_MAX - PageSize() + 2, 0, false, &a).code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(a.addr, reinterpret_cast<void*>(0x1234));  // untouched on failure
}

TEST(MemoryTest, HugeAllocationFailsCleanly) {
  // Far beyond any address space: mmap refuses; the error is reported, not thrown.
  Allocation a;
  Status s = AllocateMemory(size_t{1} << 62, 0, false, &a);
  EXPECT_EQ(s.code(), Status::Code::kResourceExhausted) << s.ToString();
  EXPECT_EQ(a.addr, nullptr);
}

TEST(MemoryTest, SharedMemoryAllocation) {
  Allocation a;
  Status s = AllocateMemory(PageSize() + 1, 0, /*shm=*/true, &a);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_NE(a.addr, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.addr) % PageSize(), 0u);
  EXPECT_EQ(a.size, 2 * PageSize());
  ASSERT_FALSE(a.shm_name.empty());
  const std::string prefix = "/te." + std::to_string(::getpid()) + ".";
  EXPECT_EQ(a.shm_name.rfind(prefix, 0), 0u) << a.shm_name;
  EXPECT_TRUE(ShmExists(a.shm_name)) << a.shm_name;

  std::string path = "/dev/shm/" + a.shm_name.substr(1);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), a.size);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::memset(a.addr, 0x5a, a.size);
  EXPECT_EQ(static_cast<unsigned char*>(a.addr)[a.size - 1], 0x5a);
  FreeMemory(a);
  EXPECT_FALSE(ShmExists(a.shm_name)) << a.shm_name;
}

TEST(MemoryTest, SharedMemoryNamesAreUnique) {
  Allocation a, b;
  ASSERT_TRUE(AllocateMemory(1, 0, true, &a).ok());
  ASSERT_TRUE(AllocateMemory(1, 0, true, &b).ok());
  EXPECT_NE(a.shm_name, b.shm_name);
  EXPECT_NE(a.addr, b.addr);
  EXPECT_TRUE(ShmExists(a.shm_name));
  EXPECT_TRUE(ShmExists(b.shm_name));
  FreeMemory(a);
  EXPECT_FALSE(ShmExists(a.shm_name));
  EXPECT_TRUE(ShmExists(b.shm_name));
  FreeMemory(b);
  EXPECT_FALSE(ShmExists(b.shm_name));
}

TEST(MemoryTest, CreateSharedMemory) {
  const std::string name = "/te." + std::to_string(::getpid()) + ".memtest";
  int fd = -1;
  ASSERT_TRUE(CreateSharedMemory(name, 3 * PageSize(), &fd).ok());
  ASSERT_GE(fd, 0);
  struct stat st;
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), 3 * PageSize());
  ::close(fd);
  EXPECT_TRUE(ShmExists(name));
  // This process already has it: refused, and left alone.
  int again = -1;
  EXPECT_EQ(CreateSharedMemory(name, PageSize(), &again).code(), Status::Code::kAlreadyExists);
  EXPECT_TRUE(ShmExists(name));
  UnlinkSharedMemory(name);
  EXPECT_FALSE(ShmExists(name));
  // Once unlinked, the name can be created again.
  ASSERT_TRUE(CreateSharedMemory(name, PageSize(), &fd).ok());
  ::close(fd);
  UnlinkSharedMemory(name);
}

TEST(MemoryTest, CreateSharedMemoryReplacesStaleObject) {
  // An object of the same name that this process did not create is a leftover of a
  // dead process that had our pid; it is replaced.
  const std::string name = "/te." + std::to_string(::getpid()) + ".memstale";
  int stale = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(stale, 0);
  ASSERT_EQ(::ftruncate(stale, 12345), 0);
  ::close(stale);
  int fd = -1;
  Status s = CreateSharedMemory(name, PageSize(), &fd);
  ASSERT_TRUE(s.ok()) << s.ToString();
  struct stat st;
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), PageSize());
  ::close(fd);
  UnlinkSharedMemory(name);
  EXPECT_FALSE(ShmExists(name));
}

// The process's file-backed mappings (shared memory included), to see that a call
// unmapped nothing. Anonymous ones are left out: the allocator (and a sanitizer's
// shadow) map and unmap those on their own.
std::string FileMappings() {
  std::ifstream in("/proc/self/maps");
  std::string map, line;
  while (std::getline(in, line)) {
    if (line.find(" /") != std::string::npos) map += line + '\n';
  }
  return map;
}

// Whether [addr, addr + length) is mapped (mincore fails with ENOMEM where not).
bool Mapped(void* addr, size_t length) {
  std::vector<unsigned char> pages((length + PageSize() - 1) / PageSize());
  return ::mincore(addr, length, pages.data()) == 0;
}

TEST(MemoryTest, FreeEmptyAllocationIsHarmless) {
  Allocation live;
  ASSERT_TRUE(AllocateMemory(PageSize(), 0, false, &live).ok());
  std::memset(live.addr, 0x5a, PageSize());
  const std::string before = FileMappings();
  Allocation empty;
  FreeMemory(empty);
  // Nothing was unmapped (a free of address 0 with some size, or of a stale range,
  // would show here), and the live allocation is intact.
  EXPECT_EQ(FileMappings(), before);
  EXPECT_TRUE(Mapped(live.addr, PageSize()));
  EXPECT_EQ(static_cast<unsigned char*>(live.addr)[PageSize() - 1], 0x5a);
  FreeMemory(live);
}

TEST(MemoryTest, NumaNodeOf) {
  Allocation a;
  ASSERT_TRUE(AllocateMemory(PageSize(), 0, false, &a).ok());
  static_cast<char*>(a.addr)[0] = 1;  // fault the page in
  int node = NumaNodeOf(a.addr);
  EXPECT_GE(node, 0);
  EXPECT_LT(node, NumaNodeCount());
  FreeMemory(a);
}

TEST(ParseCpuLocationTest, Valid) {
  int node = -1;
  ASSERT_TRUE(ParseCpuLocation("", &node).ok());
  EXPECT_EQ(node, 0);
  node = -1;
  ASSERT_TRUE(ParseCpuLocation("cpu", &node).ok());
  EXPECT_EQ(node, 0);
  node = -1;
  ASSERT_TRUE(ParseCpuLocation("cpu:0", &node).ok());
  EXPECT_EQ(node, 0);
  const int last = NumaNodeCount() - 1;
  ASSERT_TRUE(ParseCpuLocation("cpu:" + std::to_string(last), &node).ok());
  EXPECT_EQ(node, last);
}

TEST(ParseCpuLocationTest, NodeOutOfRange) {
  int node = 7;
  Status s = ParseCpuLocation("cpu:" + std::to_string(NumaNodeCount()), &node);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("NUMA"), std::string::npos) << s.message();
  EXPECT_EQ(ParseCpuLocation("cpu:99", &node).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(ParseCpuLocation("cpu:18446744073709551615", &node).code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(node, 7);
}

TEST(ParseCpuLocationTest, CudaNotSupported) {
  int node;
  for (const char* loc : {"cuda:0", "cuda:7", "cuda"}) {
    SCOPED_TRACE(loc);
    Status s = ParseCpuLocation(loc, &node);
    EXPECT_EQ(s.code(), Status::Code::kNotSupported);
    EXPECT_NE(s.message().find("USE_CUDA"), std::string::npos) << s.message();
  }
}

TEST(DeviceLocationTest, RecognizesCudaLocations) {
  for (const char* loc : {"cuda", "cuda:0", "cuda:12", "cuda:x"})
    EXPECT_TRUE(IsDeviceLocation(loc));
  for (const char* loc : {"", "cpu:0", "cuda0", "CUDA:0", "gpu:0", " cuda:0"}) {
    EXPECT_FALSE(IsDeviceLocation(loc)) << loc;
  }
  EXPECT_EQ(LocationDevice("cuda:12"), 12);
  EXPECT_EQ(LocationDevice("cuda"), 0);
  EXPECT_EQ(LocationDevice("cpu:1"), kHostMemory);
  EXPECT_EQ(LocationDevice(""), kHostMemory);
}

// Without CUDA in the build the answer names the missing option; with it but no
// device (CI, this machine) it says there is none; malformed is malformed either way
// once the build can have devices.
TEST(DeviceLocationTest, ParseFollowsBuildAndDevices) {
  int device = -5;
  for (const char* loc : {"cuda:0", "cuda", "cuda:99999"}) {
    Status s = ParseDeviceLocation(loc, &device);
    if (!DeviceMemoryBuilt()) {
      EXPECT_EQ(s.code(), Status::Code::kNotSupported) << loc;
      EXPECT_NE(s.message().find("USE_CUDA"), std::string::npos) << s.message();
    } else if (DeviceCount() == 0) {
      EXPECT_EQ(s.code(), Status::Code::kNotSupported) << loc;
      EXPECT_NE(s.message().find("no CUDA device"), std::string::npos) << s.message();
    }
  }
  if (DeviceMemoryBuilt()) {
    for (const char* loc : {"cuda:", "cuda:x", "cuda:-1", "cuda:0:1", "cuda: 0"}) {
      EXPECT_EQ(ParseDeviceLocation(loc, &device).code(), Status::Code::kInvalidArgument) << loc;
    }
    const std::string beyond = "cuda:" + std::to_string(DeviceCount());
    if (DeviceCount() > 0) {
      EXPECT_EQ(ParseDeviceLocation(beyond, &device).code(), Status::Code::kInvalidArgument);
      ASSERT_TRUE(ParseDeviceLocation("cuda:0", &device).ok());
      EXPECT_EQ(device, 0);
    }
  }
  EXPECT_EQ(device, DeviceCount() > 0 ? 0 : -5) << "failures leave the output alone";
}

TEST(ParseCpuLocationTest, Junk) {
  int node;
  for (const char* loc : {"cpu:", "cpu:x", "cpu:-1", "cpu:+1", "cpu: 0", "cpu:0 ", "cpu0", "CPU:0",
                          "gpu:0", "numa:0", ":0", "0", "cpu:0:1", " cpu"}) {
    SCOPED_TRACE(loc);
    EXPECT_EQ(ParseCpuLocation(loc, &node).code(), Status::Code::kInvalidArgument);
  }
}

}  // namespace
}  // namespace te
