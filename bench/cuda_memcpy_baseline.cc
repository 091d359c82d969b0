// cuda_memcpy_baseline: the ceiling for the engine's GPU paths. Each of --threads
// threads copies batches of --batch blocks of --size bytes from --src to --dst with
// cudaMemcpyAsync on its own stream, one synchronize per batch (as the engine's
// completion is per batch), for --duration seconds, and prints the throughput in GB/s
// (10^9 bytes). Locations: cuda:N (device memory), pinned (page-locked host memory,
// what TCP staging copies through) or host (pageable, what DRAM buffers are).
//
//   cuda_memcpy_baseline --src=cuda:0 --dst=cuda:1    device to device, as CUDA IPC
//   cuda_memcpy_baseline --src=cuda:0 --dst=pinned    device to host, as TCP staging
#include <cuda_runtime.h>
#include <gflags/gflags.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

DEFINE_uint64(size, 1 << 20, "Bytes per block");
DEFINE_int32(batch, 16, "Blocks per batch");
DEFINE_int32(threads, 1, "Copying threads, each with its own stream");
DEFINE_int32(duration, 5, "Seconds");
DEFINE_string(src, "cuda:0", "Source: cuda:N | pinned | host");
DEFINE_string(dst, "host", "Destination: cuda:N | pinned | host");

namespace {

bool Check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return true;
  std::fprintf(stderr, "error: %s: %s\n", what, cudaGetErrorString(err));
  return false;
}

// Allocates `bytes` at `location`; null (with the error printed) on failure.
char* Allocate(const std::string& location, size_t bytes) {
  void* p = nullptr;
  if (location == "host") {
    p = std::malloc(bytes);
    if (!p) std::fprintf(stderr, "error: malloc of %zu bytes failed\n", bytes);
    return static_cast<char*>(p);
  }
  if (location == "pinned") {
    return Check(cudaHostAlloc(&p, bytes, cudaHostAllocPortable), "cudaHostAlloc")
               ? static_cast<char*>(p)
               : nullptr;
  }
  if (location.rfind("cuda:", 0) == 0) {
    const int device = std::atoi(location.c_str() + 5);
    if (!Check(cudaSetDevice(device), "cudaSetDevice") ||
        !Check(cudaMalloc(&p, bytes), "cudaMalloc")) {
      return nullptr;
    }
    return static_cast<char*>(p);
  }
  std::fprintf(stderr, "error: unknown location '%s'\n", location.c_str());
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_size == 0 || FLAGS_batch < 1 || FLAGS_threads < 1 || FLAGS_duration < 1) {
    std::fprintf(stderr, "error: bad flags (see --help)\n");
    return 1;
  }
  const size_t region = FLAGS_size * static_cast<size_t>(FLAGS_batch);
  const size_t total = region * static_cast<size_t>(FLAGS_threads);
  char* src = Allocate(FLAGS_src, total);
  char* dst = Allocate(FLAGS_dst, total);
  if (!src || !dst) return 1;
  std::atomic<bool> running{true}, failed{false};
  std::atomic<uint64_t> batches{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < FLAGS_threads; ++t) {
    workers.emplace_back([&, t] {
      cudaStream_t stream;
      if (!Check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate")) {
        failed = true;
        return;
      }
      uint64_t n = 0;
      while (running.load(std::memory_order_relaxed) && !failed.load()) {
        for (int b = 0; b < FLAGS_batch; ++b) {
          const size_t off = static_cast<size_t>(t) * region + static_cast<size_t>(b) * FLAGS_size;
          if (!Check(cudaMemcpyAsync(dst + off, src + off, FLAGS_size, cudaMemcpyDefault, stream),
                     "cudaMemcpyAsync")) {
            failed = true;
          }
        }
        if (!Check(cudaStreamSynchronize(stream), "cudaStreamSynchronize")) failed = true;
        ++n;
      }
      batches.fetch_add(n);
      cudaStreamDestroy(stream);
    });
  }
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(FLAGS_duration));
  running.store(false);
  for (auto& w : workers) w.join();
  if (failed.load()) return 1;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double bytes = static_cast<double>(batches.load()) * static_cast<double>(region);
  std::printf("cudaMemcpy %s -> %s: duration %.2fs, batch count %llu, throughput %.2f GB/s\n",
              FLAGS_src.c_str(), FLAGS_dst.c_str(), secs,
              static_cast<unsigned long long>(batches.load()), bytes / secs / 1e9);
  return 0;
}
