// The transport conformance suite: what every transport of the table must do, run
// against each one this build has, at the transport seam itself (slices in, on_done
// out; no engine in between). The far side is this process's own segment for
// `local` and a real te_test_peer process for the others, reached with the peer's
// published descriptor. Adding a transport is one row in ConformanceTargets().
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/machine.h"
#include "memory/buffer_registry.h"
#include "memory/device_memory.h"
#include "metadata/p2p_metadata.h"
#include "peer_process.h"
#include "test_util.h"
#include "transport/transport_registry.h"

namespace te {
namespace {

using namespace std::chrono_literals;
using te_test::BufferSeed;
using te_test::PeerProcess;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kBig = 64 * kMiB;
constexpr uint64_t kFill = 7;  // the peer's pattern seed
constexpr uint32_t kTransferTimeoutMs = 2000;
constexpr uint32_t kConnectTimeoutMs = 2000;

struct ConformanceTarget {
  std::string name;  // the test's
  std::string transport;
  bool peer_process;                   // else this process's own segment (local)
  std::vector<std::string> peer_args;  // where the peer's buffers live
  bool same_host;                      // the peer claims this machine's id
  // Whether slices in flight fail when the peer dies. Not for shm (and CUDA IPC): a
  // mapping of the peer's memory outlives the peer, so copies in progress complete.
  bool in_flight_fail_on_death;
  // UCX_TLS for ucx, on both sides.
  std::string ucx_tls;
  // Whether a request to a buffer the far side unregistered is refused although the
  // sender's descriptor still lists it. Not ucx over tcp or shared memory: nothing on
  // the far side checks a UCX PUT there (verbs would: the rkey dies with the mapping),
  // and the sender learns of the unregistration with its next descriptor.
  bool refuses_after_far_unregister = true;
};

// Names the parameter in test listings (and so in CTest's names).
void PrintTo(const ConformanceTarget& t, std::ostream* os) { *os << t.name; }

std::vector<ConformanceTarget> ConformanceTargets() {
  // ucx over shared memory: UCX 1.13's posix/sysv/cma lanes cannot report a dead
  // peer (error mode PEER), so there the operation deadline finds it.
  const std::vector<ConformanceTarget> all = {
      {"local", "local", false, {}, false, false, "", true},
      {"shm", "shm", true, {"--shm=1"}, true, false, "", true},
      {"cma", "cma", true, {}, true, true, "", true},
      {"tcp", "tcp", true, {}, false, true, "", true},
      {"cuda_ipc", "cuda_ipc", true, {"--location=cuda:0"}, true, false, "", true},
      {"ucx_tcp", "ucx", true, {"--ucx_tls=tcp"}, false, true, "tcp", false},
      {"ucx_shm", "ucx", true, {"--ucx_tls=posix,sysv,cma"}, false, true, "posix,sysv,cma", false},
  };
  std::vector<ConformanceTarget> built;
  for (const ConformanceTarget& t : all) {
    const TransportEntry* e = FindTransport(t.transport);
    if (!e || !e->built) continue;
    if (t.transport == "cuda_ipc" && DeviceCount() <= 0) continue;  // needs a device
    built.push_back(t);
  }
  return built;
}

// The slices of one submission and what became of each: every on_done is counted, so
// a second call, or none, is seen.
class Transfer {
 public:
  Transfer(Request::OpCode op, char* local, uint64_t remote, uint64_t length, uint64_t slice_size)
      : count_((length + slice_size - 1) / slice_size),
        slices_(new Slice[count_]),
        calls_(new std::atomic<int>[count_]()),
        statuses_(count_) {
    for (size_t i = 0; i < count_; ++i) {
      Slice& s = slices_[i];
      const uint64_t offset = i * slice_size;
      s.opcode = op;
      s.local = local + offset;
      s.remote = remote + offset;
      s.length = std::min(slice_size, length - offset);
      s.cancelled = &cancel_;
      s.on_done = &Transfer::OnDone;
      s.owner = this;
    }
  }

  size_t count() const { return count_; }
  const Slice& slice(size_t i) const { return slices_[i]; }
  void Cancel() { cancel_.store(true); }
  // Runs once, in the thread that completes the first slice.
  void OnFirstDone(std::function<void()> hook) { first_done_ = std::move(hook); }

  void SubmitTo(TransportPeer* peer) {
    std::vector<Slice*> all;
    for (size_t i = 0; i < count_; ++i) all.push_back(&slices_[i]);
    peer->Submit(all.data(), all.size());
  }

  // Waits until every slice reported, for at most `bound`; false on a hang.
  bool Wait(std::chrono::milliseconds bound) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, bound, [this] { return done_ == count_; });
  }
  // Slices whose on_done ran other than exactly once.
  size_t NotOnce() const {
    size_t n = 0;
    for (size_t i = 0; i < count_; ++i) n += calls_[i].load() != 1;
    return n;
  }
  // Slices whose on_done has run so far.
  size_t Ended() const {
    size_t n = 0;
    for (size_t i = 0; i < count_; ++i) n += calls_[i].load() != 0;
    return n;
  }
  size_t Failed() const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const Status& s : statuses_) n += !s.ok();
    return n;
  }
  Status status(size_t i) const {
    std::lock_guard<std::mutex> lock(mu_);
    return statuses_[i];
  }
  std::string FirstError() const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Status& s : statuses_) {
      if (!s.ok()) return s.ToString();
    }
    return "none";
  }

 private:
  static void OnDone(Slice* slice, const Status& status) {
    auto* t = static_cast<Transfer*>(slice->owner);
    const size_t i = static_cast<size_t>(slice - t->slices_.get());
    if (t->calls_[i].fetch_add(1) != 0) return;  // counted: NotOnce() reports it
    if (t->first_.exchange(true) == false && t->first_done_) t->first_done_();
    std::lock_guard<std::mutex> lock(t->mu_);
    t->statuses_[i] = status;
    if (++t->done_ == t->count_) t->cv_.notify_all();
  }

  const size_t count_;
  std::unique_ptr<Slice[]> slices_;
  std::unique_ptr<std::atomic<int>[]> calls_;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> first_{false};
  std::function<void()> first_done_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Status> statuses_;  // guarded by mu_
  size_t done_ = 0;               // guarded by mu_
};

class TransportConformance : public ::testing::TestWithParam<ConformanceTarget> {
 protected:
  // How long any transfer may take to end once its peer is gone: what freeBatch
  // waits for slices on the wire. Longer means a hang.
  static constexpr auto kEndBound =
      std::chrono::milliseconds(kTransferTimeoutMs + kConnectTimeoutMs + 1000);

  const ConformanceTarget& target() const { return GetParam(); }

  // Starts the transport and its far side: buffer 0 read-write, buffer 1 read-only,
  // `size` bytes each, holding the pattern of BufferSeed(kFill, index).
  void SetUpTarget(uint64_t size) {
    size_ = size;
    config_.transfer_timeout_ms = kTransferTimeoutMs;
    config_.connect_timeout_ms = kConnectTimeoutMs;
    config_.ucx_tls = target().ucx_tls;
    local_.name = "conformance-" + std::to_string(::getpid());
    local_.machine_id = ReadMachineId();
    local_.pid = static_cast<uint32_t>(::getpid());
    ASSERT_TRUE(CreateTransport(target().transport, &transport_).ok());
    TransportContext context{&config_, &registry_, local_.name, "127.0.0.1", "127.0.0.1"};
    Status s = transport_->Start(context, &local_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    if (target().peer_process) {
      StartPeer();
    } else {
      StartOwnSegment();
    }
    if (HasFatalFailure()) return;
    ASSERT_TRUE(transport_->CanReach(remote_)) << target().transport;
    s = transport_->GetPeer(remote_, &peer_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  void TearDown() override {
    peer_.reset();
    if (transport_) transport_->Stop();
  }

  void StartOwnSegment() {
    for (int i = 0; i < 2; ++i) {
      own_[i].reset(new char[size_]);
      te_test::FillPattern(own_[i].get(), size_, BufferSeed(kFill, i));
      SegmentBuffer b;
      b.base = reinterpret_cast<uint64_t>(own_[i].get());
      b.length = size_;
      b.location = "cpu:0";
      b.permission = i == 0 ? Permission::kRemoteReadWrite : Permission::kRemoteRead;
      ASSERT_TRUE(registry_.Add(b).ok());
      base_[i] = b.base;
    }
    remote_ = local_;
    remote_.buffers = registry_.RemoteVisible();
  }

  void StartPeer() {
    std::vector<std::string> args = {"--transports=" + target().transport,
                                     "--buffers=2",
                                     "--size=" + std::to_string(size_),
                                     "--permission=rw,ro",
                                     "--fill=" + std::to_string(kFill),
                                     "--transfer_timeout_ms=" + std::to_string(kTransferTimeoutMs),
                                     "--log_level=error"};
    if (target().same_host) args.push_back("--machine_id=" + local_.machine_id);
    for (const std::string& a : target().peer_args) args.push_back(a);
    std::string error;
    ASSERT_TRUE(peer_process_.Start(args, &error)) << error;
    ASSERT_EQ(peer_process_.buffers().size(), 2u);
    for (int i = 0; i < 2; ++i) base_[i] = peer_process_.buffers()[i].base;
    P2pMetadataClient lookup({local_.name, ""}, kConnectTimeoutMs);
    Status s = lookup.Lookup(peer_process_.segment_name(), &remote_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // FNV-1a of the far side's bytes [addr, addr+len).
  uint64_t RemoteChecksum(uint64_t addr, uint64_t len) {
    if (!target().peer_process) {
      return te_test::Checksum(reinterpret_cast<const void*>(addr), len);
    }
    std::string reply =
        peer_process_.Command("CHECKSUM " + std::to_string(addr) + " " + std::to_string(len));
    std::istringstream in(reply);
    std::string word, hex;
    in >> word >> hex;
    EXPECT_EQ(word, "CHECKSUM") << reply;
    return std::strtoull(hex.c_str(), nullptr, 16);
  }

  // Unregisters the far side's buffer `index`; from any thread.
  void UnregisterRemote(int index) {
    if (target().peer_process) {
      peer_process_.SendLine("UNREGISTER " + std::to_string(base_[index]));
    } else {
      unregistered_ = registry_.Remove(base_[index], kTransferTimeoutMs);
    }
  }
  // Waits for UnregisterRemote's answer.
  void ExpectUnregistered() {
    if (!target().peer_process) {
      EXPECT_TRUE(unregistered_.ok()) << unregistered_.ToString();
      return;
    }
    std::string line;
    while (peer_process_.ReadLine(&line, 20s) && line.rfind("OK", 0) != 0 &&
           line.rfind("ERR", 0) != 0) {
    }
    EXPECT_EQ(line, "OK");
  }

  // Submits and waits; every slice must report exactly once within the bound.
  void Run(Transfer* t, std::chrono::milliseconds bound = 60s) {
    t->SubmitTo(peer_.get());
    ASSERT_TRUE(t->Wait(bound)) << "slices did not all end within " << bound.count() << " ms";
    EXPECT_EQ(t->NotOnce(), 0u) << "on_done ran other than exactly once";
  }

  Config config_;
  BufferRegistry registry_;
  SegmentDescriptor local_;
  SegmentDescriptor remote_;
  std::unique_ptr<Transport> transport_;
  std::shared_ptr<TransportPeer> peer_;
  PeerProcess peer_process_;
  std::unique_ptr<char[]> own_[2];
  uint64_t base_[2] = {0, 0};
  uint64_t size_ = 0;
  Status unregistered_;
};

// Local memory with guard bytes around the region a transfer may touch.
struct LocalRegion {
  static constexpr uint64_t kGuard = 64;
  static constexpr uint64_t kSkew = 3;  // the region starts unaligned
  explicit LocalRegion(uint64_t length)
      : length(length), memory(new char[length + 2 * kGuard + kSkew]) {
    std::memset(memory.get(), 0x5A, length + 2 * kGuard + kSkew);
  }
  char* data() { return memory.get() + kGuard + kSkew; }
  bool GuardsIntact() const {
    for (uint64_t i = 0; i < kGuard + kSkew; ++i) {
      if (memory[i] != 0x5A) return false;
    }
    for (uint64_t i = 0; i < kGuard; ++i) {
      if (memory[kGuard + kSkew + length + i] != 0x5A) return false;
    }
    return true;
  }
  uint64_t length;
  std::unique_ptr<char[]> memory;
};

constexpr uint64_t kSizes[] = {1, 3, 4095, 4097, 65537, kMiB + 13, kBig - 7};

// Every size from one byte to 64 MiB, at unaligned offsets on both sides, lands
// exactly the bytes asked for and nothing beside them.
TEST_P(TransportConformance, ConformanceReadWriteAllSizesUnaligned) {
  ASSERT_NO_FATAL_FAILURE(SetUpTarget(kBig + 2 * kMiB));
  uint64_t offset = 1;
  for (uint64_t size : kSizes) {
    SCOPED_TRACE("READ of " + std::to_string(size) + " bytes at offset " + std::to_string(offset));
    LocalRegion region(size);
    Transfer t(Request::READ, region.data(), base_[0] + offset, size, config_.slice_size);
    ASSERT_NO_FATAL_FAILURE(Run(&t));
    ASSERT_EQ(t.Failed(), 0u) << t.FirstError();
    EXPECT_EQ(te_test::FirstPatternMismatch(region.data(), size, BufferSeed(kFill, 0), offset), -1);
    EXPECT_TRUE(region.GuardsIntact());
    offset = offset * 3 % 65521 + 1;
  }
  uint64_t at = 5;
  for (uint64_t size : kSizes) {
    SCOPED_TRACE("WRITE of " + std::to_string(size) + " bytes at offset " + std::to_string(at));
    LocalRegion region(size);
    te_test::FillPattern(region.data(), size, 99 + size);
    Transfer t(Request::WRITE, region.data(), base_[0] + at, size, config_.slice_size);
    ASSERT_NO_FATAL_FAILURE(Run(&t));
    ASSERT_EQ(t.Failed(), 0u) << t.FirstError();
    EXPECT_EQ(RemoteChecksum(base_[0] + at, size), te_test::PatternChecksum(99 + size, 0, size));
    // The bytes either side keep the peer's pattern.
    EXPECT_EQ(RemoteChecksum(base_[0] + at - 5, 5),
              te_test::PatternChecksum(BufferSeed(kFill, 0), at - 5, 5));
    EXPECT_EQ(RemoteChecksum(base_[0] + at + size, 7),
              te_test::PatternChecksum(BufferSeed(kFill, 0), at + size, 7));
    at += size + 64;  // the next write and its neighbours lie past this one
  }
}

// Many small slices from several threads at once, READ and WRITE mixed: each ends
// exactly once and successfully.
TEST_P(TransportConformance, ConformanceOnDoneExactlyOnceUnderConcurrency) {
  ASSERT_NO_FATAL_FAILURE(SetUpTarget(kMiB));
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<LocalRegion>> regions;
  std::vector<std::unique_ptr<Transfer>> transfers;
  for (int i = 0; i < kThreads; ++i) {
    regions.push_back(std::make_unique<LocalRegion>(64 * 4096));
    const Request::OpCode op = i % 2 ? Request::WRITE : Request::READ;
    transfers.push_back(std::make_unique<Transfer>(op, regions.back()->data(),
                                                   base_[0] + i * 64 * 4096, 64 * 4096, 4096));
  }
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { transfers[i]->SubmitTo(peer_.get()); });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_TRUE(transfers[i]->Wait(60s));
    EXPECT_EQ(transfers[i]->NotOnce(), 0u);
    EXPECT_EQ(transfers[i]->Failed(), 0u) << transfers[i]->FirstError();
  }
  EXPECT_EQ(te_test::FirstPatternMismatch(regions[0]->data(), 64 * 4096, BufferSeed(kFill, 0), 0),
            -1);
}

// A slice cancelled before it is submitted is not moved: it fails, once, and the
// far side's bytes are untouched. Cancelling mid-transfer ends every slice once.
TEST_P(TransportConformance, ConformanceCancellation) {
  ASSERT_NO_FATAL_FAILURE(SetUpTarget(16 * kMiB));
  LocalRegion region(kMiB);
  te_test::FillPattern(region.data(), kMiB, 1234);
  Transfer before(Request::WRITE, region.data(), base_[0], kMiB, 64 * 1024);
  before.Cancel();
  ASSERT_NO_FATAL_FAILURE(Run(&before));
  EXPECT_EQ(before.Failed(), before.count());
  EXPECT_EQ(before.status(0).code(), Status::Code::kCancelled) << before.status(0).ToString();
  EXPECT_EQ(RemoteChecksum(base_[0], kMiB),
            te_test::PatternChecksum(BufferSeed(kFill, 0), 0, kMiB));

  LocalRegion big(16 * kMiB);
  Transfer during(Request::READ, big.data(), base_[0], 16 * kMiB, 64 * 1024);
  during.OnFirstDone([&during] { during.Cancel(); });
  ASSERT_NO_FATAL_FAILURE(Run(&during));
  // What completed carries the right bytes.
  for (size_t i = 0; i < during.count(); ++i) {
    if (!during.status(i).ok()) continue;
    const Slice& s = during.slice(i);
    EXPECT_EQ(
        te_test::FirstPatternMismatch(s.local, s.length, BufferSeed(kFill, 0), s.remote - base_[0]),
        -1);
  }
}

// Unregistering the far side's buffer while a copy into it runs: every slice ends
// once (moved or refused, never torn), and once unregistering returned, requests
// to the buffer are refused.
TEST_P(TransportConformance, ConformanceUnregisterWhileCopying) {
  ASSERT_NO_FATAL_FAILURE(SetUpTarget(kBig));
  LocalRegion region(kBig);
  Transfer t(Request::READ, region.data(), base_[0], kBig, 256 * 1024);
  std::thread unregistering;
  t.OnFirstDone([&] { unregistering = std::thread([this] { UnregisterRemote(0); }); });
  ASSERT_NO_FATAL_FAILURE(Run(&t));
  unregistering.join();
  ExpectUnregistered();
  for (size_t i = 0; i < t.count(); ++i) {
    if (!t.status(i).ok()) continue;
    const Slice& s = t.slice(i);
    ASSERT_EQ(
        te_test::FirstPatternMismatch(s.local, s.length, BufferSeed(kFill, 0), s.remote - base_[0]),
        -1)
        << "slice " << i;
  }
  LocalRegion after(4096);
  Transfer late(Request::WRITE, after.data(), base_[0], 4096, 4096);
  if (!target().refuses_after_far_unregister) return;  // see ConformanceTarget
  ASSERT_NO_FATAL_FAILURE(Run(&late));
  EXPECT_EQ(late.Failed(), 1u) << "a write into an unregistered buffer went through";
}

// A buffer peers may only read refuses WRITE, leaving its bytes as they were, and
// serves READ.
TEST_P(TransportConformance, ConformanceReadOnlyRefusesWrite) {
  ASSERT_NO_FATAL_FAILURE(SetUpTarget(kMiB));
  LocalRegion region(kMiB);
  te_test::FillPattern(region.data(), kMiB, 4321);
  Transfer write(Request::WRITE, region.data(), base_[1] + 17, kMiB - 17, 64 * 1024);
  ASSERT_NO_FATAL_FAILURE(Run(&write));
  EXPECT_EQ(write.Failed(), write.count());
  EXPECT_EQ(RemoteChecksum(base_[1], kMiB),
            te_test::PatternChecksum(BufferSeed(kFill, 1), 0, kMiB));
  Transfer read(Request::READ, region.data(), base_[1] + 17, kMiB - 17, 64 * 1024);
  ASSERT_NO_FATAL_FAILURE(Run(&read));
  EXPECT_EQ(read.Failed(), 0u) << read.FirstError();
  EXPECT_EQ(te_test::FirstPatternMismatch(region.data(), kMiB - 17, BufferSeed(kFill, 1), 17), -1);
}

// Ranges not wholly inside a registered buffer are refused, whichever way they miss.
TEST_P(TransportConformance, ConformanceOutOfRangeRefused) {
  ASSERT_NO_FATAL_FAILURE(SetUpTarget(kMiB));
  LocalRegion region(8192);
  te_test::FillPattern(region.data(), 8192, 555);
  const uint64_t end = base_[0] + kMiB;
  const struct {
    uint64_t remote, length;
  } misses[] = {{end - 100, 200}, {end, 16}, {base_[0] - 8, 16}, {UINT64_MAX - 8, 4096}};
  for (const auto& miss : misses) {
    for (Request::OpCode op : {Request::READ, Request::WRITE}) {
      SCOPED_TRACE(std::to_string(miss.remote) + "+" + std::to_string(miss.length));
      Transfer t(op, region.data(), miss.remote, miss.length, 64 * 1024);
      ASSERT_NO_FATAL_FAILURE(Run(&t));
      EXPECT_EQ(t.Failed(), t.count());
    }
  }
  EXPECT_EQ(RemoteChecksum(base_[0] + kMiB - 4096, 4096),
            te_test::PatternChecksum(BufferSeed(kFill, 0), kMiB - 4096, 4096));
}

// The far side's process is killed while a 64 MiB transfer is under way: every slice
// still ends, once, within what freeBatch waits for; slices in flight fail where the
// transport can see it; and what is submitted afterwards fails.
TEST_P(TransportConformance, ConformancePeerDiesMidTransfer) {
  if (!target().peer_process) GTEST_SKIP() << "the far side is this process";
  ASSERT_NO_FATAL_FAILURE(SetUpTarget(kBig));
  LocalRegion region(kBig);
  Transfer t(Request::READ, region.data(), base_[0], kBig, 256 * 1024);
  const pid_t pid = peer_process_.pid();
  std::atomic<size_t> ended_before_kill{0};
  std::chrono::steady_clock::time_point killed;
  t.OnFirstDone([&] {
    ended_before_kill = t.Ended();
    killed = std::chrono::steady_clock::now();
    ::kill(pid, SIGKILL);
  });
  t.SubmitTo(peer_.get());
  ASSERT_TRUE(t.Wait(kEndBound + 60s)) << "slices hang after the peer died";
  EXPECT_LE(std::chrono::steady_clock::now() - killed, kEndBound)
      << "slices in flight took longer to end than transfer_timeout_ms allows";
  EXPECT_EQ(t.NotOnce(), 0u);
  int wait_status = 0;
  ASSERT_TRUE(peer_process_.WaitExit(10s, &wait_status));
  ASSERT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL)
      << "the peer did not die of the kill";
  // Killed while most of the transfer was still to come: the death was mid-transfer.
  ASSERT_LT(ended_before_kill.load(), t.count());
  if (target().in_flight_fail_on_death) {
    EXPECT_GT(t.Failed(), 0u) << "no slice noticed the peer's death";
  }

  LocalRegion after(kMiB);
  Transfer late(Request::READ, after.data(), base_[0], kMiB, 256 * 1024);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(Run(&late, kEndBound + 60s));
  EXPECT_EQ(late.Failed(), late.count());
  EXPECT_LE(std::chrono::steady_clock::now() - start, kEndBound)
      << "failing took longer than transfer_timeout_ms allows";
}

INSTANTIATE_TEST_SUITE_P(Transports, TransportConformance,
                         ::testing::ValuesIn(ConformanceTargets()),
                         [](const ::testing::TestParamInfo<ConformanceTarget>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace te
