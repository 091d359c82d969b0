// tcp_pingpong: the floor under a small TCP round trip, the same exchange as one
// engine READ of --size bytes with nothing else: a client sends a 32-byte request,
// a server in a separate process answers with --size bytes, over loopback with
// TCP_NODELAY, both blocking in recv; with --busy_poll the client polls its socket
// instead of sleeping, as the engine's waiter spins briefly before it sleeps (on a
// virtual machine a sleeping thread's wake-up can cost more than the round trip).
// Prints p50 and p99 of the round trip in microseconds, from the same histogram
// transfer_engine_bench uses.
#include <gflags/gflags.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "common/socket.h"
#include "latency_histogram.h"

DEFINE_uint64(size, 4096, "Bytes in each answer");
DEFINE_int32(duration, 4, "Seconds of round trips after a 1 s warm-up");
DEFINE_bool(busy_poll, false, "The client polls for the answer instead of sleeping in recv");
DEFINE_int32(server_cpu, -1, "CPU the server runs on (-1: where the scheduler puts it)");
DEFINE_int32(client_cpu, -1, "CPU the client runs on (-1: where the scheduler puts it)");

namespace {

constexpr size_t kRequestBytes = 32;

// The answer, polling the socket instead of sleeping in recv.
te::Status PollRecvAll(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t k = recv(fd, p, n, MSG_DONTWAIT);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (k <= 0) return te::Status::Unavailable("connection lost");
    p += k;
    n -= static_cast<size_t>(k);
  }
  return te::Status::OK();
}

// Where the two ends run decides the figure on a virtual machine: waking a thread on
// another idle virtual CPU can cost several times the round trip itself.
bool Pin(int cpu) {
  if (cpu < 0) return true;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "error: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_size == 0 || FLAGS_size > (64u << 20) || FLAGS_duration < 1) {
    std::fprintf(stderr, "error: bad flags (see --help)\n");
    return 1;
  }
  te::UniqueFd listener;
  uint16_t port = 0;
  te::Status s = te::Listen("127.0.0.1", 0, &listener, &port);
  if (!s.ok()) return Fail("listen: " + s.ToString());
  std::vector<char> answer(FLAGS_size, 'a'), request(kRequestBytes, 'r');
  pid_t server = fork();
  if (server < 0) return Fail("fork failed");
  if (server == 0) {
    te::UniqueFd fd;
    if (!Pin(FLAGS_server_cpu) || !te::Accept(listener.get(), &fd).ok()) _exit(1);
    while (te::RecvAll(fd.get(), request.data(), kRequestBytes).ok() &&
           te::SendAll(fd.get(), answer.data(), answer.size()).ok()) {
    }
    _exit(0);
  }
  listener.Reset();
  te::UniqueFd fd;
  if (!Pin(FLAGS_client_cpu)) s = te::Status::InvalidArgument("--client_cpu: no such CPU");
  if (s.ok()) s = te::Connect("127.0.0.1", port, 5000, &fd);
  if (!s.ok()) {
    kill(server, SIGKILL);
    return Fail(s.ToString());
  }
  using Clock = std::chrono::steady_clock;
  te::bench::LatencyHistogram histogram;
  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::seconds(1);
  const auto end = measure_from + std::chrono::seconds(FLAGS_duration);
  for (auto now = start; now < end;) {
    const auto sent = now;
    s = te::SendAll(fd.get(), request.data(), kRequestBytes);
    if (s.ok()) {
      s = FLAGS_busy_poll ? PollRecvAll(fd.get(), answer.data(), answer.size())
                          : te::RecvAll(fd.get(), answer.data(), answer.size());
    }
    if (!s.ok()) {
      kill(server, SIGKILL);
      return Fail("round trip: " + s.ToString());
    }
    now = Clock::now();
    if (sent >= measure_from) {
      histogram.Record(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent).count()));
    }
  }
  fd.Reset();
  waitpid(server, nullptr, 0);
  std::printf("tcp ping-pong%s %llu B: round trips %llu, p50 %.1f us, p99 %.1f us\n",
              FLAGS_busy_poll ? " busy-poll" : "", static_cast<unsigned long long>(FLAGS_size),
              static_cast<unsigned long long>(histogram.count()), histogram.Percentile(50) / 1e3,
              histogram.Percentile(99) / 1e3);
  return 0;
}
