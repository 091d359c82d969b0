// In-process tests of te::TransferEngine through its public API: one engine talking
// to itself (local transport), and two engines in this process talking over loopback
// TCP. Both engines live in this process, so the target's memory is checked directly.
// Every wait is bounded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/refusing_port_test.h"
#include "common/socket.h"
#include "memory/device_memory.h"
#include "metadata/segment_descriptor.h"
#include "rpc/handshake.h"
#include "rpc/wire.h"
#include "te/transfer_engine.h"

namespace te {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;

#define ASSERT_OK(expr)                                                                   \
  do {                                                                                    \
    ::te::Status assert_ok_status_ = (expr);                                              \
    ASSERT_TRUE(assert_ok_status_.ok()) << #expr << ": " << assert_ok_status_.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                                                   \
  do {                                                                                    \
    ::te::Status expect_ok_status_ = (expr);                                              \
    EXPECT_TRUE(expect_ok_status_.ok()) << #expr << ": " << expect_ok_status_.ToString(); \
  } while (0)

Config TestConfig() {
  Config c;
  c.rpc_host = "127.0.0.1";
  c.machine_id = "engine-test-machine";
  // Same-host transports have their own tests; these exercise TCP between engines.
  c.transports = {"local", "tcp"};
  c.transfer_timeout_ms = 3000;
  c.connect_timeout_ms = 1000;
  c.log_level = "error";  // expected failures would otherwise log warnings
  return c;
}

// Deterministic bytes, different for every seed.
void Fill(void* p, size_t n, uint32_t seed) {
  auto* b = static_cast<uint8_t*>(p);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    b[i] = static_cast<uint8_t>(x >> 16);
  }
}

// Index of the first differing byte, or -1.
int64_t FirstMismatch(const void* a, const void* b, size_t n) {
  if (std::memcmp(a, b, n) == 0) return -1;
  auto* x = static_cast<const uint8_t*>(a);
  auto* y = static_cast<const uint8_t*>(b);
  for (size_t i = 0; i < n; ++i) {
    if (x[i] != y[i]) return static_cast<int64_t>(i);
  }
  return -1;
}

bool AllBytes(const void* p, size_t n, uint8_t v) {
  auto* b = static_cast<const uint8_t*>(p);
  return std::all_of(b, b + n, [v](uint8_t x) { return x == v; });
}

uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }
char* At(void* base, uint64_t offset) { return static_cast<char*>(base) + offset; }

// Polls the batch until nothing in it is pending; false when the deadline passes.
bool WaitBatch(TransferEngine& e, BatchID batch, TransferStatus* out,
               std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    Status s = e.getTransferStatus(batch, out);
    if (!s.ok()) {
      ADD_FAILURE() << "getTransferStatus: " << s.ToString();
      return false;
    }
    if (out->state != TransferState::kPending) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(100us);
  }
}

// Runs one request in its own batch and returns the task's final status.
TransferStatus RunOne(TransferEngine& e, Request::OpCode op, void* local, SegmentHandle handle,
                      uint64_t remote, uint64_t length) {
  TransferStatus st;
  st.state = TransferState::kFailed;
  BatchID batch;
  Status s = e.allocateBatch(1, &batch);
  if (!s.ok()) {
    ADD_FAILURE() << "allocateBatch: " << s.ToString();
    return st;
  }
  s = e.submitTransfer(batch, {Request{op, local, handle, remote, length}});
  if (!s.ok()) {
    ADD_FAILURE() << "submitTransfer: " << s.ToString();
    st.error = s.ToString();
  } else if (!WaitBatch(e, batch, &st)) {
    ADD_FAILURE() << "transfer of " << length << " bytes did not finish in time";
  } else {
    EXPECT_OK(e.getTransferStatus(batch, 0, &st));  // the task's own status: no "task 0: "
  }
  EXPECT_OK(e.freeBatch(batch));
  return st;
}

// Engine construction leaves stray TE_* variables alone unless a test sets them.
const char* const kEnvVars[] = {
    "TE_CONFIG",     "TE_METADATA_TYPE",   "TE_METADATA_SERVERS", "TE_LOCAL_SEGMENT",
    "TE_RPC_HOST",   "TE_RPC_PORT",        "TE_TRANSPORTS",       "TE_LOG_LEVEL",
    "TE_MACHINE_ID", "TE_TCP_CONNECTIONS", "TE_SLICE_SIZE",       "TE_TRANSFER_TIMEOUT_MS",
};

// ---- construction ----

TEST(EngineConstructionTest, StartsWithLoopbackConfig) {
  TransferEngine e(TestConfig());
  ASSERT_TRUE(e.available()) << e.status().ToString();
  EXPECT_TRUE(e.status().ok());
  EXPECT_EQ(e.getRpcAddress(), "127.0.0.1");
  EXPECT_NE(e.getRpcPort(), 0);
  EXPECT_EQ(e.getSegmentName(), "127.0.0.1:" + std::to_string(e.getRpcPort()));
  EXPECT_EQ(e.primaryTransport(), "none");
}

TEST(EngineConstructionTest, LocalSegmentNameHostOnly) {
  Config c = TestConfig();
  c.rpc_host = "";
  c.local_segment_name = "127.0.0.1";
  TransferEngine e(c);
  ASSERT_TRUE(e.available()) << e.status().ToString();
  EXPECT_EQ(e.getSegmentName(), "127.0.0.1:" + std::to_string(e.getRpcPort()));
  EXPECT_EQ(e.getRpcAddress(), "127.0.0.1");
}

TEST(EngineConstructionTest, BadConfig) {
  Config c = TestConfig();
  c.log_level = "chatty";
  TransferEngine e(c);
  EXPECT_FALSE(e.available());
  EXPECT_EQ(e.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(e.status().message().find("log_level"), std::string::npos) << e.status().message();
  EXPECT_EQ(e.getSegmentName(), "");
  // Every call answers with the construction failure.
  void* p = nullptr;
  EXPECT_EQ(e.allocateLocalMemory(&p, 4096).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(p, nullptr);
  SegmentHandle h;
  EXPECT_EQ(e.openSegment(&h, "127.0.0.1:1").code(), Status::Code::kInvalidArgument);
  BatchID b;
  EXPECT_EQ(e.allocateBatch(1, &b).code(), Status::Code::kInvalidArgument);
  std::vector<Notification> n;
  EXPECT_EQ(e.receiveNotification(&n).message(), e.status().message());
  EXPECT_EQ(e.primaryTransport(), "none");
}

TEST(EngineConstructionTest, BadConfigRanges) {
  Config c = TestConfig();
  c.slice_size = 100;
  TransferEngine e(c);
  EXPECT_FALSE(e.available());
  EXPECT_EQ(e.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(e.status().message().find("slice_size"), std::string::npos);
}

TEST(EngineConstructionTest, UnknownTransport) {
  Config c = TestConfig();
  c.transports = {"tcp", "rdma"};
  TransferEngine e(c);
  EXPECT_FALSE(e.available());
  EXPECT_EQ(e.status().code(), Status::Code::kNotSupported);
  EXPECT_NE(e.status().message().find("rdma"), std::string::npos) << e.status().message();
}

TEST(EngineConstructionTest, RedisMetadataUnreachable) {
  // The redis backend is built; with no server to publish to, construction fails
  // (bounded by connect_timeout_ms) instead of starting an engine nobody can find.
  RefusingPort dead;
  Config c = TestConfig();
  c.metadata_type = "redis";
  c.metadata_servers = "127.0.0.1:" + std::to_string(dead.port());
  const auto start = Clock::now();
  TransferEngine e(c);
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_FALSE(e.available());
  EXPECT_EQ(e.status().code(), Status::Code::kUnavailable) << e.status().ToString();
  EXPECT_NE(e.status().message().find("redis"), std::string::npos) << e.status().message();
}

TEST(EngineConstructionTest, RedisMalformedServer) {
  Config c = TestConfig();
  c.metadata_type = "redis";
  c.metadata_servers = "host:99999";
  TransferEngine e(c);
  EXPECT_FALSE(e.available());
  EXPECT_EQ(e.status().code(), Status::Code::kInvalidArgument) << e.status().ToString();
}

TEST(EngineConstructionTest, CentralMetadataWithoutServers) {
  Config c = TestConfig();
  c.metadata_type = "etcd";
  TransferEngine e(c);
  EXPECT_FALSE(e.available());
  EXPECT_EQ(e.status().code(), Status::Code::kInvalidArgument);
}

TEST(EngineConstructionTest, BadLocalSegmentName) {
  Config c = TestConfig();
  c.local_segment_name = "127.0.0.1:99999";
  TransferEngine e(c);
  EXPECT_FALSE(e.available());
  EXPECT_EQ(e.status().code(), Status::Code::kInvalidArgument) << e.status().ToString();
}

TEST(EngineConstructionTest, RpcPortInUse) {
  TransferEngine first(TestConfig());
  ASSERT_TRUE(first.available()) << first.status().ToString();
  Config c = TestConfig();
  c.rpc_port = first.getRpcPort();
  TransferEngine second(c);
  EXPECT_FALSE(second.available());
  EXPECT_EQ(second.status().code(), Status::Code::kAlreadyExists) << second.status().ToString();
  EXPECT_NE(second.status().message().find("in use"), std::string::npos);
  // The first engine is unaffected.
  SegmentHandle h;
  EXPECT_OK(first.openSegment(&h, first.getSegmentName()));
}

// Regression: shared-memory objects are named /te.<pid>.<n> and /te.<pid>.pins<n> (n
// from a per-process counter starting at 0). An object left by a crashed process whose
// pid this process now has (routine in containers) was never cleaned up, as its pid is
// alive, and collided: the engine failed to start ("shm_open /te.<pid>.pins0: File
// exists") and shm allocations failed.
TEST(EngineConstructionTest, StaleSharedMemoryOfReusedPid) {
  const std::string prefix = "/te." + std::to_string(::getpid()) + ".";
  std::vector<std::string> stale;
  for (int i = 0; i < 64; ++i) {
    for (const std::string& name :
         {prefix + "pins" + std::to_string(i), prefix + std::to_string(i)}) {
      int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
      if (fd < 0) continue;  // in use by this process already
      ::close(fd);
      stale.push_back(name);
    }
  }
  Config c = TestConfig();
  c.transports = {"local", "shm", "tcp"};
  {
    TransferEngine e(c);
    EXPECT_TRUE(e.available()) << e.status().ToString();
    if (e.available()) {
      void* p = nullptr;
      MemoryOptions shm;
      shm.shm = true;
      EXPECT_OK(e.allocateLocalMemory(&p, 4096, shm));
    }
  }
  for (const std::string& name : stale) ::shm_unlink(name.c_str());
}

class EngineEnvTest : public testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kEnvVars) unsetenv(v);
  }
  void TearDown() override {
    for (const char* v : kEnvVars) unsetenv(v);
  }
};

TEST_F(EngineEnvTest, ConfigFromEnvironment) {
  setenv("TE_RPC_HOST", "127.0.0.1", 1);
  setenv("TE_MACHINE_ID", "env-machine", 1);
  setenv("TE_LOG_LEVEL", "error", 1);
  setenv("TE_TRANSPORTS", "local", 1);
  TransferEngine e;
  ASSERT_TRUE(e.available()) << e.status().ToString();
  EXPECT_EQ(e.getRpcAddress(), "127.0.0.1");
  EXPECT_EQ(e.getSegmentName(), "127.0.0.1:" + std::to_string(e.getRpcPort()));
  SegmentHandle h;
  ASSERT_OK(e.openSegment(&h, e.getSegmentName()));
  SegmentInfo info;
  ASSERT_OK(e.getSegmentInfo(h, &info));
  EXPECT_EQ(info.machine_id, "env-machine");
  EXPECT_EQ(info.transports, std::vector<std::string>{"local"});
}

TEST_F(EngineEnvTest, BadEnvironment) {
  setenv("TE_RPC_HOST", "127.0.0.1", 1);
  setenv("TE_RPC_PORT", "not-a-port", 1);
  TransferEngine e;
  EXPECT_FALSE(e.available());
  EXPECT_EQ(e.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(e.status().message().find("TE_RPC_PORT"), std::string::npos) << e.status().message();
  void* p;
  EXPECT_EQ(e.allocateLocalMemory(&p, 4096).code(), Status::Code::kInvalidArgument);
}

TEST_F(EngineEnvTest, EnvironmentFailsValidation) {
  setenv("TE_RPC_HOST", "127.0.0.1", 1);
  setenv("TE_TRANSPORTS", "tcp,carrier-pigeon", 1);
  TransferEngine e;
  EXPECT_FALSE(e.available());
  EXPECT_EQ(e.status().code(), Status::Code::kNotSupported);
}

// ---- memory ----

TEST(EngineMemoryTest, AllocateRegisterUnregisterFree) {
  TransferEngine e(TestConfig());
  ASSERT_TRUE(e.available()) << e.status().ToString();
  void* p = nullptr;
  ASSERT_OK(e.allocateLocalMemory(&p, 64 * kKiB));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(Addr(p) % 4096, 0u);
  std::memset(p, 1, 64 * kKiB);

  ASSERT_OK(e.registerLocalMemory(p, 64 * kKiB));
  EXPECT_EQ(e.registerLocalMemory(p, 64 * kKiB).code(), Status::Code::kAlreadyExists);
  EXPECT_EQ(e.registerLocalMemory(At(p, 4096), 4096).code(), Status::Code::kAlreadyExists);
  EXPECT_EQ(e.registerLocalMemory(At(p, 60 * kKiB), 8 * kKiB).code(), Status::Code::kAlreadyExists);

  EXPECT_EQ(e.unregisterLocalMemory(At(p, 4096)).code(), Status::Code::kNotFound);
  ASSERT_OK(e.unregisterLocalMemory(p));
  EXPECT_EQ(e.unregisterLocalMemory(p).code(), Status::Code::kNotFound);

  // Sub-ranges can be registered separately, adjacent to each other.
  ASSERT_OK(e.registerLocalMemory(p, 4096));
  ASSERT_OK(e.registerLocalMemory(At(p, 4096), 4096));
  ASSERT_OK(e.unregisterLocalMemory(p));
  ASSERT_OK(e.unregisterLocalMemory(At(p, 4096)));

  int on_stack = 0;
  EXPECT_EQ(e.freeLocalMemory(&on_stack).code(), Status::Code::kNotFound);
  std::vector<char> heap(4096);
  EXPECT_EQ(e.freeLocalMemory(heap.data()).code(), Status::Code::kNotFound);
  EXPECT_EQ(e.freeLocalMemory(At(p, 4096)).code(), Status::Code::kNotFound);  // not the start
  ASSERT_OK(e.freeLocalMemory(p));
  EXPECT_EQ(e.freeLocalMemory(p).code(), Status::Code::kNotFound);
}

TEST(EngineMemoryTest, BadArguments) {
  TransferEngine e(TestConfig());
  ASSERT_TRUE(e.available()) << e.status().ToString();
  void* p = nullptr;
  EXPECT_EQ(e.allocateLocalMemory(nullptr, 4096).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(e.allocateLocalMemory(&p, 0).code(), Status::Code::kInvalidArgument);
  // Device memory is NotSupported where the build or the machine has none; with
  // devices, one past the last is a bad location.
  MemoryOptions gpu;
  gpu.location = "cuda:0";
  MemoryOptions past_last;
  past_last.location = "cuda:" + std::to_string(DeviceCount());
  if (DeviceCount() == 0) {
    EXPECT_EQ(e.allocateLocalMemory(&p, 4096, gpu).code(), Status::Code::kNotSupported);
  } else {
    EXPECT_EQ(e.allocateLocalMemory(&p, 4096, past_last).code(), Status::Code::kInvalidArgument);
  }
  MemoryOptions far;
  far.location = "cpu:99";
  EXPECT_EQ(e.allocateLocalMemory(&p, 4096, far).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(p, nullptr);

  EXPECT_EQ(e.registerLocalMemory(nullptr, 4096).code(), Status::Code::kInvalidArgument);
  ASSERT_OK(e.allocateLocalMemory(&p, 4096));
  EXPECT_EQ(e.registerLocalMemory(p, 0).code(), Status::Code::kInvalidArgument);
  // Host memory claimed to be on a device is refused either way.
  const Status claimed = e.registerLocalMemory(p, 4096, gpu);
  if (DeviceCount() == 0) {
    EXPECT_EQ(claimed.code(), Status::Code::kNotSupported) << claimed.ToString();
  } else {
    EXPECT_FALSE(claimed.ok());
  }
  ASSERT_OK(e.freeLocalMemory(p));
}

TEST(EngineMemoryTest, RegisterForeignMemory) {
  // Memory the engine did not allocate can be registered and used too.
  TransferEngine e(TestConfig());
  ASSERT_TRUE(e.available()) << e.status().ToString();
  std::vector<char> a(10000), b(10000);
  Fill(a.data(), a.size(), 1);
  ASSERT_OK(e.registerLocalMemory(a.data(), a.size()));
  ASSERT_OK(e.registerLocalMemory(b.data(), b.size()));
  SegmentHandle self;
  ASSERT_OK(e.openSegment(&self, e.getSegmentName()));
  TransferStatus st = RunOne(e, Request::WRITE, a.data(), self, Addr(b.data()), a.size());
  EXPECT_EQ(st.state, TransferState::kCompleted) << st.error;
  EXPECT_EQ(FirstMismatch(a.data(), b.data(), a.size()), -1);
  ASSERT_OK(e.unregisterLocalMemory(a.data()));
  ASSERT_OK(e.unregisterLocalMemory(b.data()));
}

TEST(EngineMemoryTest, FreeUnregistersAndSegmentInfoFollows) {
  TransferEngine e(TestConfig());
  ASSERT_TRUE(e.available()) << e.status().ToString();
  void* p;
  MemoryOptions shm;
  shm.shm = true;
  ASSERT_OK(e.allocateLocalMemory(&p, 8192, shm));
  ASSERT_OK(e.registerLocalMemory(p, 4096));
  ASSERT_OK(e.registerLocalMemory(At(p, 4096), 4096));
  SegmentHandle self;
  ASSERT_OK(e.openSegment(&self, e.getSegmentName()));
  SegmentInfo info;
  ASSERT_OK(e.getSegmentInfo(self, &info));
  ASSERT_EQ(info.buffers.size(), 2u);
  EXPECT_FALSE(info.buffers[0].shm_name.empty());
  EXPECT_EQ(info.buffers[0].shm_name, info.buffers[1].shm_name);

  ASSERT_OK(e.freeLocalMemory(p));  // unregisters both parts first
  EXPECT_EQ(e.unregisterLocalMemory(p).code(), Status::Code::kNotFound);
  ASSERT_OK(e.refreshSegment(self));
  ASSERT_OK(e.getSegmentInfo(self, &info));
  EXPECT_TRUE(info.buffers.empty());
}

// Regression: EngineImpl::Free iterated `*registry_.Snapshot()` in a range-for; the
// temporary shared_ptr died before the loop body ran, so the first Remove freed the
// table the loop was still walking (heap-use-after-free on the second buffer, reported
// by ASan and TSan; a plain build usually got away with it).
TEST(EngineMemoryTest, FreeUnregistersEveryPart) {
  TransferEngine e(TestConfig());
  ASSERT_TRUE(e.available()) << e.status().ToString();
  void* p;
  ASSERT_OK(e.allocateLocalMemory(&p, 16 * 4096));
  for (int i = 0; i < 16; ++i) ASSERT_OK(e.registerLocalMemory(At(p, i * 4096), 4096));
  SegmentHandle self;
  ASSERT_OK(e.openSegment(&self, e.getSegmentName()));
  SegmentInfo info;
  ASSERT_OK(e.getSegmentInfo(self, &info));
  EXPECT_EQ(info.buffers.size(), 16u);
  ASSERT_OK(e.freeLocalMemory(p));
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(e.unregisterLocalMemory(At(p, i * 4096)).code(), Status::Code::kNotFound) << i;
  }
  ASSERT_OK(e.refreshSegment(self));
  ASSERT_OK(e.getSegmentInfo(self, &info));
  EXPECT_TRUE(info.buffers.empty());
}

// ---- one engine, its own segment ----

class LocalEngineTest : public testing::Test {
 protected:
  static constexpr uint64_t kSize = 4 * kMiB;

  void SetUp() override {
    engine_ = std::make_unique<TransferEngine>(MakeConfig());
    ASSERT_TRUE(engine_->available()) << engine_->status().ToString();
    ASSERT_OK(engine_->allocateLocalMemory(&src_, kSize));
    ASSERT_OK(engine_->registerLocalMemory(src_, kSize));
    ASSERT_OK(engine_->allocateLocalMemory(&dst_, kSize));
    ASSERT_OK(engine_->registerLocalMemory(dst_, kSize));
    ASSERT_OK(engine_->openSegment(&self_, engine_->getSegmentName()));
  }
  virtual Config MakeConfig() { return TestConfig(); }

  std::unique_ptr<TransferEngine> engine_;
  void* src_ = nullptr;
  void* dst_ = nullptr;
  SegmentHandle self_ = 0;
};

TEST_F(LocalEngineTest, OwnSegmentInfo) {
  SegmentInfo info;
  ASSERT_OK(engine_->getSegmentInfo(self_, &info));
  EXPECT_EQ(info.name, engine_->getSegmentName());
  EXPECT_EQ(info.machine_id, "engine-test-machine");
  EXPECT_EQ(info.transports, (std::vector<std::string>{"local", "tcp"}));
  ASSERT_EQ(info.buffers.size(), 2u);
  EXPECT_LT(info.buffers[0].base, info.buffers[1].base);
  for (const BufferInfo& b : info.buffers) {
    EXPECT_TRUE(b.base == Addr(src_) || b.base == Addr(dst_));
    EXPECT_EQ(b.length, kSize);
    EXPECT_EQ(b.location, "cpu:0");
    EXPECT_EQ(b.permission, Permission::kRemoteReadWrite);
    EXPECT_EQ(b.shm_name, "");
  }
}

TEST_F(LocalEngineTest, WriteAndRead) {
  Fill(src_, kSize, 7);
  std::memset(dst_, 0, kSize);
  TransferStatus st = RunOne(*engine_, Request::WRITE, src_, self_, Addr(dst_) + 100, 3 * kMiB);
  ASSERT_EQ(st.state, TransferState::kCompleted) << st.error;
  EXPECT_EQ(st.transferred_bytes, 3 * kMiB);
  EXPECT_EQ(FirstMismatch(src_, At(dst_, 100), 3 * kMiB), -1);
  EXPECT_TRUE(AllBytes(dst_, 100, 0));
  EXPECT_TRUE(AllBytes(At(dst_, 100 + 3 * kMiB), kSize - 100 - 3 * kMiB, 0));

  Fill(dst_, kSize, 8);
  std::memset(src_, 0, kSize);
  st = RunOne(*engine_, Request::READ, At(src_, 1), self_, Addr(dst_) + 4095, 12345);
  ASSERT_EQ(st.state, TransferState::kCompleted) << st.error;
  EXPECT_EQ(st.transferred_bytes, 12345u);
  EXPECT_EQ(FirstMismatch(At(src_, 1), At(dst_, 4095), 12345), -1);
  EXPECT_EQ(static_cast<uint8_t*>(src_)[0], 0);
  EXPECT_EQ(static_cast<uint8_t*>(src_)[12346], 0);
  EXPECT_EQ(engine_->primaryTransport(), "local");
}

TEST_F(LocalEngineTest, RemoteErrors) {
  void* ro;
  void* local_only;
  ASSERT_OK(engine_->allocateLocalMemory(&ro, 8192));
  ASSERT_OK(engine_->allocateLocalMemory(&local_only, 8192));
  MemoryOptions ro_opts;
  ro_opts.permission = Permission::kRemoteRead;
  MemoryOptions lo_opts;
  lo_opts.permission = Permission::kLocalOnly;
  ASSERT_OK(engine_->registerLocalMemory(ro, 8192, ro_opts));
  ASSERT_OK(engine_->registerLocalMemory(local_only, 8192, lo_opts));
  Fill(ro, 8192, 3);

  TransferStatus st = RunOne(*engine_, Request::READ, src_, self_, Addr(dst_) + kSize - 10, 100);
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_NE(st.error.find("not inside"), std::string::npos) << st.error;
  EXPECT_EQ(st.error.rfind("OutOfRange", 0), 0u) << st.error;

  st = RunOne(*engine_, Request::WRITE, src_, self_, Addr(ro), 100);
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_NE(st.error.find("read-only"), std::string::npos) << st.error;
  EXPECT_EQ(st.error.rfind("PermissionDenied", 0), 0u) << st.error;

  st = RunOne(*engine_, Request::READ, src_, self_, Addr(ro), 8192);  // reading is allowed
  EXPECT_EQ(st.state, TransferState::kCompleted) << st.error;
  EXPECT_EQ(FirstMismatch(src_, ro, 8192), -1);

  // A local-only buffer is invisible as a target, but usable as a source.
  st = RunOne(*engine_, Request::READ, src_, self_, Addr(local_only), 100);
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_NE(st.error.find("not inside"), std::string::npos) << st.error;
  Fill(local_only, 8192, 4);
  st = RunOne(*engine_, Request::WRITE, local_only, self_, Addr(dst_), 8192);
  EXPECT_EQ(st.state, TransferState::kCompleted) << st.error;
  EXPECT_EQ(FirstMismatch(local_only, dst_, 8192), -1);

  SegmentInfo info;
  ASSERT_OK(engine_->refreshSegment(self_));
  ASSERT_OK(engine_->getSegmentInfo(self_, &info));
  EXPECT_EQ(info.buffers.size(), 3u);  // the local-only one is not published
  for (const BufferInfo& b : info.buffers) EXPECT_NE(b.base, Addr(local_only));
}

class LocalSlicedTest : public LocalEngineTest {
 protected:
  Config MakeConfig() override {
    Config c = TestConfig();
    c.slice_size = 4096;
    return c;
  }
};

TEST_F(LocalSlicedTest, SplitTransferUnaligned) {
  const uint64_t len = kMiB + 333;
  Fill(src_, kSize, 11);
  std::memset(dst_, 0, kSize);
  TransferStatus st = RunOne(*engine_, Request::WRITE, At(src_, 3), self_, Addr(dst_) + 5, len);
  ASSERT_EQ(st.state, TransferState::kCompleted) << st.error;
  EXPECT_EQ(st.transferred_bytes, len);
  EXPECT_EQ(FirstMismatch(At(src_, 3), At(dst_, 5), len), -1);
  EXPECT_TRUE(AllBytes(dst_, 5, 0));
  EXPECT_TRUE(AllBytes(At(dst_, 5 + len), 4096, 0));
}

// ---- two engines over TCP ----

class TcpEnginesTest : public testing::Test {
 protected:
  static constexpr uint64_t kSize = 20 * kMiB;

  void SetUp() override {
    target_ = std::make_unique<TransferEngine>(TestConfig());
    ASSERT_TRUE(target_->available()) << target_->status().ToString();
    ASSERT_OK(target_->allocateLocalMemory(&remote_, kSize));
    ASSERT_OK(target_->registerLocalMemory(remote_, kSize));
    StartInitiator();
  }

  void StartInitiator() {
    initiator_ = std::make_unique<TransferEngine>(InitiatorConfig());
    ASSERT_TRUE(initiator_->available()) << initiator_->status().ToString();
    ASSERT_OK(initiator_->allocateLocalMemory(&local_, kSize));
    ASSERT_OK(initiator_->registerLocalMemory(local_, kSize));
    ASSERT_OK(initiator_->openSegment(&handle_, target_->getSegmentName()));
  }

  virtual Config InitiatorConfig() { return TestConfig(); }

  uint64_t Remote(uint64_t offset) const { return Addr(remote_) + offset; }

  // A remote offset congruent to misalign mod 4096 whose [offset - 64, offset + len +
  // 64) no earlier FreshRemote call of the test handed out. Tests write the target's
  // memory directly (both engines live in this process) only where no READ was served
  // before: TSan records a sendmsg's read of its buffer after the call returns, so
  // rewriting memory a READ was just served from shows up as a (false) data race.
  uint64_t FreshRemote(uint64_t len, uint64_t misalign = 0) {
    const uint64_t start = (next_remote_ + 64 + 4095) / 4096 * 4096 + misalign;
    if (start + len + 64 > kSize) {
      ADD_FAILURE() << "test uses more than " << kSize << " bytes of the target buffer";
      return 4096;
    }
    next_remote_ = start + len + 64;
    return start;
  }

  // Writes local[local_off, +len) to remote[remote_off, +len), then reads it back
  // into a different local place, checking bytes and the guards around each range.
  void WriteThenRead(uint64_t local_off, uint64_t remote_off, uint64_t len, uint32_t seed) {
    SCOPED_TRACE(testing::Message()
                 << "len " << len << " local+" << local_off << " remote+" << remote_off);
    const uint64_t guard = 64;
    ASSERT_GE(remote_off, guard);
    ASSERT_LE(remote_off + len + guard, kSize);
    std::memset(At(remote_, remote_off - guard), 0xcd, len + 2 * guard);
    Fill(At(local_, local_off), len, seed);
    TransferStatus st = RunOne(*initiator_, Request::WRITE, At(local_, local_off), handle_,
                               Remote(remote_off), len);
    ASSERT_EQ(st.state, TransferState::kCompleted) << st.error;
    EXPECT_EQ(st.transferred_bytes, len);
    EXPECT_EQ(FirstMismatch(At(local_, local_off), At(remote_, remote_off), len), -1);
    EXPECT_TRUE(AllBytes(At(remote_, remote_off - guard), guard, 0xcd));
    EXPECT_TRUE(AllBytes(At(remote_, remote_off + len), guard, 0xcd));

    // Read it back into a zeroed place in the second half of the local buffer.
    const uint64_t back = kSize / 2 + 64;
    ASSERT_LE(back + len + guard, kSize);
    std::memset(At(local_, back - guard), 0, len + 2 * guard);
    st = RunOne(*initiator_, Request::READ, At(local_, back), handle_, Remote(remote_off), len);
    ASSERT_EQ(st.state, TransferState::kCompleted) << st.error;
    EXPECT_EQ(st.transferred_bytes, len);
    EXPECT_EQ(FirstMismatch(At(local_, back), At(remote_, remote_off), len), -1);
    EXPECT_TRUE(AllBytes(At(local_, back - guard), guard, 0));
    EXPECT_TRUE(AllBytes(At(local_, back + len), guard, 0));
  }

  std::unique_ptr<TransferEngine> target_;
  std::unique_ptr<TransferEngine> initiator_;
  void* remote_ = nullptr;
  void* local_ = nullptr;
  SegmentHandle handle_ = 0;
  uint64_t next_remote_ = 0;  // see FreshRemote
};

TEST_F(TcpEnginesTest, SegmentInfo) {
  SegmentInfo info;
  ASSERT_OK(initiator_->getSegmentInfo(handle_, &info));
  EXPECT_EQ(info.name, target_->getSegmentName());
  EXPECT_EQ(info.machine_id, "engine-test-machine");
  EXPECT_EQ(info.transports, (std::vector<std::string>{"local", "tcp"}));
  ASSERT_EQ(info.buffers.size(), 1u);
  EXPECT_EQ(info.buffers[0].base, Addr(remote_));
  EXPECT_EQ(info.buffers[0].length, kSize);
  EXPECT_EQ(info.buffers[0].permission, Permission::kRemoteReadWrite);
  EXPECT_EQ(info.buffers[0].location, "cpu:0");
  EXPECT_EQ(info.buffers[0].shm_name, "");
  EXPECT_NE(info.name, initiator_->getSegmentName());
}

TEST_F(TcpEnginesTest, ReadWriteSizes) {
  uint32_t seed = 100;
  for (uint64_t len : {uint64_t{1}, uint64_t{7}, uint64_t{4095}, uint64_t{4096}, 64 * kKiB + 1,
                       kMiB, kMiB + 1, 8 * kMiB}) {
    WriteThenRead(/*local_off=*/0, FreshRemote(len), len, seed++);
    if (HasFatalFailure()) return;
  }
  WriteThenRead(/*local_off=*/13, FreshRemote(3 * kMiB + 5, 77), 3 * kMiB + 5, seed++);
  EXPECT_EQ(initiator_->primaryTransport(), "tcp");
  EXPECT_EQ(target_->primaryTransport(), "none");
}

TEST_F(TcpEnginesTest, ManyRequestsInOneBatch) {
  constexpr size_t kRequests = 32;
  std::vector<Request> requests;
  std::vector<uint64_t> lengths;
  Fill(local_, kSize / 2, 5);
  Fill(remote_, kSize, 6);
  for (size_t i = 0; i < kRequests; ++i) {
    const uint64_t len = 1000 + i * 9001;  // up to ~280 KiB
    const uint64_t off = i * 300 * kKiB + i;
    lengths.push_back(len);
    // Even: WRITE local[off] -> remote[off]; odd: READ remote[off] -> local[off].
    requests.push_back(Request{i % 2 == 0 ? Request::WRITE : Request::READ, At(local_, off),
                               handle_, Remote(off), len});
  }
  BatchID batch;
  ASSERT_OK(initiator_->allocateBatch(kRequests, &batch));
  ASSERT_OK(initiator_->submitTransfer(batch, requests));
  TransferStatus overall;
  ASSERT_TRUE(WaitBatch(*initiator_, batch, &overall));
  EXPECT_EQ(overall.state, TransferState::kCompleted) << overall.error;
  uint64_t total = 0;
  for (uint64_t l : lengths) total += l;
  EXPECT_EQ(overall.transferred_bytes, total);
  std::vector<TransferStatus> statuses;
  ASSERT_OK(initiator_->getTransferStatus(batch, &statuses));
  ASSERT_EQ(statuses.size(), kRequests);
  for (size_t i = 0; i < kRequests; ++i) {
    EXPECT_EQ(statuses[i].state, TransferState::kCompleted) << i << ": " << statuses[i].error;
    EXPECT_EQ(statuses[i].transferred_bytes, lengths[i]);
    TransferStatus one;
    ASSERT_OK(initiator_->getTransferStatus(batch, i, &one));
    EXPECT_EQ(one.state, TransferState::kCompleted);
    const uint64_t off = i * 300 * kKiB + i;
    EXPECT_EQ(FirstMismatch(At(local_, off), At(remote_, off), lengths[i]), -1) << "request " << i;
  }
  ASSERT_OK(initiator_->freeBatch(batch));
}

TEST_F(TcpEnginesTest, WaitTransferStatus) {
  Fill(remote_, kMiB, 9);
  BatchID batch;
  ASSERT_OK(initiator_->allocateBatch(4, &batch));
  std::vector<Request> requests;
  for (uint64_t i = 0; i < 4; ++i) {
    requests.push_back(Request{Request::READ, At(local_, i * 256 * kKiB), handle_,
                               Remote(i * 256 * kKiB), 256 * kKiB});
  }
  ASSERT_OK(initiator_->submitTransfer(batch, requests));
  TransferStatus st;
  ASSERT_OK(initiator_->waitTransferStatus(batch, &st, 30000));
  EXPECT_EQ(st.state, TransferState::kCompleted) << st.error;
  EXPECT_EQ(st.transferred_bytes, kMiB);
  EXPECT_EQ(FirstMismatch(local_, remote_, kMiB), -1);
  // Done stays done.
  ASSERT_OK(initiator_->waitTransferStatus(batch, &st, 0));
  EXPECT_EQ(st.state, TransferState::kCompleted);
  ASSERT_OK(initiator_->freeBatch(batch));

  EXPECT_EQ(initiator_->waitTransferStatus(batch, &st, 10).code(), Status::Code::kNotFound);
  ASSERT_OK(initiator_->allocateBatch(1, &batch));
  EXPECT_EQ(initiator_->waitTransferStatus(batch, nullptr, 10).code(),
            Status::Code::kInvalidArgument);
  // Nothing submitted: nothing to wait for.
  ASSERT_OK(initiator_->waitTransferStatus(batch, &st, 30000));
  EXPECT_EQ(st.state, TransferState::kCompleted);
  ASSERT_OK(initiator_->freeBatch(batch));
}

// A batch of one small request is submitted as one its caller will wait for and read
// itself (Slice::awaited), so the transport leaves the response alone until told
// otherwise: every other way of watching it must still see it complete, with its bytes.
TEST_F(TcpEnginesTest, ALoneRequestCompletesHoweverItsCallerWatchesIt) {
  constexpr uint64_t kLen = 4096;
  const std::vector<std::pair<std::string, std::function<bool(BatchID, TransferStatus*)>>> watches =
      {
          {"waitTransferStatus",
           [&](BatchID b, TransferStatus* st) {
             return initiator_->waitTransferStatus(b, st, 10000).ok() &&
                    st->state != TransferState::kPending;
           }},
          {"short waits",
           [&](BatchID b, TransferStatus* st) {
             for (int i = 0; i < 10000; ++i) {
               if (!initiator_->waitTransferStatus(b, st, 1).ok()) return false;
               if (st->state != TransferState::kPending) return true;
             }
             return false;
           }},
          {"the batch's status",
           [&](BatchID b, TransferStatus* st) { return WaitBatch(*initiator_, b, st); }},
          {"the task's status",
           [&](BatchID b, TransferStatus* st) {
             for (auto end = Clock::now() + 10s; Clock::now() < end;) {
               if (!initiator_->getTransferStatus(b, 0, st).ok()) return false;
               if (st->state != TransferState::kPending) return true;
             }
             return false;
           }},
          {"every task's status",
           [&](BatchID b, TransferStatus* st) {
             std::vector<TransferStatus> all;
             for (auto end = Clock::now() + 10s; Clock::now() < end;) {
               if (!initiator_->getTransferStatus(b, &all).ok() || all.size() != 1) return false;
               *st = all[0];
               if (st->state != TransferState::kPending) return true;
             }
             return false;
           }},
          {"nothing until freeBatch",
           [&](BatchID, TransferStatus* st) {
             st->state = TransferState::kCompleted;  // freeBatch waits for it
             return true;
           }},
      };
  uint32_t seed = 300;
  for (const auto& [how, watch] : watches) {
    SCOPED_TRACE(how);
    const uint64_t remote = FreshRemote(kLen);
    Fill(At(remote_, remote), kLen, seed++);
    std::memset(local_, 0, kLen);
    BatchID batch;
    ASSERT_OK(initiator_->allocateBatch(1, &batch));
    ASSERT_OK(initiator_->submitTransfer(
        batch, {Request{Request::READ, local_, handle_, Remote(remote), kLen}}));
    TransferStatus st;
    EXPECT_TRUE(watch(batch, &st)) << "still pending";
    EXPECT_EQ(st.state, TransferState::kCompleted) << st.error;
    ASSERT_OK(initiator_->freeBatch(batch));
    EXPECT_EQ(FirstMismatch(local_, At(remote_, remote), kLen), -1);
  }
}

TEST_F(TcpEnginesTest, SubmissionsContinueTaskIds) {
  BatchID batch;
  ASSERT_OK(initiator_->allocateBatch(3, &batch));
  Fill(local_, 3 * 4096, 9);
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(initiator_->submitTransfer(
        batch, {Request{Request::WRITE, At(local_, i * 4096), handle_, Remote(i * 4096), 4096}}));
  }
  TransferStatus overall;
  ASSERT_TRUE(WaitBatch(*initiator_, batch, &overall));
  EXPECT_EQ(overall.state, TransferState::kCompleted) << overall.error;
  EXPECT_EQ(overall.transferred_bytes, 3 * 4096u);
  for (size_t i = 0; i < 3; ++i) {
    TransferStatus st;
    ASSERT_OK(initiator_->getTransferStatus(batch, i, &st));
    EXPECT_EQ(st.transferred_bytes, 4096u);
  }
  EXPECT_EQ(FirstMismatch(local_, remote_, 3 * 4096), -1);
  // Full: a fourth submission is refused.
  Status s =
      initiator_->submitTransfer(batch, {Request{Request::WRITE, local_, handle_, Remote(0), 1}});
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("capacity"), std::string::npos) << s.message();
  ASSERT_OK(initiator_->freeBatch(batch));
}

TEST_F(TcpEnginesTest, SubmitValidation) {
  BatchID batch;
  ASSERT_OK(initiator_->allocateBatch(2, &batch));
  std::vector<char> unregistered(4096);
  const Request good{Request::WRITE, local_, handle_, Remote(0), 4096};
  std::memset(remote_, 0x11, 4096);
  Fill(local_, 4096, 3);

  // The local address must lie in a registered buffer.
  Request r = good;
  r.source = unregistered.data();
  Status s = initiator_->submitTransfer(batch, {r});
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("local"), std::string::npos) << s.message();
  r = good;
  r.source = At(local_, kSize - 100);  // runs past the end of the registered buffer
  EXPECT_EQ(initiator_->submitTransfer(batch, {r}).code(), Status::Code::kInvalidArgument);
  r = good;
  r.source = nullptr;
  EXPECT_EQ(initiator_->submitTransfer(batch, {r}).code(), Status::Code::kInvalidArgument);
  r = good;
  r.length = 0;
  EXPECT_EQ(initiator_->submitTransfer(batch, {r}).code(), Status::Code::kInvalidArgument);
  r = good;
  r.opcode = static_cast<Request::OpCode>(7);
  EXPECT_EQ(initiator_->submitTransfer(batch, {r}).code(), Status::Code::kInvalidArgument);
  r = good;
  r.target_id = handle_ + 1000;
  s = initiator_->submitTransfer(batch, {r});
  EXPECT_EQ(s.code(), Status::Code::kNotFound) << s.ToString();
  r.target_id = 0;
  EXPECT_EQ(initiator_->submitTransfer(batch, {r}).code(), Status::Code::kNotFound);

  // One bad request fails the whole call: the good one before it is not queued either.
  Request bad = good;
  bad.source = unregistered.data();
  EXPECT_EQ(initiator_->submitTransfer(batch, {good, bad}).code(), Status::Code::kInvalidArgument);
  std::vector<TransferStatus> statuses;
  ASSERT_OK(initiator_->getTransferStatus(batch, &statuses));
  EXPECT_TRUE(statuses.empty());
  TransferStatus st;
  EXPECT_EQ(initiator_->getTransferStatus(batch, 0, &st).code(), Status::Code::kOutOfRange);

  // Capacity: three requests do not fit in a batch of two, and nothing is queued.
  s = initiator_->submitTransfer(batch, {good, good, good});
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("capacity"), std::string::npos) << s.message();
  ASSERT_OK(initiator_->getTransferStatus(batch, &statuses));
  // No task exists, so nothing can move later; and nothing moved while submitting.
  EXPECT_TRUE(statuses.empty());
  EXPECT_TRUE(AllBytes(remote_, 4096, 0x11)) << "a refused submission moved bytes";

  // An empty submission is fine and claims nothing.
  ASSERT_OK(initiator_->submitTransfer(batch, {}));
  ASSERT_OK(initiator_->submitTransfer(batch, {good}));
  ASSERT_OK(initiator_->getTransferStatus(batch, 0, &st));
  s = initiator_->getTransferStatus(batch, 1, &st);  // beyond what was submitted
  EXPECT_EQ(s.code(), Status::Code::kOutOfRange) << s.ToString();
  EXPECT_EQ(initiator_->getTransferStatus(batch, 1000000, &st).code(), Status::Code::kOutOfRange);
  TransferStatus overall;
  ASSERT_TRUE(WaitBatch(*initiator_, batch, &overall));
  EXPECT_EQ(overall.state, TransferState::kCompleted) << overall.error;
  EXPECT_EQ(FirstMismatch(local_, remote_, 4096), -1);
  ASSERT_OK(initiator_->freeBatch(batch));
}

TEST_F(TcpEnginesTest, BatchAndHandleErrors) {
  BatchID batch;
  EXPECT_EQ(initiator_->allocateBatch(0, &batch).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(initiator_->allocateBatch((1u << 20) + 1, &batch).code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(initiator_->allocateBatch(1, nullptr).code(), Status::Code::kInvalidArgument);
  ASSERT_OK(initiator_->allocateBatch(1, &batch));
  ASSERT_OK(initiator_->freeBatch(batch));

  const BatchID unknown = 987654321;
  TransferStatus st;
  std::vector<TransferStatus> statuses;
  EXPECT_EQ(initiator_->freeBatch(unknown).code(), Status::Code::kNotFound);
  EXPECT_EQ(initiator_->submitTransfer(unknown, {}).code(), Status::Code::kNotFound);
  EXPECT_EQ(initiator_->getTransferStatus(unknown, &st).code(), Status::Code::kNotFound);
  EXPECT_EQ(initiator_->getTransferStatus(unknown, 0, &st).code(), Status::Code::kNotFound);
  EXPECT_EQ(initiator_->getTransferStatus(unknown, &statuses).code(), Status::Code::kNotFound);
  EXPECT_EQ(initiator_->freeBatch(batch).code(), Status::Code::kNotFound);  // freed already

  const SegmentHandle bad = handle_ + 1000;
  SegmentInfo info;
  EXPECT_EQ(initiator_->getSegmentInfo(bad, &info).code(), Status::Code::kNotFound);
  EXPECT_EQ(initiator_->refreshSegment(bad).code(), Status::Code::kNotFound);
  EXPECT_EQ(initiator_->closeSegment(bad).code(), Status::Code::kNotFound);
  EXPECT_EQ(initiator_->sendNotification(bad, "x").code(), Status::Code::kNotFound);
  EXPECT_EQ(initiator_->getSegmentInfo(handle_, nullptr).code(), Status::Code::kInvalidArgument);

  // A closed handle is gone for good.
  ASSERT_OK(initiator_->closeSegment(handle_));
  EXPECT_EQ(initiator_->closeSegment(handle_).code(), Status::Code::kNotFound);
  EXPECT_EQ(initiator_->getSegmentInfo(handle_, &info).code(), Status::Code::kNotFound);
  ASSERT_OK(initiator_->allocateBatch(1, &batch));
  EXPECT_EQ(
      initiator_->submitTransfer(batch, {Request{Request::READ, local_, handle_, Remote(0), 1}})
          .code(),
      Status::Code::kNotFound);
  ASSERT_OK(initiator_->freeBatch(batch));
}

TEST_F(TcpEnginesTest, OpenSegmentErrors) {
  SegmentHandle h;
  EXPECT_EQ(initiator_->openSegment(nullptr, target_->getSegmentName()).code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(initiator_->openSegment(&h, "").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(initiator_->openSegment(&h, "no-port").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(initiator_->openSegment(&h, "127.0.0.1:0").code(), Status::Code::kInvalidArgument);
  // Nobody listens there.
  RefusingPort dead;
  const auto start = Clock::now();
  Status s = initiator_->openSegment(&h, "127.0.0.1:" + std::to_string(dead.port()));
  EXPECT_EQ(s.code(), Status::Code::kUnavailable) << s.ToString();
  EXPECT_LT(Clock::now() - start, 5s);
  // Opening the same segment twice gives two working handles.
  SegmentHandle again;
  ASSERT_OK(initiator_->openSegment(&again, target_->getSegmentName()));
  EXPECT_NE(again, handle_);
  Fill(local_, 100, 1);
  TransferStatus st = RunOne(*initiator_, Request::WRITE, local_, again, Remote(0), 100);
  EXPECT_EQ(st.state, TransferState::kCompleted) << st.error;
  EXPECT_EQ(FirstMismatch(local_, remote_, 100), -1);
}

TEST_F(TcpEnginesTest, RemoteErrorsFailTasks) {
  void* ro;
  ASSERT_OK(target_->allocateLocalMemory(&ro, 64 * kKiB));
  MemoryOptions ro_opts;
  ro_opts.permission = Permission::kRemoteRead;
  ASSERT_OK(target_->registerLocalMemory(ro, 64 * kKiB, ro_opts));
  Fill(ro, 64 * kKiB, 21);
  Fill(local_, 64 * kKiB, 22);
  std::memset(remote_, 0, 64 * kKiB);

  BatchID batch;
  ASSERT_OK(initiator_->allocateBatch(4, &batch));
  ASSERT_OK(initiator_->submitTransfer(
      batch, {
                 // 0: out of range: runs 90 bytes past the end of the buffer.
                 Request{Request::READ, local_, handle_, Remote(kSize - 10), 100},
                 // 1: WRITE to a read-only buffer (its payload must be drained).
                 Request{Request::WRITE, local_, handle_, Addr(ro), 64 * kKiB},
                 // 2: fine, behind the failures on the same connections.
                 Request{Request::WRITE, local_, handle_, Remote(0), 64 * kKiB},
                 // 3: READ from the read-only buffer is allowed.
                 Request{Request::READ, At(local_, kMiB), handle_, Addr(ro), 64 * kKiB},
             }));
  TransferStatus overall;
  ASSERT_TRUE(WaitBatch(*initiator_, batch, &overall));
  EXPECT_EQ(overall.state, TransferState::kFailed);
  EXPECT_EQ(overall.error.rfind("task 0: ", 0), 0u) << overall.error;
  std::vector<TransferStatus> st;
  ASSERT_OK(initiator_->getTransferStatus(batch, &st));
  ASSERT_EQ(st.size(), 4u);
  EXPECT_EQ(st[0].state, TransferState::kFailed);
  EXPECT_NE(st[0].error.find("not inside"), std::string::npos) << st[0].error;
  EXPECT_EQ(st[0].error.rfind("OutOfRange", 0), 0u) << st[0].error;
  EXPECT_EQ(st[0].transferred_bytes, 0u);
  EXPECT_EQ(st[1].state, TransferState::kFailed);
  EXPECT_NE(st[1].error.find("read-only"), std::string::npos) << st[1].error;
  EXPECT_EQ(st[1].error.rfind("PermissionDenied", 0), 0u) << st[1].error;
  EXPECT_EQ(st[2].state, TransferState::kCompleted) << st[2].error;
  EXPECT_EQ(st[3].state, TransferState::kCompleted) << st[3].error;
  EXPECT_EQ(overall.transferred_bytes, 2 * 64 * kKiB);
  ASSERT_OK(initiator_->freeBatch(batch));

  EXPECT_EQ(FirstMismatch(local_, remote_, 64 * kKiB), -1);
  EXPECT_EQ(FirstMismatch(At(local_, kMiB), ro, 64 * kKiB), -1);
  // The read-only buffer kept its bytes.
  std::vector<char> expect(64 * kKiB);
  Fill(expect.data(), expect.size(), 21);
  EXPECT_EQ(FirstMismatch(expect.data(), ro, expect.size()), -1);

  // The connections are still in step afterwards.
  WriteThenRead(0, 4096, 256 * kKiB, 23);
}

TEST_F(TcpEnginesTest, LocalOnlyAndUnregisteredTargetsFail) {
  void* lo;
  ASSERT_OK(target_->allocateLocalMemory(&lo, 4096));
  MemoryOptions lo_opts;
  lo_opts.permission = Permission::kLocalOnly;
  ASSERT_OK(target_->registerLocalMemory(lo, 4096, lo_opts));
  TransferStatus st = RunOne(*initiator_, Request::READ, local_, handle_, Addr(lo), 16);
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_NE(st.error.find("not inside"), std::string::npos) << st.error;

  // After the target unregisters a buffer, requests to it fail even though the
  // initiator's cached descriptor still lists it.
  void* extra;
  ASSERT_OK(target_->allocateLocalMemory(&extra, 4096));
  ASSERT_OK(target_->registerLocalMemory(extra, 4096));
  st = RunOne(*initiator_, Request::WRITE, local_, handle_, Addr(extra), 16);
  EXPECT_EQ(st.state, TransferState::kCompleted) << st.error;
  ASSERT_OK(target_->unregisterLocalMemory(extra));
  st = RunOne(*initiator_, Request::WRITE, local_, handle_, Addr(extra), 16);
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_NE(st.error.find("not inside"), std::string::npos) << st.error;
}

TEST_F(TcpEnginesTest, RefreshSegmentShowsNewBuffers) {
  SegmentInfo info;
  ASSERT_OK(initiator_->getSegmentInfo(handle_, &info));
  ASSERT_EQ(info.buffers.size(), 1u);

  void* extra;
  MemoryOptions opts;
  opts.shm = true;
  ASSERT_OK(target_->allocateLocalMemory(&extra, 12288, opts));
  MemoryOptions reg;
  reg.permission = Permission::kRemoteRead;
  ASSERT_OK(target_->registerLocalMemory(extra, 12288, reg));

  ASSERT_OK(initiator_->getSegmentInfo(handle_, &info));
  EXPECT_EQ(info.buffers.size(), 1u);  // cached until refreshed
  ASSERT_OK(initiator_->refreshSegment(handle_));
  ASSERT_OK(initiator_->getSegmentInfo(handle_, &info));
  ASSERT_EQ(info.buffers.size(), 2u);
  const BufferInfo* found = nullptr;
  for (const BufferInfo& b : info.buffers) {
    if (b.base == Addr(extra)) found = &b;
  }
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->length, 12288u);
  EXPECT_EQ(found->permission, Permission::kRemoteRead);
  EXPECT_EQ(found->location, "cpu:0");
  EXPECT_FALSE(found->shm_name.empty());
  EXPECT_LT(info.buffers[0].base, info.buffers[1].base);

  // The refreshed handle still carries traffic.
  Fill(extra, 12288, 31);
  TransferStatus st = RunOne(*initiator_, Request::READ, local_, handle_, Addr(extra), 12288);
  EXPECT_EQ(st.state, TransferState::kCompleted) << st.error;
  EXPECT_EQ(FirstMismatch(local_, extra, 12288), -1);

  ASSERT_OK(target_->freeLocalMemory(extra));
  ASSERT_OK(initiator_->refreshSegment(handle_));
  ASSERT_OK(initiator_->getSegmentInfo(handle_, &info));
  ASSERT_EQ(info.buffers.size(), 1u);
  EXPECT_EQ(info.buffers[0].base, Addr(remote_));
}

TEST_F(TcpEnginesTest, RefreshAfterTargetGoneFails) {
  target_.reset();
  const auto start = Clock::now();
  Status s = initiator_->refreshSegment(handle_);
  EXPECT_FALSE(s.ok());
  EXPECT_LT(Clock::now() - start, 5s);
  SegmentInfo info;
  EXPECT_OK(initiator_->getSegmentInfo(handle_, &info));  // the old descriptor stays
}

// A target restarted under the same name (here: the same p2p host:port) is used again
// without reopening: the failed transfer marks the segment stale and the next
// submission refreshes it in the background.
TEST_F(TcpEnginesTest, FailedTransferRefreshesRestartedTarget) {
  Config c = TestConfig();
  c.rpc_port = target_->getRpcPort();
  target_.reset();
  auto restarted = std::make_unique<TransferEngine>(c);
  ASSERT_TRUE(restarted->available()) << restarted->status().ToString();
  void* fresh = nullptr;
  ASSERT_OK(restarted->allocateLocalMemory(&fresh, 4096));
  std::memset(fresh, 0x5a, 4096);
  ASSERT_OK(restarted->registerLocalMemory(fresh, 4096));

  // The cached descriptor still names the old engine: this fails and marks it stale.
  TransferStatus failed = RunOne(*initiator_, Request::READ, local_, handle_, Remote(0), 4096);
  EXPECT_EQ(failed.state, TransferState::kFailed);
  // Later submissions go to the restarted engine once the background refresh is done.
  TransferStatus st;
  const auto deadline = Clock::now() + 10s;
  do {
    std::memset(local_, 0, 4096);
    st = RunOne(*initiator_, Request::READ, local_, handle_, Addr(fresh), 4096);
    if (st.state == TransferState::kCompleted) break;
    std::this_thread::sleep_for(20ms);
  } while (Clock::now() < deadline);
  ASSERT_EQ(st.state, TransferState::kCompleted) << st.error;
  EXPECT_TRUE(AllBytes(local_, 4096, 0x5a));
}

// A request to a range the cached descriptor does not know yet (the target
// registered it after we opened) still goes through TCP, where the target checks it,
// and makes the engine refresh the descriptor in the background.
TEST_F(TcpEnginesTest, UnknownRangeRefreshesDescriptor) {
  void* added = nullptr;
  ASSERT_OK(target_->allocateLocalMemory(&added, 4096));
  std::memset(added, 0x3c, 4096);
  ASSERT_OK(target_->registerLocalMemory(added, 4096));
  TransferStatus st = RunOne(*initiator_, Request::READ, local_, handle_, Addr(added), 4096);
  ASSERT_EQ(st.state, TransferState::kCompleted) << st.error;
  EXPECT_TRUE(AllBytes(local_, 4096, 0x3c));
  bool listed = false;
  const auto deadline = Clock::now() + 5s;
  while (!listed && Clock::now() < deadline) {
    SegmentInfo info;
    ASSERT_OK(initiator_->getSegmentInfo(handle_, &info));
    for (const BufferInfo& b : info.buffers) listed |= b.base == Addr(added);
    if (!listed) std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(listed) << "descriptor not refreshed without an explicit refreshSegment";
}

TEST_F(TcpEnginesTest, Notifications) {
  ASSERT_OK(initiator_->sendNotification(handle_, "hello"));
  ASSERT_OK(initiator_->sendNotification(handle_, std::string("bin\0ary", 7)));
  std::vector<Notification> got = {Notification{"earlier", "kept"}};
  const auto deadline = Clock::now() + 5s;
  while (got.size() < 3 && Clock::now() < deadline) {
    ASSERT_OK(target_->receiveNotification(&got));
    if (got.size() < 3) std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].from, "earlier");  // receive appends
  EXPECT_EQ(got[1].from, initiator_->getSegmentName());
  EXPECT_EQ(got[1].message, "hello");
  EXPECT_EQ(got[2].from, initiator_->getSegmentName());
  EXPECT_EQ(got[2].message, std::string("bin\0ary", 7));
  std::vector<Notification> none;
  ASSERT_OK(target_->receiveNotification(&none));
  EXPECT_TRUE(none.empty());  // received ones are removed
  EXPECT_EQ(target_->receiveNotification(nullptr).code(), Status::Code::kInvalidArgument);

  // And back.
  SegmentHandle back;
  ASSERT_OK(target_->openSegment(&back, initiator_->getSegmentName()));
  ASSERT_OK(target_->sendNotification(back, "reply"));
  std::vector<Notification> replies;
  const auto deadline2 = Clock::now() + 5s;
  while (replies.empty() && Clock::now() < deadline2) {
    ASSERT_OK(initiator_->receiveNotification(&replies));
    if (replies.empty()) std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].from, target_->getSegmentName());
  EXPECT_EQ(replies[0].message, "reply");

  // To oneself.
  SegmentHandle self;
  ASSERT_OK(initiator_->openSegment(&self, initiator_->getSegmentName()));
  ASSERT_OK(initiator_->sendNotification(self, "note to self"));
  replies.clear();
  ASSERT_OK(initiator_->receiveNotification(&replies));
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].from, initiator_->getSegmentName());
  EXPECT_EQ(replies[0].message, "note to self");

  // Too large for a control frame.
  std::string huge(4 * kMiB, 'x');
  EXPECT_EQ(initiator_->sendNotification(handle_, huge).code(), Status::Code::kInvalidArgument);
}

TEST_F(TcpEnginesTest, NotificationToGoneTargetFails) {
  target_.reset();
  const auto start = Clock::now();
  EXPECT_EQ(initiator_->sendNotification(handle_, "anyone?").code(), Status::Code::kUnavailable);
  EXPECT_LT(Clock::now() - start, 5s);
}

TEST_F(TcpEnginesTest, FreeBatchWhileInFlight) {
  Fill(remote_, 8 * kMiB, 41);
  for (int round = 0; round < 3; ++round) {
    BatchID batch;
    ASSERT_OK(initiator_->allocateBatch(2, &batch));
    ASSERT_OK(initiator_->submitTransfer(
        batch,
        {Request{Request::READ, local_, handle_, Remote(0), 8 * kMiB},
         Request{Request::WRITE, At(local_, 10 * kMiB), handle_, Remote(10 * kMiB), 8 * kMiB}}));
    const auto start = Clock::now();
    ASSERT_OK(initiator_->freeBatch(batch));
    EXPECT_LT(Clock::now() - start, 5s);  // transfer_timeout + connect_timeout + 1 s at most
    TransferStatus st;
    EXPECT_EQ(initiator_->getTransferStatus(batch, &st).code(), Status::Code::kNotFound);
  }
  // The connections still work.
  next_remote_ = 18 * kMiB;  // past what the freed batches read and wrote
  WriteThenRead(0, FreshRemote(kMiB + 3), kMiB + 3, 42);
}

TEST_F(TcpEnginesTest, InitiatorDestroyedWhileTransfersPending) {
  BatchID batch;
  ASSERT_OK(initiator_->allocateBatch(4, &batch));
  std::vector<Request> requests;
  for (uint64_t i = 0; i < 4; ++i) {
    requests.push_back(Request{i % 2 ? Request::WRITE : Request::READ, At(local_, i * 4 * kMiB),
                               handle_, Remote(i * 4 * kMiB), 4 * kMiB});
  }
  ASSERT_OK(initiator_->submitTransfer(batch, requests));
  initiator_.reset();  // no freeBatch: the destructor cleans up

  // The target keeps serving new initiators. (Away from [0, 16 MiB): the target may
  // still be serving the dead initiator's requests there.)
  StartInitiator();
  WriteThenRead(7, 17 * kMiB, kMiB + 1, 51);
}

TEST_F(TcpEnginesTest, TargetDestroyedWhileTransfersPending) {
  BatchID batch;
  ASSERT_OK(initiator_->allocateBatch(4, &batch));
  std::vector<Request> requests;
  for (uint64_t i = 0; i < 4; ++i) {
    requests.push_back(Request{i % 2 ? Request::WRITE : Request::READ, At(local_, i * 4 * kMiB),
                               handle_, Remote(i * 4 * kMiB), 4 * kMiB});
  }
  ASSERT_OK(initiator_->submitTransfer(batch, requests));
  target_.reset();
  // Everything ends, one way or the other, within the timeouts.
  TransferStatus overall;
  ASSERT_TRUE(WaitBatch(*initiator_, batch, &overall, 10s));
  std::vector<TransferStatus> st;
  ASSERT_OK(initiator_->getTransferStatus(batch, &st));
  for (const TransferStatus& t : st) {
    EXPECT_NE(t.state, TransferState::kPending);
    if (t.state == TransferState::kFailed) {
      EXPECT_FALSE(t.error.empty());
    }
  }
  ASSERT_OK(initiator_->freeBatch(batch));

  // New transfers to the vanished target fail promptly instead of hanging.
  const auto start = Clock::now();
  TransferStatus one = RunOne(*initiator_, Request::READ, local_, handle_, Remote(0), 4096);
  EXPECT_EQ(one.state, TransferState::kFailed);
  EXPECT_FALSE(one.error.empty());
  EXPECT_LT(Clock::now() - start, 5s);
}

class TcpSlicedTest : public TcpEnginesTest {
 protected:
  Config InitiatorConfig() override {
    Config c = TestConfig();
    c.slice_size = 4096;
    return c;
  }
};

TEST_F(TcpSlicedTest, SplitTransfersUnaligned) {
  WriteThenRead(/*local_off=*/3, FreshRemote(kMiB + 123, 5), kMiB + 123, 61);
  WriteThenRead(/*local_off=*/4095, FreshRemote(kMiB, 4095), kMiB, 62);
  WriteThenRead(/*local_off=*/0, FreshRemote(4096), 4096, 63);     // exactly one slice
  WriteThenRead(/*local_off=*/1, FreshRemote(4097, 1), 4097, 64);  // one byte over
}

TEST_F(TcpSlicedTest, SplitTaskWithRemoteErrorKeepsFirstError) {
  // 16 slices; the last two reach past the end of the target buffer and fail.
  const uint64_t len = 64 * kKiB;
  TransferStatus st =
      RunOne(*initiator_, Request::READ, local_, handle_, Remote(kSize - len + 4096 + 100), len);
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_NE(st.error.find("not inside"), std::string::npos) << st.error;
  EXPECT_EQ(st.transferred_bytes, 14 * 4096u);
}

class TcpOnlyTest : public testing::Test {};

TEST_F(TcpOnlyTest, OwnSegmentOverTcp) {
  // With only "tcp" enabled, even the engine's own segment is reached over TCP.
  Config c = TestConfig();
  c.transports = {"tcp"};
  TransferEngine e(c);
  ASSERT_TRUE(e.available()) << e.status().ToString();
  void* a;
  void* b;
  ASSERT_OK(e.allocateLocalMemory(&a, 2 * kMiB));
  ASSERT_OK(e.allocateLocalMemory(&b, 2 * kMiB));
  ASSERT_OK(e.registerLocalMemory(a, 2 * kMiB));
  ASSERT_OK(e.registerLocalMemory(b, 2 * kMiB));
  SegmentHandle self;
  ASSERT_OK(e.openSegment(&self, e.getSegmentName()));
  SegmentInfo info;
  ASSERT_OK(e.getSegmentInfo(self, &info));
  EXPECT_EQ(info.transports, std::vector<std::string>{"tcp"});
  Fill(a, 2 * kMiB, 71);
  TransferStatus st = RunOne(e, Request::WRITE, a, self, Addr(b), 2 * kMiB);
  EXPECT_EQ(st.state, TransferState::kCompleted) << st.error;
  EXPECT_EQ(FirstMismatch(a, b, 2 * kMiB), -1);
  EXPECT_EQ(e.primaryTransport(), "tcp");
}

TEST_F(TcpOnlyTest, LocalOnlyEngineCannotReachPeer) {
  TransferEngine target(TestConfig());
  ASSERT_TRUE(target.available()) << target.status().ToString();
  Config c = TestConfig();
  c.transports = {"local"};
  TransferEngine e(c);
  ASSERT_TRUE(e.available()) << e.status().ToString();
  SegmentHandle h;
  EXPECT_EQ(e.openSegment(&h, target.getSegmentName()).code(), Status::Code::kUnavailable);
}

TEST_F(TcpEnginesTest, MixedTargetsInOneBatch) {
  // Requests alternate between the engine's own segment (local transport) and the
  // target (TCP); each run goes to its own transport.
  SegmentHandle self;
  ASSERT_OK(initiator_->openSegment(&self, initiator_->getSegmentName()));
  Fill(local_, 8 * kMiB, 81);
  std::vector<Request> requests;
  for (uint64_t i = 0; i < 8; ++i) {
    const uint64_t off = i * kMiB;
    const uint64_t len = 100 * kKiB + i;
    if (i % 3 == 0) {
      requests.push_back(
          Request{Request::WRITE, At(local_, off), self, Addr(local_) + 10 * kMiB + off, len});
    } else {
      requests.push_back(Request{Request::WRITE, At(local_, off), handle_, Remote(off), len});
    }
  }
  BatchID batch;
  ASSERT_OK(initiator_->allocateBatch(requests.size(), &batch));
  ASSERT_OK(initiator_->submitTransfer(batch, requests));
  TransferStatus overall;
  ASSERT_TRUE(WaitBatch(*initiator_, batch, &overall));
  EXPECT_EQ(overall.state, TransferState::kCompleted) << overall.error;
  for (uint64_t i = 0; i < 8; ++i) {
    const uint64_t off = i * kMiB;
    const uint64_t len = 100 * kKiB + i;
    const void* dst = i % 3 == 0 ? At(local_, 10 * kMiB + off) : At(remote_, off);
    EXPECT_EQ(FirstMismatch(At(local_, off), dst, len), -1) << "request " << i;
  }
  ASSERT_OK(initiator_->freeBatch(batch));
  EXPECT_EQ(initiator_->primaryTransport(), "tcp");  // 5 of the 8 requests
}

TEST_F(TcpEnginesTest, ConcurrentSubmitters) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 20;
  constexpr uint64_t kRegion = 2 * kMiB;    // per thread, in the local buffer
  constexpr uint64_t kRemote = 192 * kKiB;  // per round and thread, in the target's
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      char* src = At(local_, t * kRegion);
      char* back = At(local_, kSize / 2 + t * kRegion);
      for (int round = 0; round < kRounds; ++round) {
        // A region of its own: no WRITE lands where a READ was served before.
        const uint64_t remote = Remote((t * kRounds + round) * kRemote);
        const uint64_t len = 1000 + ((round * 7919 + t * 104729) % (kRemote - 1000));
        Fill(src, len, static_cast<uint32_t>(t * 1000 + round));
        TransferStatus w = RunOne(*initiator_, Request::WRITE, src, handle_, remote, len);
        TransferStatus r = RunOne(*initiator_, Request::READ, back, handle_, remote, len);
        if (w.state != TransferState::kCompleted || r.state != TransferState::kCompleted ||
            FirstMismatch(src, back, len) != -1) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(TcpEnginesTest, UnregisterDuringTraffic) {
  // The target frees (unregistering first) a buffer while the initiator is reading
  // from and writing to it. Every task ends, none hangs, and the engines keep working.
  for (int round = 0; round < 5; ++round) {
    void* victim;
    ASSERT_OK(target_->allocateLocalMemory(&victim, 4 * kMiB));
    ASSERT_OK(target_->registerLocalMemory(victim, 4 * kMiB));
    BatchID batch;
    ASSERT_OK(initiator_->allocateBatch(8, &batch));
    std::vector<Request> requests;
    for (uint64_t i = 0; i < 8; ++i) {
      requests.push_back(Request{i % 2 ? Request::WRITE : Request::READ, At(local_, i * 512 * kKiB),
                                 handle_, Addr(victim) + i * 512 * kKiB, 512 * kKiB});
    }
    ASSERT_OK(initiator_->submitTransfer(batch, requests));
    ASSERT_OK(target_->freeLocalMemory(victim));
    TransferStatus overall;
    ASSERT_TRUE(WaitBatch(*initiator_, batch, &overall));
    std::vector<TransferStatus> st;
    ASSERT_OK(initiator_->getTransferStatus(batch, &st));
    for (const TransferStatus& t : st) {
      if (t.state == TransferState::kFailed) {
        EXPECT_EQ(t.error.rfind("OutOfRange", 0), 0u) << t.error;
      } else {
        EXPECT_EQ(t.state, TransferState::kCompleted);
        EXPECT_EQ(t.transferred_bytes, 512 * kKiB);
      }
    }
    ASSERT_OK(initiator_->freeBatch(batch));
  }
  WriteThenRead(0, 4096, kMiB, 91);
}

// ---- a fake peer speaking the wire protocol badly ----

// Serves GET_SEGMENT with a descriptor that points its tcp endpoint at a data port
// which completes the HELLO and then misbehaves as `mode` says (kGarbageRpc: the rpc
// port answers the HELLO with junk; kGarbageData: the data port answers a request so).
class FakePeer {
 public:
  enum class Mode {
    kStall,
    kWrongResponseId,
    kCloseAfterRequest,
    kBadDescriptor,
    kGarbageRpc,
    kGarbageData
  };
  static constexpr uint64_t kBase = 0x100000;

  explicit FakePeer(Mode mode) : mode_(mode) {
    EXPECT_OK(Listen("127.0.0.1", 0, &rpc_, &rpc_port_));
    EXPECT_OK(Listen("127.0.0.1", 0, &data_, &data_port_));
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakePeer() {
    stop_ = true;
    thread_.join();
  }
  std::string name() const { return "127.0.0.1:" + std::to_string(rpc_port_); }
  // kStall: true once a request's first bytes reached the data port (bounded wait).
  bool WaitForRequest(std::chrono::milliseconds timeout) const {
    for (const auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
      if (request_arrived_.load()) return true;
      std::this_thread::sleep_for(1ms);
    }
    return request_arrived_.load();
  }

 private:
  void Loop() {
    std::vector<UniqueFd> held;  // stalled connections stay open until the end
    while (!stop_.load()) {
      pollfd fds[2] = {{rpc_.get(), POLLIN, 0}, {data_.get(), POLLIN, 0}};
      if (::poll(fds, 2, 20) <= 0) continue;
      if (fds[0].revents & POLLIN) ServeRpc();
      if (fds[1].revents & POLLIN) ServeData(&held);
    }
  }

  void ServeRpc() {
    UniqueFd fd;
    if (!Accept(rpc_.get(), &fd).ok()) return;
    SetIoTimeout(fd.get(), 2000);
    if (mode_ == Mode::kGarbageRpc) return SendGarbage(fd.get());
    std::string peer;
    if (!wire::ServerHello(fd.get(), wire::kChannelRpc, "", &peer).ok()) return;
    wire::FrameHeader h;
    std::string request;
    if (!wire::RecvFrame(fd.get(), &h, &request).ok()) return;
    if (h.opcode != wire::Opcode::kGetSegment) {
      wire::SendResponse(fd.get(), h, Status::NotSupported("fake"), "");
      return;
    }
    SegmentDescriptor d;
    d.name = name();
    d.machine_id = "fake-machine";
    d.pid = 1;
    d.rpc_host = "127.0.0.1";
    d.rpc_port = rpc_port_;
    d.transports["tcp"] = "127.0.0.1:" + std::to_string(data_port_);
    BufferInfo b;
    b.base = kBase;
    b.length = kMiB;
    b.location = "cpu:0";
    d.buffers.push_back(b);
    std::string json = d.ToJson();
    if (mode_ == Mode::kBadDescriptor) json = R"({"name": "x", "buffers": 5})";
    wire::SendResponse(fd.get(), h, Status::OK(), json);
  }

  void ServeData(std::vector<UniqueFd>* held) {
    UniqueFd fd;
    if (!Accept(data_.get(), &fd).ok()) return;
    SetIoTimeout(fd.get(), 2000);
    std::string peer;
    if (!wire::ServerHello(fd.get(), wire::kChannelTcpData, "", &peer).ok()) return;
    if (mode_ == Mode::kStall && WaitReadable(fd.get(), 2000)) {
      request_arrived_.store(true);  // and is never answered
    }
    if (mode_ != Mode::kStall) {
      uint8_t raw[wire::kHeaderSize];
      if (!WaitReadable(fd.get(), 2000) || !RecvAll(fd.get(), raw, sizeof(raw)).ok()) return;
      if (mode_ == Mode::kCloseAfterRequest) return;  // closes the connection
      if (mode_ == Mode::kGarbageData) return SendGarbage(fd.get());
      wire::FrameHeader h;
      if (!wire::DecodeHeader(raw, &h).ok()) return;
      wire::FrameHeader reply;
      reply.opcode = h.opcode;
      reply.flags = wire::kFlagResponse;
      reply.request_id = h.request_id + 1000;
      reply.length = h.length;
      reply.payload_len = h.opcode == wire::Opcode::kRead ? h.length : 0;
      uint8_t out[wire::kHeaderSize];
      wire::EncodeHeader(reply, out);
      std::string data(reply.payload_len, 'z');
      SendAll(fd.get(), out, sizeof(out));
      SendAll(fd.get(), data.data(), data.size());
    }
    held->push_back(std::move(fd));
  }

  // Bytes that are no frame: a header whose magic, opcode and lengths are junk.
  static void SendGarbage(int fd) {
    std::string junk(4096, '\0');
    uint32_t x = 0x9e3779b9;
    for (char& c : junk) {
      x = x * 1664525 + 1013904223;
      c = static_cast<char>(x >> 24);
    }
    SendAll(fd, junk.data(), junk.size());
    ::shutdown(fd, SHUT_WR);
  }

  const Mode mode_;
  UniqueFd rpc_;
  UniqueFd data_;
  uint16_t rpc_port_ = 0;
  uint16_t data_port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> request_arrived_{false};
  std::thread thread_;
};

// The fake peer's tests bound every wait by the transfer timeout the engine is
// configured with, plus slack that is a multiple of it (not a guess at machine speed):
// a sanitizer build on a loaded machine may take ten timeouts more, no longer.
constexpr auto kTransferTimeout = 300ms;
constexpr auto kBound = kTransferTimeout + 10 * kTransferTimeout;

class FakePeerTest : public testing::Test {
 protected:
  void SetUp() override {
    Config c = TestConfig();
    c.transfer_timeout_ms = static_cast<uint32_t>(kTransferTimeout.count());
    c.tcp_connections_per_peer = 1;
    engine_ = std::make_unique<TransferEngine>(c);
    ASSERT_TRUE(engine_->available()) << engine_->status().ToString();
    ASSERT_OK(engine_->allocateLocalMemory(&local_, kMiB));
    ASSERT_OK(engine_->registerLocalMemory(local_, kMiB));
  }

  std::unique_ptr<TransferEngine> engine_;
  void* local_ = nullptr;
};

TEST_F(FakePeerTest, StalledPeerTimesOut) {
  FakePeer peer(FakePeer::Mode::kStall);
  SegmentHandle h;
  ASSERT_OK(engine_->openSegment(&h, peer.name()));
  SegmentInfo info;
  ASSERT_OK(engine_->getSegmentInfo(h, &info));
  EXPECT_EQ(info.machine_id, "fake-machine");
  const auto start = Clock::now();
  TransferStatus st = RunOne(*engine_, Request::READ, local_, h, FakePeer::kBase, 4096);
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_EQ(st.error.rfind("Timeout", 0), 0u) << st.error;
  EXPECT_GE(elapsed, kTransferTimeout - 50ms);  // not before the transfer timeout ...
  EXPECT_LT(elapsed, kBound);                   // ... and not much after it
}

TEST_F(FakePeerTest, WaitTransferStatusReturnsPendingAtItsTimeoutThenTheFailure) {
  FakePeer peer(FakePeer::Mode::kStall);
  SegmentHandle h;
  ASSERT_OK(engine_->openSegment(&h, peer.name()));
  BatchID batch;
  ASSERT_OK(engine_->allocateBatch(1, &batch));
  ASSERT_OK(
      engine_->submitTransfer(batch, {Request{Request::READ, local_, h, FakePeer::kBase, 4096}}));
  TransferStatus st;
  ASSERT_OK(engine_->waitTransferStatus(batch, &st, 1));  // long before the 300 ms
  EXPECT_EQ(st.state, TransferState::kPending);
  ASSERT_OK(engine_->waitTransferStatus(batch, &st, 30000));  // woken by the failure
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_NE(st.error.find("Timeout"), std::string::npos) << st.error;
  ASSERT_OK(engine_->freeBatch(batch));
}

TEST_F(FakePeerTest, FreeBatchWaitsForStalledSlicesBounded) {
  FakePeer peer(FakePeer::Mode::kStall);
  SegmentHandle h;
  ASSERT_OK(engine_->openSegment(&h, peer.name()));
  BatchID batch;
  ASSERT_OK(engine_->allocateBatch(1, &batch));
  ASSERT_OK(engine_->submitTransfer(
      batch, {Request{Request::WRITE, local_, h, FakePeer::kBase, 64 * kKiB}}));
  ASSERT_TRUE(peer.WaitForRequest(10s)) << "the slice never reached the wire";
  const auto start = Clock::now();
  Status s = engine_->freeBatch(batch);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_LT(Clock::now() - start, kBound);  // bounded by the transfer timeout
}

TEST_F(FakePeerTest, WrongResponseIdIsProtocolError) {
  FakePeer peer(FakePeer::Mode::kWrongResponseId);
  SegmentHandle h;
  ASSERT_OK(engine_->openSegment(&h, peer.name()));
  TransferStatus st = RunOne(*engine_, Request::READ, local_, h, FakePeer::kBase, 4096);
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_EQ(st.error.rfind("ProtocolError", 0), 0u) << st.error;
}

TEST_F(FakePeerTest, GarbageAnswerToHelloFailsOpen) {
  FakePeer peer(FakePeer::Mode::kGarbageRpc);
  SegmentHandle h;
  const auto start = Clock::now();
  Status s = engine_->openSegment(&h, peer.name());
  EXPECT_EQ(s.code(), Status::Code::kProtocolError) << s.ToString();
  EXPECT_LT(Clock::now() - start, kBound);  // bounded; the error says it was the garbage
}

TEST_F(FakePeerTest, GarbageAnswerToRequestFailsTask) {
  FakePeer peer(FakePeer::Mode::kGarbageData);
  SegmentHandle h;
  ASSERT_OK(engine_->openSegment(&h, peer.name()));
  const auto start = Clock::now();
  TransferStatus st = RunOne(*engine_, Request::READ, local_, h, FakePeer::kBase, 4096);
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_EQ(st.error.rfind("ProtocolError", 0), 0u) << st.error;
  EXPECT_LT(Clock::now() - start, kBound);  // bounded; the error says it was the garbage
  // The engine stays usable: the next request fails the same clean way.
  st = RunOne(*engine_, Request::WRITE, local_, h, FakePeer::kBase, 4096);
  EXPECT_EQ(st.state, TransferState::kFailed);
}

TEST_F(FakePeerTest, PeerClosingMidRequestFailsTask) {
  FakePeer peer(FakePeer::Mode::kCloseAfterRequest);
  SegmentHandle h;
  ASSERT_OK(engine_->openSegment(&h, peer.name()));
  TransferStatus st = RunOne(*engine_, Request::READ, local_, h, FakePeer::kBase, 4096);
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_EQ(st.error.rfind("Unavailable", 0), 0u) << st.error;
}

TEST_F(FakePeerTest, MalformedDescriptorIsRejected) {
  FakePeer peer(FakePeer::Mode::kBadDescriptor);
  SegmentHandle h;
  Status s = engine_->openSegment(&h, peer.name());
  EXPECT_EQ(s.code(), Status::Code::kProtocolError) << s.ToString();
}

}  // namespace
}  // namespace te
