// Helpers shared by the integration tests and the peer process: a deterministic
// byte pattern, a checksum, hex encoding for the peer's line protocol, and a count of
// this process's threads by name.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>

namespace te_test {

inline uint64_t Mix64(uint64_t x) {
  // splitmix64 finalizer.
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Seed of the pattern the peer writes into its index-th buffer.
inline uint64_t BufferSeed(uint64_t fill, uint64_t index) { return fill * 1000003ull + index + 1; }

// Byte at `offset` of the pattern with `seed`. Offsets count from the start of the
// buffer, so any sub-range of a filled buffer can be checked on its own.
inline uint8_t PatternByte(uint64_t seed, uint64_t offset) {
  uint64_t word = Mix64(seed * 0x2545F4914F6CDD1Dull + offset / 8);
  return static_cast<uint8_t>(word >> ((offset % 8) * 8));
}

// Writes pattern bytes [start, start+len) of `seed` to dst.
inline void FillPattern(void* dst, size_t len, uint64_t seed, uint64_t start = 0) {
  auto* p = static_cast<uint8_t*>(dst);
  uint64_t off = start;
  const uint64_t end = start + len;
  while (off < end && off % 8 != 0) *p++ = PatternByte(seed, off++);
  while (end - off >= 8) {
    uint64_t word = Mix64(seed * 0x2545F4914F6CDD1Dull + off / 8);
    uint8_t bytes[8];
    for (int k = 0; k < 8; ++k) bytes[k] = static_cast<uint8_t>(word >> (k * 8));
    std::memcpy(p, bytes, 8);
    p += 8;
    off += 8;
  }
  while (off < end) *p++ = PatternByte(seed, off++);
}

// Offset of the first byte of [data, data+len) that differs from pattern bytes
// [start, start+len) of `seed`, or -1 when all match.
inline int64_t FirstPatternMismatch(const void* data, size_t len, uint64_t seed,
                                    uint64_t start = 0) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < len; ++i) {
    if (p[i] != PatternByte(seed, start + i)) return static_cast<int64_t>(i);
  }
  return -1;
}

// 64-bit FNV-1a.
inline uint64_t Checksum(const void* data, size_t len, uint64_t h = 0xCBF29CE484222325ull) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < len; ++i) {
    h ^= p[i];
    h *= 0x100000001B3ull;
  }
  return h;
}

// Checksum of pattern bytes [start, start+len) of `seed` without materializing them
// all at once.
inline uint64_t PatternChecksum(uint64_t seed, uint64_t start, uint64_t len) {
  uint8_t chunk[4096];
  uint64_t h = 0xCBF29CE484222325ull;
  while (len > 0) {
    size_t n = len < sizeof(chunk) ? static_cast<size_t>(len) : sizeof(chunk);
    FillPattern(chunk, n, seed, start);
    h = Checksum(chunk, n, h);
    start += n;
    len -= n;
  }
  return h;
}

inline std::string ToHex64(uint64_t v) {
  static const char* kDigits = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i) {
    s[i] = kDigits[v & 0xF];
    v >>= 4;
  }
  return s;
}

// Encodes arbitrary bytes as one whitespace-free token: "x" followed by hex digits.
inline std::string EncodeToken(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string s = "x";
  for (unsigned char c : bytes) {
    s.push_back(kDigits[c >> 4]);
    s.push_back(kDigits[c & 0xF]);
  }
  return s;
}

inline bool DecodeToken(std::string_view token, std::string* out) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (token.empty() || token[0] != 'x' || token.size() % 2 != 1) return false;
  out->clear();
  for (size_t i = 1; i < token.size(); i += 2) {
    int hi = nibble(token[i]), lo = nibble(token[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

// Calls fn(task directory) for each of this process's threads named `name`
// (pthread_setname_np), from /proc/self/task; how many there were, -1 without /proc.
template <typename Fn>
int ForThreadsNamed(const std::string& name, Fn fn) {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/task");
  if (!dir) return -1;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const std::string task = std::string("/proc/self/task/") + entry->d_name;
    std::ifstream comm(task + "/comm");
    std::string line;
    if (std::getline(comm, line) && line == name) {
      ++count;
      fn(task);
    }
  }
  ::closedir(dir);
  return count;
}

inline int ThreadsNamed(const std::string& name) {
  return ForThreadsNamed(name, [](const std::string&) {});
}

// The number after `field:` in /proc task directory `task`'s status file; -1 without.
inline long StatusNumberOf(const std::string& task, const std::string& field) {
  std::ifstream status(task + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.size() > field.size() && line.compare(0, field.size(), field) == 0 &&
        line[field.size()] == ':') {
      return std::stol(line.substr(field.size() + 1));
    }
  }
  return -1;
}

// How often the thread of /proc task directory `task` went to sleep or was preempted
// (voluntary and nonvoluntary context switches): what waking it costs.
inline long ContextSwitchesOf(const std::string& task) {
  return StatusNumberOf(task, "voluntary_ctxt_switches") +
         StatusNumberOf(task, "nonvoluntary_ctxt_switches");
}

// Voluntary context switches of the calling thread: how often it slept (a
// sched_yield counts as nonvoluntary).
inline long SleepsSoFar() {
  return StatusNumberOf("/proc/self/task/" + std::to_string(::gettid()), "voluntary_ctxt_switches");
}

// Polls cond every millisecond until it holds (true) or `limit` passed (false).
template <typename Cond, typename Rep, typename Period>
bool Eventually(Cond cond, std::chrono::duration<Rep, Period> limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace te_test
