// te_tcp_fan_baseline: the floor under te_fan_bench's fan-out and fan-in over TCP, the
// same traffic over raw sockets with nothing else.
//
//   out  N "peers" of --connections_per_peer connections each (the engine's default)
//        served by min(N, --procs) child processes, each one thread over one epoll set.
//        --threads client threads each own every --threads'th connection and send
//        batches of --batch requests, request j of a batch on the next peer's
//        connection after request j-1's (so a batch reaches min(N, batch) peers, as
//        fan-out's does), one sendmsg a request; then each waits, blocking in recv, for
//        the batch's replies.
//   in   this process serves N peers with two epoll threads (the engine target's I/O
//        threads); the peers live in min(N, --procs) child processes of --threads
//        workers that take their peers in turn, a batch each, at most --threads
//        batches in flight across all processes (as fan-in's semaphore allows); a
//        batch goes out in runs over its peer's connections, one sendmsg a run, as the
//        engine's Submit makes them.
//
// A request is a 48-byte header (the length, the peer, the offset), then --size bytes.
// Servers receive each payload into its peer's own region, where the engine's peer or
// target would put it, and answer with a 48-byte reply once it is all there: at N = 256
// that is 256 regions of threads x batch x size, as many as te_fan_bench fills, not one
// buffer that stays in cache. Sockets are tuned as the engine tunes its data sockets,
// before their handshake (bulk buffers; cubic where the kernel's default is bbr).
//
// One row per mode and N (and a JSON line with --json): throughput, batch latency
// p50/p99 and CPU seconds (getrusage) per GB of the process in the engine under test's
// place (out: the client; in: the server). What N costs here is what it costs the kernel
// and the memory: the engine's fan rows stand beside these (bench/compare.sh).
#include <gflags/gflags.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>  // getrusage
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/machine.h"
#include "common/socket.h"
#include "fan_common.h"
#include "latency_histogram.h"

DEFINE_string(peers, "1,256", "Comma-separated peer counts, one row each");
DEFINE_string(modes, "out",
              "Comma-separated: out (one client, N servers), in (N clients, one server)");
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
  uint64_t length = 0, left = 0;  // the payload's, and what of it is still to come
};

// Receives what `fd` has: headers into the header, payloads straight into the peer's
// region (two receives a request, as the engine's target makes), adding each answered
// request's bytes to *completed. False when the connection ended or broke a rule.
bool ReadAvailable(int fd, Incoming* in, std::vector<uint8_t>* memory, uint64_t* completed) {
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
      in->length = in->left = h.length;
      continue;
    }
    in->to += got;
    in->left -= got;
    if (in->left > 0) continue;
    if (::send(fd, in->header, kHeaderBytes, MSG_DONTWAIT) != static_cast<ssize_t>(kHeaderBytes)) {
      return false;
    }
    *completed += in->length;
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
      } else if (uint64_t answered = 0; !ReadAvailable(fd, &conns[fd], &memory, &answered)) {
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

// Fan-in: --threads batches in flight across all client processes, as te_fan_bench's
// fan-in allows; the parent sets the measured window once every connection is in.
struct FanInControl {
  sem_t tokens;
  std::atomic<int64_t> measure_from_ns{0}, end_ns{0};
};
constexpr int kFanInServerThreads = 2;  // the engine target's I/O threads (tcp_io_threads)

Clock::time_point FromNs(int64_t ns) { return Clock::time_point(std::chrono::nanoseconds(ns)); }

// A fan-in peer's connections: worker w uses set w % sets (its own while --threads is
// at most --connections_per_peer), a batch in runs of batch / (its set's connections)
// requests, each run one sendmsg on its connection, as the engine's Submit makes runs.
struct FanInPeer {
  uint64_t index = 0;
  std::vector<te::UniqueFd> conns;
  std::unique_ptr<std::mutex[]> sets;
};

te::Status SendFanInBatch(const FanInPeer& peer, uint64_t worker, uint64_t sets,
                          const uint8_t* payload) {
  std::vector<int> fds;
  for (uint64_t c = worker % sets; c < peer.conns.size(); c += sets)
    fds.push_back(peer.conns[c].get());
  const uint64_t run = (FLAGS_batch + fds.size() - 1) / fds.size();
  std::vector<RequestHeader> headers(FLAGS_batch);
  std::vector<std::array<uint8_t, kHeaderBytes>> wire(FLAGS_batch);
  std::vector<iovec> iov;
  for (uint64_t j = 0; j < FLAGS_batch; j += run) {
    iov.clear();
    for (uint64_t k = j; k < std::min(FLAGS_batch, j + run); ++k) {
      const RequestHeader h{FLAGS_size, peer.index, (worker * FLAGS_batch + k) * FLAGS_size};
      std::memcpy(wire[k].data(), &h, sizeof(h));
      iov.push_back({wire[k].data(), kHeaderBytes});
      iov.push_back({const_cast<uint8_t*>(payload) + k * FLAGS_size, FLAGS_size});
    }
    TE_RETURN_IF_ERROR(te::SendAll(fds[j / run], iov.data(), static_cast<int>(iov.size())));
  }
  uint8_t reply[kHeaderBytes];
  for (uint64_t j = 0; j < FLAGS_batch; ++j) {
    TE_RETURN_IF_ERROR(te::RecvAll(fds[j / run], reply, kHeaderBytes));
  }
  return te::Status::OK();
}

// One client worker: the process's peers in turn, a batch each, while tokens allow;
// the measured batches' latencies (ns) go into *latencies.
te::Status RunFanInWorker(uint64_t worker, std::vector<FanInPeer>* peers, FanInControl* control,
                          std::vector<uint64_t>* latencies) {
  const uint64_t sets = std::min(FLAGS_threads, FLAGS_connections_per_peer);
  std::vector<uint8_t> payload(FLAGS_batch * FLAGS_size, 'p');
  for (uint64_t turn = worker;; turn += FLAGS_threads) {
    if (::sem_wait(&control->tokens) != 0) return te::Status::FromErrno("sem_wait", errno);
    const auto sent = Clock::now();
    const auto end = FromNs(control->end_ns.load());
    if (sent >= end) {
      ::sem_post(&control->tokens);  // the others end too
      return te::Status::OK();
    }
    FanInPeer& peer = (*peers)[turn % peers->size()];
    te::Status s;
    {
      std::lock_guard<std::mutex> lock(peer.sets[worker % sets]);
      s = SendFanInBatch(peer, worker, sets, payload.data());
    }
    ::sem_post(&control->tokens);
    TE_RETURN_IF_ERROR(s);
    if (sent >= FromNs(control->measure_from_ns.load())) {
      latencies->push_back(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - sent).count());
    }
  }
}

// A fan-in client process: peers first, first + procs, ... below n, each with
// --connections_per_peer connections to port, and --threads workers. Writes the
// measured latencies to `out` and exits (1 on any failure).
[[noreturn]] void RunFanInClients(uint16_t port, uint64_t first, uint64_t n, uint64_t procs,
                                  const te::DataSocketTuning& tuning, FanInControl* control,
                                  int out) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::vector<FanInPeer> peers;
  for (uint64_t g = first; g < n; g += procs) {
    FanInPeer& peer = peers.emplace_back();
    peer.index = g;
    peer.sets = std::make_unique<std::mutex[]>(FLAGS_connections_per_peer);
    for (uint64_t c = 0; c < FLAGS_connections_per_peer; ++c) {
      if (!te::Connect("127.0.0.1", port, 5000, &peer.conns.emplace_back(), [&](int fd) {
             te::TuneDataSocket(fd, tuning);
           }).ok()) {
        _exit(1);
      }
    }
  }
  std::vector<std::vector<uint64_t>> latencies(FLAGS_threads);
  std::vector<te::Status> results(FLAGS_threads);
  std::vector<std::thread> workers;
  for (uint64_t w = 0; w < FLAGS_threads; ++w) {
    workers.emplace_back(
        [&, w] { results[w] = RunFanInWorker(w, &peers, control, &latencies[w]); });
  }
  for (auto& w : workers) w.join();
  for (uint64_t w = 0; w < FLAGS_threads; ++w) {
    if (!results[w].ok()) _exit(1);
    if (!te::SendAll(out, latencies[w].data(), latencies[w].size() * sizeof(uint64_t)).ok())
      _exit(1);
  }
  _exit(0);
}

// One of the fan-in server's threads: answers on its connections until *stop, adding
// the bytes it answered within [measure_from, end) to *bytes.
void ServeFanIn(const std::vector<int>& fds, std::vector<uint8_t>* memory,
                const FanInControl& control, const std::atomic<bool>& stop, uint64_t* bytes) {
  te::UniqueFd ep(::epoll_create1(0));
  for (size_t i = 0; i < fds.size(); ++i) {
    epoll_event add{EPOLLIN, {.u64 = i}};
    ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fds[i], &add);
  }
  std::vector<Incoming> conns(fds.size());
  epoll_event events[256];
  while (!stop.load()) {
    const int n = ::epoll_wait(ep.get(), events, 256, 100);
    uint64_t answered = 0;
    for (int i = 0; i < n; ++i) {
      const size_t c = events[i].data.u64;
      if (!ReadAvailable(fds[c], &conns[c], memory, &answered)) {
        ::epoll_ctl(ep.get(), EPOLL_CTL_DEL, fds[c], nullptr);
      }
    }
    const auto now = Clock::now();
    if (now >= FromNs(control.measure_from_ns.load()) && now < FromNs(control.end_ns.load())) {
      *bytes += answered;
    }
  }
}

// Accepts `count` connections on listener, each within 10 s of the last.
te::Status AcceptAll(int listener, uint64_t count, std::vector<te::UniqueFd>* fds) {
  for (uint64_t i = 0; i < count; ++i) {
    pollfd ready{listener, POLLIN, 0};
    if (::poll(&ready, 1, 10000) != 1) return te::Status::Timeout("a client did not connect");
    TE_RETURN_IF_ERROR(te::Accept(listener, &fds->emplace_back()));
  }
  return te::Status::OK();
}

// Reads a client's latencies until it closes its end; true when it exited 0.
bool CollectClient(pid_t pid, int from, te::bench::LatencyHistogram* latency) {
  uint64_t value;
  while (te::RecvAll(from, &value, sizeof(value)).ok()) latency->Record(value);
  int status = 0;
  return ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Fan-in: this process serves N peers whose clients live in min(N, --procs) processes.
te::Status MeasureFanIn(uint64_t n, const te::DataSocketTuning& tuning, Row* row) {
  te::UniqueFd listener;
  uint16_t port = 0;
  TE_RETURN_IF_ERROR(te::Listen("127.0.0.1", 0, &listener, &port,
                                [&](int fd) { te::TuneDataSocket(fd, tuning); }));
  void* shared = ::mmap(nullptr, sizeof(FanInControl), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return te::Status::FromErrno("mmap", errno);
  auto* control = new (shared) FanInControl;
  ::sem_init(&control->tokens, /*pshared=*/1, 0);
  const uint64_t procs = std::min(n, FLAGS_procs);
  std::vector<std::pair<pid_t, te::UniqueFd>> clients;  // pid, our end of its socket pair
  for (uint64_t p = 0; p < procs; ++p) {
    int ends[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, ends) != 0) {
      return te::Status::FromErrno("socketpair", errno);
    }
    te::UniqueFd read_end(ends[0]), write_end(ends[1]);
    const pid_t pid = ::fork();
    if (pid < 0) return te::Status::Internal("fork failed");
    if (pid == 0) {
      read_end.Reset();
      RunFanInClients(port, p, n, procs, tuning, control, write_end.get());
    }
    clients.emplace_back(pid, std::move(read_end));
  }
  std::vector<te::UniqueFd> fds;
  te::Status s = AcceptAll(listener.get(), n * FLAGS_connections_per_peer, &fds);
  std::vector<uint8_t> memory(n * RegionBytes(), 0);  // resident, as the engine's
  std::atomic<bool> stop{false};
  std::vector<std::vector<int>> owned(kFanInServerThreads);
  for (size_t i = 0; i < fds.size(); ++i) owned[i % kFanInServerThreads].push_back(fds[i].get());
  std::vector<uint64_t> bytes(kFanInServerThreads, 0);
  std::vector<std::thread> servers;
  for (int t = 0; s.ok() && t < kFanInServerThreads; ++t) {
    servers.emplace_back([&, t] { ServeFanIn(owned[t], &memory, *control, stop, &bytes[t]); });
  }
  const auto measure_from = Clock::now() + std::chrono::seconds(FLAGS_warmup);
  const auto end = measure_from + std::chrono::seconds(FLAGS_duration);
  control->measure_from_ns = measure_from.time_since_epoch().count();
  control->end_ns = (s.ok() ? end : Clock::now()).time_since_epoch().count();
  for (uint64_t t = 0; t < FLAGS_threads; ++t) ::sem_post(&control->tokens);
  if (s.ok()) {
    std::this_thread::sleep_until(measure_from);
    const double cpu_before = CpuSeconds();
    std::this_thread::sleep_until(end);
    row->cpu_seconds = CpuSeconds() - cpu_before;
    row->seconds = std::chrono::duration<double>(end - measure_from).count();
  }
  for (auto& [pid, from] : clients) {
    if (!CollectClient(pid, from.get(), &row->latency) && s.ok()) {
      s = te::Status::Internal("a fan-in client process failed");
    }
  }
  stop = true;
  for (auto& t : servers) t.join();
  for (uint64_t b : bytes) row->bytes += b;
  ::sem_destroy(&control->tokens);
  ::munmap(shared, sizeof(FanInControl));
  return s;
}

// One row, and with --json its JSON line: what te_fan_bench gives for the engine.
void PrintRow(const std::string& mode, uint64_t n, const Row& row) {
  const double gb = row.bytes / 1e9;
  const double p50 = row.latency.Percentile(50) / 1e3, p99 = row.latency.Percentile(99) / 1e3;
  std::printf("%-14s %5llu %8.2f %9.1f %9.1f %8.3f\n", mode.c_str(),
              static_cast<unsigned long long>(n), gb / row.seconds, p50, p99, row.cpu_seconds / gb);
  if (FLAGS_json) {
    std::printf(
        "{\"mode\":\"%s\",\"peers\":%llu,\"throughput\":%.4f,\"p50_us\":%.1f,"
        "\"p99_us\":%.1f,\"cpu_seconds_per_gb\":%.4f}\n",
        mode.c_str(), static_cast<unsigned long long>(n), gb / row.seconds, p50, p99,
        row.cpu_seconds / gb);
  }
  std::fflush(stdout);
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
  std::vector<std::string> modes;
  for (size_t at = 0; at <= FLAGS_modes.size();) {
    const size_t comma = std::min(FLAGS_modes.find(',', at), FLAGS_modes.size());
    modes.push_back(FLAGS_modes.substr(at, comma - at));
    if (modes.back() != "out" && modes.back() != "in") {
      std::fprintf(stderr, "error: --modes: unknown mode '%s' (expected out or in)\n",
                   modes.back().c_str());
      return 2;
    }
    at = comma + 1;
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
  for (const std::string& mode : modes) {
    for (const uint64_t n : peers) {
      Row row;
      s = mode == "out" ? MeasureRow(n, tuning, &row) : MeasureFanIn(n, tuning, &row);
      if (!s.ok()) return Fail("fan-" + mode + " N=" + std::to_string(n) + ": " + s.ToString());
      PrintRow("fan-" + mode + "-raw", n, row);
    }
  }
  return 0;
}
