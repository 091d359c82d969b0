// memcpy_baseline: the in-process ceiling for same-host transports. Each of --threads
// threads copies batches of --batch blocks of --size bytes between a "remote" and a
// "local" buffer laid out exactly as transfer_engine_bench lays out its regions, for
// --duration seconds, and prints the throughput in GB/s (10^9 bytes).
#include <gflags/gflags.h>
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

DEFINE_uint64(size, 65536, "Bytes per block");
DEFINE_int32(batch, 16, "Blocks per batch");
DEFINE_int32(threads, 1, "Copying threads");
DEFINE_int32(duration, 5, "Seconds");
DEFINE_string(direction, "read", "read (remote to local) | write (local to remote)");

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_size == 0 || FLAGS_batch < 1 || FLAGS_threads < 1 || FLAGS_duration < 1 ||
      (FLAGS_direction != "read" && FLAGS_direction != "write")) {
    std::fprintf(stderr, "error: bad flags (see --help)\n");
    return 1;
  }
  const size_t region = FLAGS_size * static_cast<size_t>(FLAGS_batch);
  const size_t total = region * static_cast<size_t>(FLAGS_threads);
  auto* remote = static_cast<char*>(
      mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  auto* local = static_cast<char*>(
      mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (remote == MAP_FAILED || local == MAP_FAILED) {
    std::fprintf(stderr, "error: cannot map %zu bytes\n", total);
    return 1;
  }
  std::memset(remote, 1, total);
  std::memset(local, 2, total);
  std::atomic<bool> running{true};
  std::atomic<uint64_t> batches{0};
  const bool read = FLAGS_direction == "read";
  std::vector<std::thread> workers;
  for (int t = 0; t < FLAGS_threads; ++t) {
    workers.emplace_back([&, t] {
      char* r = remote + t * region;
      char* l = local + t * region;
      uint64_t n = 0;
      while (running.load(std::memory_order_relaxed)) {
        for (int b = 0; b < FLAGS_batch; ++b) {
          size_t off = static_cast<size_t>(b) * FLAGS_size;
          if (read) {
            std::memcpy(l + off, r + off, FLAGS_size);
          } else {
            std::memcpy(r + off, l + off, FLAGS_size);
          }
        }
        ++n;
      }
      batches.fetch_add(n);
    });
  }
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(FLAGS_duration));
  running.store(false);
  for (auto& w : workers) w.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double bytes = static_cast<double>(batches.load()) * static_cast<double>(region);
  std::printf("memcpy %s: duration %.2fs, batch count %llu, throughput %.2f GB/s\n",
              FLAGS_direction.c_str(), secs, static_cast<unsigned long long>(batches.load()),
              bytes / secs / 1e9);
  return 0;
}
