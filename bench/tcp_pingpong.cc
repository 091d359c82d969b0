// tcp_pingpong: the floor under a small TCP round trip, the same exchange as one
// engine READ of --size bytes with nothing else: a client sends a 32-byte request,
// a server in a separate process answers with --size bytes, over loopback with
// TCP_NODELAY, both blocking in recv; with --busy_poll the client polls its socket
// instead of sleeping, as the engine's waiter spins briefly before it sleeps (on a
// virtual machine a sleeping thread's wake-up can cost more than the round trip).
// Prints p50 and p99 of the round trip in microseconds, from the same histogram
// transfer_engine_bench uses.
#include <arpa/inet.h>
#include <gflags/gflags.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <vector>

#include "latency_histogram.h"

DEFINE_uint64(size, 4096, "Bytes in each answer");
DEFINE_int32(duration, 4, "Seconds of round trips after a 1 s warm-up");
DEFINE_bool(busy_poll, false, "The client polls for the answer instead of sleeping in recv");
DEFINE_int32(server_cpu, -1, "CPU the server runs on (-1: where the scheduler puts it)");
DEFINE_int32(client_cpu, -1, "CPU the client runs on (-1: where the scheduler puts it)");

namespace {

constexpr size_t kRequestBytes = 32;

bool SendAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool RecvAll(int fd, char* p, size_t n, bool poll = false) {
  while (n > 0) {
    ssize_t k = recv(fd, p, n, poll ? MSG_DONTWAIT : 0);
    if (k < 0 && poll && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

void NoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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

int Fail(const char* what) {
  std::perror(what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_size == 0 || FLAGS_size > (64u << 20) || FLAGS_duration < 1) {
    std::fprintf(stderr, "error: bad flags (see --help)\n");
    return 1;
  }
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Fail("error: listen");
  }
  std::vector<char> answer(FLAGS_size, 'a'), request(kRequestBytes, 'r');
  pid_t server = fork();
  if (server < 0) return Fail("error: fork");
  if (server == 0) {
    if (!Pin(FLAGS_server_cpu)) _exit(1);
    int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) _exit(1);
    NoDelay(fd);
    while (RecvAll(fd, request.data(), kRequestBytes) &&
           SendAll(fd, answer.data(), answer.size())) {
    }
    _exit(0);
  }
  close(listener);
  if (!Pin(FLAGS_client_cpu)) {
    kill(server, SIGKILL);
    return Fail("error: --client_cpu");
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    kill(server, SIGKILL);
    return Fail("error: connect");
  }
  NoDelay(fd);
  using Clock = std::chrono::steady_clock;
  te::bench::LatencyHistogram histogram;
  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::seconds(1);
  const auto end = measure_from + std::chrono::seconds(FLAGS_duration);
  for (auto now = start; now < end;) {
    const auto sent = now;
    if (!SendAll(fd, request.data(), kRequestBytes) || !RecvAll(fd, answer.data(), answer.size())) {
      kill(server, SIGKILL);
      return Fail("error: round trip");
    }
    now = Clock::now();
    if (sent >= measure_from) {
      histogram.Record(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent).count()));
    }
  }
  close(fd);
  waitpid(server, nullptr, 0);
  std::printf("tcp ping-pong%s %llu B: round trips %llu, p50 %.1f us, p99 %.1f us\n",
              FLAGS_busy_poll ? " busy-poll" : "", static_cast<unsigned long long>(FLAGS_size),
              static_cast<unsigned long long>(histogram.count()), histogram.Percentile(50) / 1e3,
              histogram.Percentile(99) / 1e3);
  return 0;
}
