#include "memory/buffer_registry.h"

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "memory/pin_table.h"

namespace te {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

BufferInfo Info(uint64_t base, uint64_t length, Permission p = Permission::kRemoteReadWrite) {
  BufferInfo b;
  b.base = base;
  b.length = length;
  b.location = "cpu:0";
  b.permission = p;
  return b;
}

// This thread's kernel id, for ThreadAsleep.
pid_t ThisThreadId() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// True while thread `tid` of this process is asleep (state S or D in /proc): blocked
// in a wait, which a thread that has not yet run, or is still running, is not.
bool ThreadAsleep(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(in, line);
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() &&
         (line[paren + 2] == 'S' || line[paren + 2] == 'D');
}

// Pins currently held on the buffer registered at base (-1 when none is registered).
int64_t PinsAt(const BufferRegistry& r, uint64_t base) {
  const auto table = r.Snapshot();
  const BufferTable::Entry* b = table->Find(base);
  return b ? (*b)->pins->slot((*b)->info.pin_slot)->pins.load() : -1;
}

// Polls cond until it holds or the deadline passes.
template <typename Cond>
bool WaitFor(Cond cond, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(BufferRegistryTest, AddRejectsBadRanges) {
  BufferRegistry r;
  EXPECT_EQ(r.Add(Info(0x1000, 0)).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(r.Add(Info(0, 0x1000)).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(r.Add(Info(UINT64_MAX, 2)).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(r.Add(Info(1ull << 63, 1ull << 63)).code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(r.Snapshot()->empty());
  EXPECT_EQ(r.version(), 0u);
}

TEST(BufferRegistryTest, AddOverlaps) {
  BufferRegistry r;
  ASSERT_TRUE(r.Add(Info(0x10000, 0x1000)).ok());
  uint64_t v = r.version();
  const std::pair<uint64_t, uint64_t> overlapping[] = {
      {0x10000, 0x1000},  // identical
      {0x10000, 1},       // same base, shorter
      {0xf000, 0x1001},   // before, reaching one byte in
      {0x10fff, 0x1000},  // after, starting on the last byte
      {0x10100, 0x10},    // inside
      {0x8000, 0x10000},  // containing
  };
  for (auto [base, length] : overlapping) {
    SCOPED_TRACE(testing::Message() << std::hex << base << "+" << length);
    Status s = r.Add(Info(base, length));
    EXPECT_EQ(s.code(), Status::Code::kAlreadyExists);
    EXPECT_NE(s.message().find("overlaps"), std::string::npos) << s.message();
  }
  EXPECT_EQ(r.version(), v);  // failed adds publish nothing
  EXPECT_EQ(r.Snapshot()->size(), 1u);

  // Adjacent on either side is fine.
  EXPECT_TRUE(r.Add(Info(0xf000, 0x1000)).ok());
  EXPECT_TRUE(r.Add(Info(0x11000, 0x1000)).ok());
  EXPECT_TRUE(r.Add(Info(0x100000, 0x10)).ok());
  EXPECT_TRUE(r.Add(Info(0x1000, 0x10)).ok());
  // Now something spanning a gap and a neighbour.
  EXPECT_EQ(r.Add(Info(0x20000, 0x100000)).code(), Status::Code::kAlreadyExists);
  EXPECT_EQ(r.Add(Info(0x1, 0x100000)).code(), Status::Code::kAlreadyExists);

  auto table = r.Snapshot();
  ASSERT_EQ(table->size(), 5u);
  uint64_t previous = 0;
  table->ForEach([&](const BufferTable::Entry& b) {
    EXPECT_LT(previous, b->info.base);  // in order of base
    previous = b->info.base;
  });
  EXPECT_EQ(r.version(), v + 4);
}

TEST(BufferRegistryTest, RemoveUnknown) {
  BufferRegistry r;
  EXPECT_EQ(r.Remove(0x1000).code(), Status::Code::kNotFound);
  ASSERT_TRUE(r.Add(Info(0x1000, 0x1000)).ok());
  uint64_t v = r.version();
  Status s = r.Remove(0x1800);  // inside, but not the base
  EXPECT_EQ(s.code(), Status::Code::kNotFound);
  EXPECT_NE(s.message().find("0x1800"), std::string::npos) << s.message();
  EXPECT_EQ(r.version(), v);
  EXPECT_TRUE(r.Remove(0x1000).ok());
  EXPECT_EQ(r.version(), v + 1);
  EXPECT_EQ(r.Remove(0x1000).code(), Status::Code::kNotFound);
  EXPECT_TRUE(r.Snapshot()->empty());
  // The range can be registered again.
  EXPECT_TRUE(r.Add(Info(0x1000, 0x2000)).ok());
}

TEST(BufferRegistryTest, SnapshotIsImmutable) {
  BufferRegistry r;
  ASSERT_TRUE(r.Add(Info(0x1000, 0x1000)).ok());
  auto before = r.Snapshot();
  ASSERT_TRUE(r.Add(Info(0x3000, 0x1000)).ok());
  ASSERT_TRUE(r.Remove(0x1000).ok());
  EXPECT_EQ(before->size(), 1u);
  EXPECT_NE(before->Find(0x1000), nullptr);
  auto after = r.Snapshot();
  ASSERT_EQ(after->size(), 1u);
  EXPECT_NE(after->Find(0x3000), nullptr);
}

TEST(BufferRegistryTest, PinRangeBounds) {
  BufferRegistry r;
  ASSERT_TRUE(r.Add(Info(0x10000, 0x1000)).ok());
  ASSERT_TRUE(r.Add(Info(0x11000, 0x1000)).ok());  // adjacent neighbour
  auto table = r.Snapshot();
  BufferPin pin;
  EXPECT_TRUE(BufferRegistry::PinRange(*table, 0x10000, 0x1000, Access::kLocal, &pin).ok());
  EXPECT_TRUE(BufferRegistry::PinRange(*table, 0x10fff, 1, Access::kRemoteWrite, &pin).ok());
  ASSERT_NE(pin.info(), nullptr);
  EXPECT_EQ(pin.info()->base, 0x10000u);
  pin.Release();
  EXPECT_EQ(pin.info(), nullptr);

  const std::pair<uint64_t, uint64_t> outside[] = {
      {0xffff, 1},        // just before
      {0xffff, 2},        // straddles the start
      {0x10000, 0x2000},  // spans two adjacent buffers
      {0x11fff, 2},       // runs past the end
      {0x12000, 1},       // just after
      {0x10001, UINT64_MAX}, {UINT64_MAX, 1}, {0, 1},
  };
  for (auto [addr, len] : outside) {
    SCOPED_TRACE(testing::Message() << std::hex << addr << "+" << len);
    Status s = BufferRegistry::PinRange(*table, addr, len, Access::kLocal, &pin);
    EXPECT_EQ(s.code(), Status::Code::kOutOfRange);
    EXPECT_NE(s.message().find("not inside"), std::string::npos) << s.message();
    EXPECT_EQ(pin.info(), nullptr);
  }
  EXPECT_EQ(PinsAt(r, 0x10000), 0);
  EXPECT_EQ(PinsAt(r, 0x11000), 0);
}

TEST(BufferRegistryTest, PinRangePermissions) {
  BufferRegistry r;
  ASSERT_TRUE(r.Add(Info(0x10000, 0x1000, Permission::kLocalOnly)).ok());
  ASSERT_TRUE(r.Add(Info(0x20000, 0x1000, Permission::kRemoteRead)).ok());
  ASSERT_TRUE(r.Add(Info(0x30000, 0x1000, Permission::kRemoteReadWrite)).ok());
  auto table = r.Snapshot();
  BufferPin pin;
  using Code = Status::Code;
  auto code = [&](uint64_t addr, Access a) {
    return BufferRegistry::PinRange(*table, addr, 0x100, a, &pin).code();
  };
  // Local-only: usable locally, invisible (not merely forbidden) to peers.
  EXPECT_EQ(code(0x10000, Access::kLocal), Code::kOk);
  EXPECT_EQ(code(0x10000, Access::kRemoteRead), Code::kOutOfRange);
  EXPECT_EQ(code(0x10000, Access::kRemoteWrite), Code::kOutOfRange);
  // Read-only for peers.
  EXPECT_EQ(code(0x20000, Access::kLocal), Code::kOk);
  EXPECT_EQ(code(0x20000, Access::kRemoteRead), Code::kOk);
  EXPECT_EQ(code(0x20000, Access::kRemoteWrite), Code::kPermissionDenied);
  Status s = BufferRegistry::PinRange(*table, 0x20000, 1, Access::kRemoteWrite, &pin);
  EXPECT_NE(s.message().find("read-only"), std::string::npos) << s.message();
  // Read-write.
  EXPECT_EQ(code(0x30000, Access::kLocal), Code::kOk);
  EXPECT_EQ(code(0x30000, Access::kRemoteRead), Code::kOk);
  EXPECT_EQ(code(0x30000, Access::kRemoteWrite), Code::kOk);
  // Out of range wins over permissions.
  EXPECT_EQ(BufferRegistry::PinRange(*table, 0x20f00, 0x200, Access::kRemoteWrite, &pin).code(),
            Code::kOutOfRange);
  pin.Release();
  EXPECT_EQ(PinsAt(r, 0x10000), 0);
  EXPECT_EQ(PinsAt(r, 0x20000), 0);
  EXPECT_EQ(PinsAt(r, 0x30000), 0);
}

TEST(BufferRegistryTest, PinCountsAndMoves) {
  BufferRegistry r;
  ASSERT_TRUE(r.Add(Info(0x1000, 0x1000)).ok());
  ASSERT_TRUE(r.Add(Info(0x4000, 0x1000)).ok());
  auto table = r.Snapshot();
  {
    BufferPin a;
    ASSERT_TRUE(BufferRegistry::PinRange(*table, 0x1000, 1, Access::kLocal, &a).ok());
    EXPECT_EQ(PinsAt(r, 0x1000), 1);
    // Re-pinning through the same BufferPin drops the old pin.
    ASSERT_TRUE(BufferRegistry::PinRange(*table, 0x4000, 1, Access::kLocal, &a).ok());
    EXPECT_EQ(PinsAt(r, 0x1000), 0);
    EXPECT_EQ(PinsAt(r, 0x4000), 1);

    BufferPin b(std::move(a));
    EXPECT_EQ(a.info(), nullptr);
    ASSERT_NE(b.info(), nullptr);
    EXPECT_EQ(PinsAt(r, 0x4000), 1);

    BufferPin c;
    ASSERT_TRUE(BufferRegistry::PinRange(*table, 0x1000, 1, Access::kLocal, &c).ok());
    c = std::move(b);  // releases c's pin on 0x1000, takes b's on 0x4000
    EXPECT_EQ(PinsAt(r, 0x1000), 0);
    EXPECT_EQ(PinsAt(r, 0x4000), 1);
    c.Release();
    c.Release();  // idempotent
    EXPECT_EQ(PinsAt(r, 0x4000), 0);
    ASSERT_TRUE(BufferRegistry::PinRange(*table, 0x4000, 1, Access::kLocal, &b).ok());
  }
  // Destruction releases.
  EXPECT_EQ(PinsAt(r, 0x4000), 0);
}

TEST(BufferRegistryTest, StaleSnapshotCannotPinRemovedBuffer) {
  BufferRegistry r;
  ASSERT_TRUE(r.Add(Info(0x1000, 0x1000)).ok());
  auto stale = r.Snapshot();
  ASSERT_TRUE(r.Remove(0x1000).ok());
  BufferPin pin;
  Status s = BufferRegistry::PinRange(*stale, 0x1000, 1, Access::kLocal, &pin);
  EXPECT_EQ(s.code(), Status::Code::kOutOfRange);
  EXPECT_NE(s.message().find("unregistered"), std::string::npos) << s.message();
  EXPECT_EQ(pin.info(), nullptr);
  const BufferTable::Entry& old = *stale->Find(0x1000);
  EXPECT_EQ(old->pins->slot(old->info.pin_slot)->pins.load(), 0u);
}

TEST(BufferRegistryTest, ReaderSeesNewRegistrations) {
  BufferRegistry r;
  BufferRegistry::Reader reader(&r);
  BufferPin pin;
  EXPECT_EQ(reader.Pin(0x1000, 1, Access::kRemoteRead, &pin).code(), Status::Code::kOutOfRange);
  uint64_t v0 = r.version();
  ASSERT_TRUE(r.Add(Info(0x1000, 0x1000)).ok());
  EXPECT_NE(r.version(), v0);
  EXPECT_TRUE(reader.Pin(0x1000, 1, Access::kRemoteRead, &pin).ok());
  pin.Release();
  ASSERT_TRUE(r.Add(Info(0x8000, 0x1000, Permission::kRemoteRead)).ok());
  EXPECT_TRUE(reader.Pin(0x8000, 0x1000, Access::kRemoteRead, &pin).ok());
  EXPECT_EQ(reader.Pin(0x8000, 1, Access::kRemoteWrite, &pin).code(),
            Status::Code::kPermissionDenied);
  pin.Release();
  ASSERT_TRUE(r.Remove(0x1000).ok());
  EXPECT_EQ(reader.Pin(0x1000, 1, Access::kRemoteRead, &pin).code(), Status::Code::kOutOfRange);
  // A different registration at the same address is picked up too.
  ASSERT_TRUE(r.Add(Info(0x1000, 0x10, Permission::kLocalOnly)).ok());
  EXPECT_EQ(reader.Pin(0x1000, 1, Access::kRemoteRead, &pin).code(), Status::Code::kOutOfRange);
  EXPECT_TRUE(reader.Pin(0x1000, 1, Access::kLocal, &pin).ok());
}

TEST(BufferRegistryTest, RemoteVisibleExcludesLocalOnly) {
  BufferRegistry r;
  EXPECT_TRUE(r.RemoteVisible().empty());
  ASSERT_TRUE(r.Add(Info(0x30000, 0x1000, Permission::kRemoteReadWrite)).ok());
  ASSERT_TRUE(r.Add(Info(0x10000, 0x1000, Permission::kLocalOnly)).ok());
  ASSERT_TRUE(r.Add(Info(0x20000, 0x2000, Permission::kRemoteRead)).ok());
  auto visible = r.RemoteVisible();
  ASSERT_EQ(visible.size(), 2u);
  EXPECT_EQ(visible[0].base, 0x20000u);  // sorted by base
  EXPECT_EQ(visible[0].length, 0x2000u);
  EXPECT_EQ(visible[0].permission, Permission::kRemoteRead);
  EXPECT_EQ(visible[0].location, "cpu:0");
  EXPECT_EQ(visible[1].base, 0x30000u);
  EXPECT_EQ(visible[1].permission, Permission::kRemoteReadWrite);
  ASSERT_TRUE(r.Remove(0x20000).ok());
  visible = r.RemoteVisible();
  ASSERT_EQ(visible.size(), 1u);
  EXPECT_EQ(visible[0].base, 0x30000u);
}

TEST(BufferRegistryTest, RemoveWaitsForPinHeldInAnotherThread) {
  auto r = std::make_shared<BufferRegistry>();
  ASSERT_TRUE(r->Add(Info(0x1000, 0x1000)).ok());

  std::atomic<int> step{0};  // ordering of events, each records the step it saw
  std::atomic<int> released_at{-1};
  std::atomic<int> removed_at{-1};
  std::atomic<bool> pinned{false};
  std::atomic<bool> release_now{false};
  Status remove_status = Status::Internal("not run");

  std::thread holder([&, r] {
    BufferRegistry::Reader reader(r.get());
    BufferPin pin;
    if (!reader.Pin(0x1000, 0x1000, Access::kRemoteWrite, &pin).ok()) return;
    pinned = true;
    WaitFor([&] { return release_now.load(); }, 10s);
    released_at = step.fetch_add(1);
    pin.Release();
  });
  ASSERT_TRUE(WaitFor([&] { return pinned.load(); }, 5s));

  std::atomic<pid_t> remover_tid{0};
  std::thread remover([&, r] {
    remover_tid = ThisThreadId();
    remove_status = r->Remove(0x1000);
    removed_at = step.fetch_add(1);
  });
  // Remove hides the buffer at once but must not return while the pin is held: once
  // it has hidden it, the remover goes to sleep waiting (or, wrongly, returns).
  ASSERT_TRUE(WaitFor([&] { return r->Snapshot()->empty(); }, 5s));
  ASSERT_TRUE(
      WaitFor([&] { return removed_at.load() >= 0 || ThreadAsleep(remover_tid.load()); }, 5s));
  EXPECT_EQ(removed_at.load(), -1) << "Remove returned while a pin was held";
  BufferRegistry::Reader late(r.get());
  BufferPin late_pin;
  EXPECT_EQ(late.Pin(0x1000, 1, Access::kLocal, &late_pin).code(), Status::Code::kOutOfRange);

  release_now = true;
  const bool finished = WaitFor([&] { return removed_at.load() >= 0; }, 5s);
  holder.join();
  if (!finished) {
    ADD_FAILURE() << "Remove did not return within 5 s of the pin's release";
    remover.detach();  // it keeps the registry alive through its own reference
    return;
  }
  remover.join();
  EXPECT_TRUE(remove_status.ok()) << remove_status.ToString();
  EXPECT_LT(released_at.load(), removed_at.load());
}

TEST(BufferRegistryTest, NoPinSurvivesRemove) {
  // A reader pins and releases in a loop while the buffer is removed: once Remove has
  // returned, no thread may hold (or later obtain) a pin on it.
  auto r = std::make_shared<BufferRegistry>();
  ASSERT_TRUE(r->Add(Info(0x1000, 0x1000)).ok());
  std::atomic<bool> removed{false};
  std::atomic<bool> stop{false};
  std::atomic<int> pins_ok{0};
  std::atomic<int> attempts{0};
  std::atomic<int> violations{0};
  std::thread reader_thread([&, r] {
    BufferRegistry::Reader reader(r.get());
    while (!stop.load()) {
      ++attempts;
      BufferPin pin;
      if (reader.Pin(0x1800, 0x10, Access::kRemoteRead, &pin).ok()) {
        ++pins_ok;
        if (removed.load()) ++violations;
        std::this_thread::yield();
        if (removed.load()) ++violations;
      }
    }
  });
  ASSERT_TRUE(WaitFor([&] { return pins_ok.load() > 100; }, 5s));
  ASSERT_TRUE(r->Remove(0x1000).ok());
  removed = true;
  // The reader keeps trying after the removal: a hundred more attempts, however long
  // this machine takes for them.
  const int attempts_at_removal = attempts.load();
  EXPECT_TRUE(WaitFor([&] { return attempts.load() > attempts_at_removal + 100; }, 10s));
  stop = true;
  reader_thread.join();
  EXPECT_EQ(violations.load(), 0);
}

TEST(BufferRegistryTest, RemoveGivesUpAfterDrainTimeout) {
  // A pin that is never released (a peer died holding it) bounds Remove's wait; the
  // buffer is unregistered anyway.
  BufferRegistry r;
  ASSERT_TRUE(r.Add(Info(0x1000, 0x1000)).ok());
  BufferPin stuck;
  ASSERT_TRUE(
      BufferRegistry::PinRange(*r.Snapshot(), 0x1000, 0x10, Access::kRemoteRead, &stuck).ok());
  const auto start = Clock::now();
  Status s = r.Remove(0x1000, /*drain_timeout_ms=*/50);
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(s.code(), Status::Code::kTimeout) << s.ToString();
  EXPECT_GE(elapsed, 50ms);
  EXPECT_LT(elapsed, 2s);
  EXPECT_TRUE(r.Snapshot()->empty());
  EXPECT_EQ(r.Remove(0x1000).code(), Status::Code::kNotFound);
  BufferRegistry::Reader reader(&r);
  BufferPin late;
  EXPECT_EQ(reader.Pin(0x1000, 1, Access::kLocal, &late).code(), Status::Code::kOutOfRange);
  stuck.Release();
  // The range can be registered again, and works.
  ASSERT_TRUE(r.Add(Info(0x1000, 0x1000)).ok());
  EXPECT_TRUE(reader.Pin(0x1000, 1, Access::kLocal, &late).ok());
}

TEST(BufferRegistryTest, TooManyBuffers) {
  constexpr uint32_t kPinTableSlots = 4096;
  BufferRegistry r(kPinTableSlots);
  for (uint64_t i = 0; i < kPinTableSlots; ++i) {
    ASSERT_TRUE(r.Add(Info(0x1000 * (i + 1), 0x100)).ok()) << i;
  }
  const uint64_t v = r.version();
  Status s = r.Add(Info(0x10000000, 0x100));
  EXPECT_EQ(s.code(), Status::Code::kResourceExhausted) << s.ToString();
  EXPECT_EQ(r.version(), v);
  EXPECT_EQ(r.Snapshot()->size(), kPinTableSlots);
  ASSERT_TRUE(r.Remove(0x5000).ok());
  ASSERT_TRUE(r.Add(Info(0x10000000, 0x100)).ok());
  BufferPin pin;
  EXPECT_TRUE(
      BufferRegistry::PinRange(*r.Snapshot(), 0x10000000, 0x100, Access::kLocal, &pin).ok());
}

TEST(BufferRegistryTest, SharedPinTable) {
  BufferRegistry r;
  EXPECT_EQ(r.pin_table_name(), "");
  const std::string name = "/te." + std::to_string(::getpid()) + ".regtest";
  ASSERT_TRUE(r.SharePinTable(name).ok());
  EXPECT_EQ(r.pin_table_name(), name);
  ASSERT_TRUE(r.Add(Info(0x1000, 0x1000)).ok());
  EXPECT_EQ(r.SharePinTable(name + "b").code(), Status::Code::kFailedPrecondition);

  // The published buffer carries the slot a same-host peer pins it by.
  auto visible = r.RemoteVisible();
  ASSERT_EQ(visible.size(), 1u);
  ASSERT_NE(visible[0].pin_slot, SegmentBuffer::kNoPinSlot);
  PinTable* raw = nullptr;
  ASSERT_TRUE(PinTable::Attach(name, &raw).ok());
  std::unique_ptr<PinTable> peer(raw);
  ASSERT_TRUE(peer->Pin(visible[0].pin_slot, visible[0].pin_generation, 0x1000, 0x1000));
  EXPECT_EQ(PinsAt(r, 0x1000), 1);

  // Remove waits for the peer's pin like for our own.
  std::atomic<bool> removed{false};
  std::atomic<pid_t> remover_tid{0};
  std::thread remover([&] {
    remover_tid = ThisThreadId();
    EXPECT_TRUE(r.Remove(0x1000, 5000).ok());
    removed = true;
  });
  // Started, hid the buffer, and went to sleep waiting (or, wrongly, returned).
  ASSERT_TRUE(WaitFor([&] { return r.Snapshot()->empty(); }, 5s));
  ASSERT_TRUE(WaitFor([&] { return removed.load() || ThreadAsleep(remover_tid.load()); }, 5s));
  EXPECT_FALSE(removed.load());
  peer->Unpin(visible[0].pin_slot);
  EXPECT_TRUE(WaitFor([&] { return removed.load(); }, 5s));
  remover.join();
  EXPECT_FALSE(peer->Pin(visible[0].pin_slot, visible[0].pin_generation, 0x1000, 0x1000));
}

// Regression: RemoteVisible iterated `*Snapshot()` in a range-for; the temporary
// shared_ptr died before the loop body ran, so an Add or Remove in another thread (a
// peer's GET_SEGMENT racing registerLocalMemory) freed the table mid-iteration. A plain
// build crashed here nearly every run.
TEST(BufferRegistryTest, RemoteVisibleWhileRegistering) {
  BufferRegistry r;
  for (uint64_t i = 0; i < 64; ++i) ASSERT_TRUE(r.Add(Info(0x100000 * (i + 1), 0x1000)).ok());
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    for (uint64_t n = 0; !stop.load(); ++n) {
      const uint64_t base = 0x100000 * (n % 64 + 1);
      if (!r.Remove(base, 1000).ok() || !r.Add(Info(base, 0x1000)).ok()) break;
    }
  });
  int bad = 0;
  const auto deadline = Clock::now() + 300ms;
  while (Clock::now() < deadline && bad == 0) {
    for (const SegmentBuffer& b : r.RemoteVisible()) {
      if (b.base % 0x100000 != 0 || b.base == 0 || b.base > 0x100000 * 64 || b.length != 0x1000 ||
          b.location != "cpu:0") {
        ++bad;
      }
    }
  }
  stop = true;
  churn.join();
  EXPECT_EQ(bad, 0);
}

}  // namespace
}  // namespace te
