#include "memory/pin_table.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace te {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
constexpr uint32_t kPinTableSlots = 4096;  // a small table: the tests fill it

std::unique_ptr<PinTable> CreateTable(const std::string& shm_name = "") {
  PinTable* t = nullptr;
  Status s = PinTable::Create(shm_name, kPinTableSlots, &t);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return std::unique_ptr<PinTable>(t);
}

// A fresh name per call, in the /te.<pid>. family the engine cleans up after crashes.
std::string UniqueShmName() {
  static std::atomic<int> n{0};
  return "/te." + std::to_string(::getpid()) + ".pintest" + std::to_string(n++);
}

bool ShmExists(const std::string& name) {
  struct stat st;
  return ::stat(("/dev/shm/" + name.substr(1)).c_str(), &st) == 0;
}

TEST(PinTableTest, PrivateTable) {
  auto t = CreateTable();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shm_name(), "");
  uint32_t slot = 99999;
  uint64_t gen = 0;
  ASSERT_TRUE(t->Acquire(0x1000, 0x2000, &slot, &gen).ok());
  EXPECT_LT(slot, kPinTableSlots);
  EXPECT_GT(gen, 0u);
  EXPECT_EQ(t->slot(slot)->alive.load(), 1u);
  EXPECT_EQ(t->slot(slot)->base.load(), 0x1000u);
  EXPECT_EQ(t->slot(slot)->length.load(), 0x2000u);
  EXPECT_EQ(t->slot(slot)->pins.load(), 0u);
}

TEST(PinTableTest, PinChecksEverything) {
  auto t = CreateTable();
  uint32_t slot;
  uint64_t gen;
  ASSERT_TRUE(t->Acquire(0x1000, 0x2000, &slot, &gen).ok());
  ASSERT_TRUE(t->Pin(slot, gen, 0x1000, 0x2000));
  ASSERT_TRUE(t->Pin(slot, gen, 0x1000, 0x2000));
  EXPECT_EQ(t->slot(slot)->pins.load(), 2u);
  t->Unpin(slot);
  t->Unpin(slot);
  EXPECT_EQ(t->slot(slot)->pins.load(), 0u);

  // Anything that does not describe the slot's current buffer fails and leaves no pin.
  EXPECT_FALSE(t->Pin(slot, gen + 1, 0x1000, 0x2000));
  EXPECT_FALSE(t->Pin(slot, gen - 1, 0x1000, 0x2000));
  EXPECT_FALSE(t->Pin(slot, gen, 0x1001, 0x2000));
  EXPECT_FALSE(t->Pin(slot, gen, 0x1000, 0x1fff));
  EXPECT_FALSE(t->Pin((slot + 1) % kPinTableSlots, gen, 0x1000, 0x2000));  // a free slot
  EXPECT_FALSE(t->Pin(kPinTableSlots, gen, 0x1000, 0x2000));               // out of the table
  EXPECT_FALSE(t->Pin(UINT32_MAX, gen, 0x1000, 0x2000));
  EXPECT_EQ(t->slot(slot)->pins.load(), 0u);
  EXPECT_EQ(t->slot((slot + 1) % kPinTableSlots)->pins.load(), 0u);
}

TEST(PinTableTest, RetireWithoutPins) {
  auto t = CreateTable();
  uint32_t slot;
  uint64_t gen;
  ASSERT_TRUE(t->Acquire(0x1000, 0x10, &slot, &gen).ok());
  const auto start = Clock::now();
  EXPECT_TRUE(t->Retire(slot, 5000));
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_EQ(t->slot(slot)->alive.load(), 0u);
  EXPECT_FALSE(t->Pin(slot, gen, 0x1000, 0x10));
  EXPECT_EQ(t->slot(slot)->pins.load(), 0u);
}

TEST(PinTableTest, RetireWaitsForPins) {
  auto t = CreateTable();
  uint32_t slot;
  uint64_t gen;
  ASSERT_TRUE(t->Acquire(0x1000, 0x10, &slot, &gen).ok());
  ASSERT_TRUE(t->Pin(slot, gen, 0x1000, 0x10));
  std::atomic<bool> unpinned{false};
  std::thread holder([&] {
    std::this_thread::sleep_for(100ms);
    unpinned = true;
    t->Unpin(slot);
  });
  const auto start = Clock::now();
  EXPECT_TRUE(t->Retire(slot, 5000));
  EXPECT_TRUE(unpinned.load());  // Retire returned only after the pin went away
  EXPECT_GE(Clock::now() - start, 90ms);
  holder.join();
}

TEST(PinTableTest, RetireGivesUpAfterTimeout) {
  auto t = CreateTable();
  uint32_t slot;
  uint64_t gen;
  ASSERT_TRUE(t->Acquire(0x1000, 0x10, &slot, &gen).ok());
  ASSERT_TRUE(t->Pin(slot, gen, 0x1000, 0x10));  // a peer that died holding a pin
  const auto start = Clock::now();
  EXPECT_FALSE(t->Retire(slot, 50));
  const auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 50ms);
  EXPECT_LT(elapsed, 2s);
  // The slot is dead: no new pins, and it is not handed out again while pinned.
  EXPECT_FALSE(t->Pin(slot, gen, 0x1000, 0x10));
  uint32_t other;
  uint64_t other_gen;
  for (uint32_t i = 1; i < kPinTableSlots; ++i) {
    ASSERT_TRUE(t->Acquire(0x100000 + i * 0x10, 0x10, &other, &other_gen).ok());
    ASSERT_NE(other, slot);
  }
  EXPECT_EQ(t->Acquire(0x1, 0x1, &other, &other_gen).code(), Status::Code::kResourceExhausted);
  // Once the stuck pin goes, the slot is reusable, under a new generation.
  t->Unpin(slot);
  ASSERT_TRUE(t->Acquire(0x1000, 0x10, &other, &other_gen).ok());
  EXPECT_EQ(other, slot);
  EXPECT_GT(other_gen, gen);
  EXPECT_FALSE(t->Pin(slot, gen, 0x1000, 0x10));  // the old generation never matches again
  EXPECT_TRUE(t->Pin(slot, other_gen, 0x1000, 0x10));
  t->Unpin(slot);
}

TEST(PinTableTest, ExhaustionAndReuse) {
  auto t = CreateTable();
  uint32_t slots[kPinTableSlots];
  uint64_t gens[kPinTableSlots];
  for (uint32_t i = 0; i < kPinTableSlots; ++i) {
    ASSERT_TRUE(t->Acquire(0x1000 * (i + 1), 0x1000, &slots[i], &gens[i]).ok()) << i;
  }
  uint32_t slot;
  uint64_t gen;
  Status s = t->Acquire(0x1, 0x1, &slot, &gen);
  EXPECT_EQ(s.code(), Status::Code::kResourceExhausted) << s.ToString();
  ASSERT_TRUE(t->Retire(slots[10], 1000));
  ASSERT_TRUE(t->Acquire(0x1, 0x1, &slot, &gen).ok());
  EXPECT_EQ(slot, slots[10]);
  EXPECT_GT(gen, gens[10]);
}

TEST(PinTableTest, SharedTableAttachAndPin) {
  const std::string name = UniqueShmName();
  auto owner = CreateTable(name);
  ASSERT_NE(owner, nullptr);
  EXPECT_EQ(owner->shm_name(), name);
  EXPECT_TRUE(ShmExists(name));
  uint32_t slot;
  uint64_t gen;
  ASSERT_TRUE(owner->Acquire(0x7000, 0x100, &slot, &gen).ok());

  PinTable* raw = nullptr;
  Status s = PinTable::Attach(name, &raw);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::unique_ptr<PinTable> peer(raw);
  EXPECT_EQ(peer->shm_name(), name);
  // The peer sees the owner's slot and pins it in the owner's memory.
  ASSERT_TRUE(peer->Pin(slot, gen, 0x7000, 0x100));
  EXPECT_EQ(owner->slot(slot)->pins.load(), 1u);
  EXPECT_FALSE(peer->Pin(slot, gen + 1, 0x7000, 0x100));

  std::atomic<bool> unpinned{false};
  std::thread remote([&] {
    std::this_thread::sleep_for(50ms);
    unpinned = true;
    peer->Unpin(slot);
  });
  EXPECT_TRUE(owner->Retire(slot, 5000));
  EXPECT_TRUE(unpinned.load());
  remote.join();
  EXPECT_FALSE(peer->Pin(slot, gen, 0x7000, 0x100));  // retired, seen through the peer too

  // Only the owner unlinks the object.
  peer.reset();
  EXPECT_TRUE(ShmExists(name));
  owner.reset();
  EXPECT_FALSE(ShmExists(name));
}

// Regression: a failed Create used to delete its half-built table, whose destructor
// shm_unlinked the name, destroying the existing owner's table.
TEST(PinTableTest, CreateRefusesExistingName) {
  const std::string name = UniqueShmName();
  auto first = CreateTable(name);
  ASSERT_NE(first, nullptr);
  PinTable* t = nullptr;
  Status s = PinTable::Create(name, kPinTableSlots, &t);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(t, nullptr);
  EXPECT_TRUE(ShmExists(name));  // the failed Create did not unlink the owner's table
}

TEST(PinTableTest, AttachErrors) {
  PinTable* t = nullptr;
  Status s = PinTable::Attach(UniqueShmName(), &t);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(t, nullptr);

  // Objects that are not a whole number (at least one) of slots: not pin tables.
  for (off_t size : {off_t{0}, off_t{sizeof(PinSlot) + 8}}) {
    const std::string name = UniqueShmName();
    int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, size), 0);
    ::close(fd);
    s = PinTable::Attach(name, &t);
    EXPECT_EQ(s.code(), Status::Code::kProtocolError) << size << ": " << s.ToString();
    EXPECT_EQ(t, nullptr);
    ::shm_unlink(name.c_str());
  }
}

}  // namespace
}  // namespace te
