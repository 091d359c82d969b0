// memcpy_baseline: the ceilings for same-host transports. Each of --threads threads
// copies batches of --batch blocks of --size bytes between a "remote" and a "local"
// buffer laid out exactly as transfer_engine_bench lays out its regions, for
// --duration seconds, and prints the throughput in GB/s (10^9 bytes). With --via=cma
// the remote buffer belongs to a child process and each batch is one
// process_vm_readv/writev call (its blocks are adjacent: one iovec a side, as the
// engine merges them): the kernel's own ceiling for CMA, below memcpy's.
#include <gflags/gflags.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

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
DEFINE_string(via, "memcpy", "memcpy (one process) | cma (the remote buffer in a child process)");

namespace {

// Moves one region to or from the child, finishing partial transfers; false on error.
bool CmaRegion(pid_t child, bool read, char* local, char* remote, size_t len) {
  while (len > 0) {
    iovec l{local, len}, r{remote, len};
    ssize_t n =
        read ? process_vm_readv(child, &l, 1, &r, 1, 0) : process_vm_writev(child, &l, 1, &r, 1, 0);
    if (n <= 0) return false;
    local += n;
    remote += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_size == 0 || FLAGS_batch < 1 || FLAGS_threads < 1 || FLAGS_duration < 1 ||
      (FLAGS_direction != "read" && FLAGS_direction != "write") ||
      (FLAGS_via != "memcpy" && FLAGS_via != "cma")) {
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
  const bool cma = FLAGS_via == "cma";
  pid_t child = 0;
  if (cma) {
    child = fork();
    if (child < 0) {
      std::perror("error: fork");
      return 1;
    }
    if (child == 0) {
      std::memset(remote, 3, total);  // its own pages, not shared copy-on-write
      pause();
      _exit(0);
    }
  }
  std::atomic<bool> running{true};
  std::atomic<bool> failed{false};
  std::atomic<uint64_t> batches{0};
  const bool read = FLAGS_direction == "read";
  std::vector<std::thread> workers;
  for (int t = 0; t < FLAGS_threads; ++t) {
    workers.emplace_back([&, t] {
      char* r = remote + t * region;
      char* l = local + t * region;
      uint64_t n = 0;
      while (running.load(std::memory_order_relaxed)) {
        if (cma) {
          if (!CmaRegion(child, read, l, r, region)) {
            failed.store(true);
            break;
          }
          ++n;
          continue;
        }
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
  if (cma) {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
  }
  if (failed.load()) {
    std::fprintf(stderr, "error: process_vm_%sv failed (ptrace rules?)\n", read ? "read" : "write");
    return 1;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double bytes = static_cast<double>(batches.load()) * static_cast<double>(region);
  std::printf("%s %s: duration %.2fs, batch count %llu, throughput %.2f GB/s\n", FLAGS_via.c_str(),
              FLAGS_direction.c_str(), secs, static_cast<unsigned long long>(batches.load()),
              bytes / secs / 1e9);
  return 0;
}
