// te_tcp_fan_baseline: the floor under te_fan_bench's fan-out over TCP, the same
// traffic over raw sockets with nothing else. For each N of --peers, N "peers" of
// --connections_per_peer connections each (the engine's default) are served by
// min(N, --procs) child processes, each one thread over one epoll set. --threads
// client threads each own every --threads'th connection and send batches of --batch
// requests, request j of a batch on the next peer's connection after request j-1's
// (so a batch reaches min(N, batch) peers, as fan-out's does): a 48-byte header with
// the length, the peer and the offset, then --size bytes; then each thread waits,
// blocking in recv, for the batch's 48-byte replies. The servers receive each payload
// into its peer's own region, where the engine's peer would put it, and answer once it
// is all there: at N = 256 that is 256 regions, as many as te_fan_bench's peers fill,
// not one buffer that stays in cache. Sockets are tuned as the engine tunes its data
// sockets, before their handshake (bulk buffers; cubic where the kernel's default is bbr).
//
// One row per N (and a JSON line with --json): throughput, batch latency p50/p99 and
// the client process's CPU seconds (getrusage) per GB, the figures te_fan_bench gives
// for the engine under test. What N costs here is what it costs the kernel: the
// engine's fan-out rows stand beside these (bench/compare.sh).
#include <gflags/gflags.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>  // getrusage
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/machine.h"
#include "common/socket.h"
#include "fan_common.h"
#include "latency_histogram.h"

DEFINE_string(peers, "1,256", "Comma-separated peer counts, one row each");
DEFINE_uint64(connections_per_peer, 4, "Connections to each peer");
DEFINE_uint64(threads, 2, "Client threads");
DEFINE_uint64(batch, 16, "Requests per batch");
DEFINE_uint64(size, 65536, "Payload bytes per request");
DEFINE_uint64(procs, 8, "Server processes at most");
DEFINE_int32(duration, 3, "Seconds measured per row, after --warmup");
DEFINE_int32(warmup, 1, "Seconds run before measuring");
DEFINE_bool(json, false, "Also print one JSON line per row");

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kHeaderBytes = 48;  // the engine's frame header; the length comes first

int Fail(const std::string& what) {
  std::fprintf(stderr, "error: %s\n", what.c_str());
  return 1;
}

// Each peer's memory on its server: as much as its engine has in te_fan_bench (a
// region of threads x batch x size), each request landing at the offset the engine's
// would (fan_common.cc: thread and position in the batch), so that the servers touch as
// much memory at every N as the engine's peers do.
uint64_t RegionBytes() { return FLAGS_threads * FLAGS_batch * FLAGS_size; }

// A request's header: the length, then which of its server's peers it is for and the
// offset in that peer's region; the rest is padding to the engine's header size.
struct RequestHeader {
  uint64_t length, peer, offset;
};
static_assert(sizeof(RequestHeader) <= kHeaderBytes);

// One connection on a server: the header it is reading, then where the payload goes.
struct Incoming {
  uint8_t header[kHeaderBytes];
  size_t have = 0;
  uint8_t* to = nullptr;
  uint64_t left = 0;
};

// Receives what `fd` has: headers into the header, payloads straight into the peer's
// region (two receives a request, as the engine's target makes). False when the
// connection ended or broke a rule.
bool ReadAvailable(int fd, Incoming* in, std::vector<uint8_t>* memory) {
  for (;;) {
    const bool header = in->left == 0;
    const ssize_t got =
        header ? ::recv(fd, in->header + in->have, kHeaderBytes - in->have, MSG_DONTWAIT)
               : ::recv(fd, in->to, in->left, MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    if (got <= 0) return false;
    if (header) {
      in->have += got;
      if (in->have < kHeaderBytes) continue;
      in->have = 0;
      RequestHeader h;
      std::memcpy(&h, in->header, sizeof(h));
      const uint64_t at = h.peer * RegionBytes() + h.offset;
      if (h.length == 0 || h.offset + h.length > RegionBytes() || at + h.length > memory->size()) {
        return false;
      }
      in->to = memory->data() + at;
      in->left = h.length;
      continue;
    }
    in->to += got;
    in->left -= got;
    if (in->left == 0 &&
        ::send(fd, in->header, kHeaderBytes, MSG_DONTWAIT) != static_cast<ssize_t>(kHeaderBytes)) {
      return false;
    }
  }
}

// A server process for `peers` peers: accepts on `listener` and answers every request
// until killed.
[[noreturn]] void Serve(int listener, uint64_t peers) {
  const int ep = ::epoll_create1(0);
  epoll_event ev{EPOLLIN, {.fd = listener}};
  ::epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  std::vector<Incoming> conns(1024);
  std::vector<uint8_t> memory(peers * RegionBytes(), 0);  // resident, as the engine's
  epoll_event events[256];
  for (;;) {
    const int n = ::epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listener) {
        te::UniqueFd conn;
        if (!te::Accept(listener, &conn).ok()) _exit(1);
        if (static_cast<size_t>(conn.get()) >= conns.size()) conns.resize(conn.get() * 2);
        conns[conn.get()] = Incoming{};
        epoll_event add{EPOLLIN, {.fd = conn.get()}};
        ::epoll_ctl(ep, EPOLL_CTL_ADD, conn.get(), &add);
        conn.Release();
      } else if (!ReadAvailable(fd, &conns[fd], &memory)) {
        ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
      }
    }
  }
}

struct Row {
  uint64_t bytes = 0;
  double seconds = 0, cpu_seconds = 0;
  te::bench::LatencyHistogram latency;
};

double CpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// A client's connection: its socket, and which of its server's peers it reaches.
struct Outgoing {
  int fd;
  uint64_t peer;
};

// Client thread `thread`: batches over `conns` (ordered so that consecutive ones belong
// to different peers) until `end`; what it moved after `measure_from` goes into *row.
te::Status RunClient(uint64_t thread, const std::vector<Outgoing>& conns,
                     Clock::time_point measure_from, Clock::time_point end, Row* row) {
  std::vector<uint8_t> payload(FLAGS_batch * FLAGS_size, 'p');
  std::vector<int> used(FLAGS_batch);
  uint8_t header[kHeaderBytes] = {}, reply[kHeaderBytes];
  size_t next = 0;
  for (auto now = Clock::now(); now < end;) {
    const auto sent = now;
    for (uint64_t j = 0; j < FLAGS_batch; ++j) {
      const Outgoing& to = conns[next++ % conns.size()];
      used[j] = to.fd;
      const RequestHeader h{FLAGS_size, to.peer, (thread * FLAGS_batch + j) * FLAGS_size};
      std::memcpy(header, &h, sizeof(h));
      iovec iov[2] = {{header, kHeaderBytes}, {payload.data() + j * FLAGS_size, FLAGS_size}};
      TE_RETURN_IF_ERROR(te::SendAll(to.fd, iov, 2));
    }
    for (const int fd : used) TE_RETURN_IF_ERROR(te::RecvAll(fd, reply, kHeaderBytes));
    now = Clock::now();
    if (sent >= measure_from) {
      row->bytes += FLAGS_batch * FLAGS_size;
      row->latency.Record(std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent).count());
    }
  }
  return te::Status::OK();
}

// Starts the servers for n peers and connects to them; the connections go to the
// client threads in turn, peer after peer.
te::Status Connect(uint64_t n, const te::DataSocketTuning& tuning, std::vector<pid_t>* servers,
                   std::vector<te::UniqueFd>* fds, std::vector<std::vector<Outgoing>>* per_thread) {
  const uint64_t procs = std::min(n, FLAGS_procs);
  std::vector<uint16_t> ports;
  for (uint64_t p = 0; p < procs; ++p) {
    te::UniqueFd listener;
    uint16_t port = 0;
    TE_RETURN_IF_ERROR(te::Listen("127.0.0.1", 0, &listener, &port,
                                  [&](int fd) { te::TuneDataSocket(fd, tuning); }));
    const pid_t pid = ::fork();
    if (pid < 0) return te::Status::Internal("fork failed");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);                  // no server outlives a killed client
      Serve(listener.get(), (n - p + procs - 1) / procs);  // peers p, p + procs, ...
    }
    servers->push_back(pid);
    ports.push_back(port);
  }
  per_thread->assign(FLAGS_threads, {});
  size_t turn = 0;
  for (uint64_t c = 0; c < FLAGS_connections_per_peer; ++c) {
    for (uint64_t peer = 0; peer < n; ++peer) {
      te::UniqueFd fd;
      TE_RETURN_IF_ERROR(te::Connect("127.0.0.1", ports[peer % procs], 5000, &fd,
                                     [&](int s) { te::TuneDataSocket(s, tuning); }));
      (*per_thread)[turn++ % FLAGS_threads].push_back({fd.get(), peer / procs});
      fds->push_back(std::move(fd));
    }
  }
  return te::Status::OK();
}

te::Status MeasureRow(uint64_t n, const te::DataSocketTuning& tuning, Row* row) {
  std::vector<pid_t> servers;
  std::vector<te::UniqueFd> fds;
  std::vector<std::vector<Outgoing>> per_thread;
  te::Status s = Connect(n, tuning, &servers, &fds, &per_thread);
  if (s.ok()) {
    const auto measure_from = Clock::now() + std::chrono::seconds(FLAGS_warmup);
    const auto end = measure_from + std::chrono::seconds(FLAGS_duration);
    std::vector<Row> rows(FLAGS_threads);
    std::vector<te::Status> results(FLAGS_threads);
    std::vector<std::thread> threads;
    for (uint64_t t = 0; t < FLAGS_threads; ++t) {
      threads.emplace_back(
          [&, t] { results[t] = RunClient(t, per_thread[t], measure_from, end, &rows[t]); });
    }
    std::this_thread::sleep_until(measure_from);
    const double cpu_before = CpuSeconds();
    for (auto& t : threads) t.join();
    row->cpu_seconds = CpuSeconds() - cpu_before;
    row->seconds = std::chrono::duration<double>(Clock::now() - measure_from).count();
    for (uint64_t t = 0; t < FLAGS_threads; ++t) {
      if (s.ok()) s = results[t];
      row->bytes += rows[t].bytes;
      row->latency.Merge(rows[t].latency);
    }
  }
  fds.clear();
  for (const pid_t pid : servers) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  std::vector<uint64_t> peers;
  te::Status s = te::fan::ParsePeers(FLAGS_peers, &peers);
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 2;
  }
  if (FLAGS_threads == 0 || FLAGS_batch == 0 || FLAGS_size == 0 || FLAGS_size > (64u << 20) ||
      FLAGS_connections_per_peer == 0 || FLAGS_procs == 0 || FLAGS_duration < 1 ||
      FLAGS_warmup < 0) {
    std::fprintf(stderr, "error: bad flags (see --help)\n");
    return 2;
  }
  te::DataSocketTuning tuning;  // TuneDataSocket: bulk buffers, cubic where bbr is the default
  s = te::ResolveDataSocketTuning("auto", 0, &tuning);
  if (!s.ok()) return Fail(s.ToString());
  te::RaiseOpenFileLimit();
  ::signal(SIGPIPE, SIG_IGN);
  std::printf("%-14s %5s %8s %9s %9s %8s\n", "mode", "peers", "GB/s", "p50_us", "p99_us",
              "cpu_s/GB");
  for (const uint64_t n : peers) {
    Row row;
    s = MeasureRow(n, tuning, &row);
    if (!s.ok()) return Fail("N=" + std::to_string(n) + ": " + s.ToString());
    const double gb = row.bytes / 1e9;
    const double p50 = row.latency.Percentile(50) / 1e3, p99 = row.latency.Percentile(99) / 1e3;
    std::printf("%-14s %5llu %8.2f %9.1f %9.1f %8.3f\n", "fan-out-raw",
                static_cast<unsigned long long>(n), gb / row.seconds, p50, p99,
                row.cpu_seconds / gb);
    if (FLAGS_json) {
      std::printf(
          "{\"mode\":\"fan-out-raw\",\"peers\":%llu,\"throughput\":%.4f,\"p50_us\":%.1f,"
          "\"p99_us\":%.1f,\"cpu_seconds_per_gb\":%.4f}\n",
          static_cast<unsigned long long>(n), gb / row.seconds, p50, p99, row.cpu_seconds / gb);
    }
    std::fflush(stdout);
  }
  return 0;
}
