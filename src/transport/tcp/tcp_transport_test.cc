#include "transport/tcp/tcp_transport.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/socket.h"
#include "memory/buffer_registry.h"
#include "metrics/engine_metrics.h"
#include "rpc/handshake.h"
#include "rpc/wire.h"
#include "test_util.h"
#include "transport/tcp/tcp_endpoint.h"
#include "transport/tcp/tcp_test_endpoints.h"

namespace te {
namespace {
using tcp_test::Endpoint;
using tcp_test::Read;
using tcp_test::Submitted;
using tcp_test::Target;
using te_test::Eventually;

int ThreadCount() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

// A soak found an initiator growing by a peer (connections, threads) per restart of its
// target, as each restart brings a new port: peers nothing uses must go.
TEST(TcpTransportTest, PeersOfGoneEndpointsAreDropped) {
  Endpoint initiator("initiator");
  ASSERT_TRUE(initiator.Start().ok());
  for (int round = 0; round < 5; ++round) {
    // Before the target, so that it outlives the target's serving threads.
    std::vector<char> memory(4096, static_cast<char>('a' + round));
    Endpoint target("target");
    BufferInfo info;
    info.base = reinterpret_cast<uint64_t>(memory.data());
    info.length = memory.size();
    info.location = "cpu:0";
    ASSERT_TRUE(target.registry.Add(info).ok());
    ASSERT_TRUE(target.Start().ok());

    std::shared_ptr<TransportPeer> peer;
    ASSERT_TRUE(initiator.transport.GetPeer(target.descriptor, &peer).ok());
    std::vector<char> local(memory.size());
    ASSERT_TRUE(Read(*peer, info.base, &local).ok());
    EXPECT_EQ(local, memory);
    EXPECT_LE(initiator.transport.PeerCount(), 2u) << "round " << round;
  }
}

TEST(TcpTransportTest, PeerInUseIsKept) {
  Endpoint initiator("initiator");
  ASSERT_TRUE(initiator.Start().ok());
  Endpoint first("first"), second("second");
  ASSERT_TRUE(first.Start().ok());
  ASSERT_TRUE(second.Start().ok());
  std::shared_ptr<TransportPeer> kept, other;
  ASSERT_TRUE(initiator.transport.GetPeer(first.descriptor, &kept).ok());
  ASSERT_TRUE(initiator.transport.GetPeer(second.descriptor, &other).ok());
  EXPECT_EQ(initiator.transport.PeerCount(), 2u);
  // A segment opened again shares the peer its first handle still holds.
  std::shared_ptr<TransportPeer> again;
  ASSERT_TRUE(initiator.transport.GetPeer(first.descriptor, &again).ok());
  EXPECT_EQ(again, kept);
}

// However many peers and connections, the transport's threads are its I/O threads and
// its handshake pool; the old design ran two threads per connection.
TEST(TcpTransportTest, ThreadCountDoesNotGrowWithPeersOrConnections) {
  Endpoint initiator("initiator");
  initiator.config.tcp_connections_per_peer = 4;
  ASSERT_TRUE(initiator.Start().ok());
  std::vector<std::unique_ptr<Target>> targets;
  for (int i = 0; i < 16; ++i) {
    targets.push_back(std::make_unique<Target>("target" + std::to_string(i), 64 << 10));
    ASSERT_TRUE(targets.back()->Start().ok());
  }
  const int before = ThreadCount();
  std::vector<std::shared_ptr<TransportPeer>> peers;
  for (auto& target : targets) {
    std::shared_ptr<TransportPeer> peer;
    ASSERT_TRUE(initiator.transport.GetPeer(target->descriptor, &peer).ok());
    // Four slices at once: one on each of the peer's connections.
    for (int slice = 0; slice < 4; ++slice) {
      std::vector<char> local(16 << 10);
      ASSERT_TRUE(Read(*peer, target->info.base + slice * local.size(), &local).ok());
    }
    peers.push_back(peer);
  }
  EXPECT_EQ(ThreadCount(), before) << "64 connections to 16 peers added threads";
}

// A thread waiting for its own response reads it itself (ReceiveFor); the response
// must not wake an I/O thread as well: that is a context switch per round trip, which
// on a busy CPU costs about as much as the round trip. The target's I/O threads are
// held up 2 ms before each request, so that the waiter surely reads before the
// response comes (a response that beats the waiter is the loop's to read). The
// initiator has a loop of its own (one thread), told from the target's by when it
// started.
TEST(TcpTransportTest, AWaiterReadingItsOwnResponsesLeavesTheIoThreadAsleep) {
  Target target("target");
  ASSERT_TRUE(target.Start().ok());
  std::shared_ptr<IoLoop> targets_loop;  // what TcpTransport::Start picked for it
  ASSERT_TRUE(IoLoop::Shared({target.config.tcp_io_threads, std::chrono::milliseconds(100),
                              std::chrono::microseconds(target.config.tcp_busy_poll_us)},
                             &targets_loop)
                  .ok());
  std::set<std::string> targets_threads;
  te_test::ForThreadsNamed(IoLoop::kThreadName,
                           [&](const std::string& task) { targets_threads.insert(task); });
  ASSERT_EQ(targets_threads.size(), target.config.tcp_io_threads) << "not the target's loop";
  Endpoint initiator("initiator");
  initiator.config.tcp_io_threads = 1;
  ASSERT_TRUE(initiator.Start().ok());
  auto initiators_switches = [&] {
    long switches = 0;
    te_test::ForThreadsNamed(IoLoop::kThreadName, [&](const std::string& task) {
      if (targets_threads.count(task) == 0) switches += te_test::ContextSwitchesOf(task);
    });
    return switches;
  };
  std::shared_ptr<TransportPeer> peer;
  ASSERT_TRUE(initiator.transport.GetPeer(target.descriptor, &peer).ok());
  std::vector<char> local(4096);
  ASSERT_TRUE(Read(*peer, target.info.base, &local).ok());  // connected
  constexpr int kRoundTrips = 200;
  int read_by_waiter = 0;
  const long before = initiators_switches();
  for (int i = 0; i < kRoundTrips; ++i) {
    for (uint64_t id = 0; id < target.config.tcp_io_threads; ++id) {  // one per thread
      targets_loop->Post(id, [] { std::this_thread::sleep_for(std::chrono::milliseconds(2)); });
    }
    std::atomic<bool> done{false};
    Slice slice;
    slice.opcode = Request::READ;
    slice.local = local.data();
    slice.remote = target.info.base;
    slice.length = local.size();
    slice.owner = &done;
    slice.on_done = [](Slice* s, const Status& status) {
      EXPECT_TRUE(status.ok()) << status.ToString();
      static_cast<std::atomic<bool>*>(s->owner)->store(true);
    };
    Slice* slices[] = {&slice};
    peer->Submit(slices, 1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    bool by_waiter = false;
    while (!done && std::chrono::steady_clock::now() < deadline) {
      by_waiter |= peer->ReceiveFor(
          slice, [&done] { return done.load(); }, deadline);
    }
    ASSERT_TRUE(done) << "round trip " << i << " never completed";
    read_by_waiter += by_waiter;
  }
  const long switches = initiators_switches() - before;
  EXPECT_GT(read_by_waiter, kRoundTrips * 3 / 4);
  EXPECT_LT(switches, kRoundTrips / 4)
      << "the initiator's I/O thread switched " << switches << " times in " << kRoundTrips
      << " round trips (" << read_by_waiter << " read by the waiter): the responses woke it";
}

// An initiator whose open connections are counted, a target, and the initiator's
// handle on it, not used yet.
struct CountedPeer {
  Status Start(const std::function<void(Config*)>& tune) {
    tune(&initiator.config);
    initiator.context.metrics = &metrics;
    TE_RETURN_IF_ERROR(initiator.Start());
    TE_RETURN_IF_ERROR(target.Start());
    open = metrics.Connections("tcp", false);
    return initiator.transport.GetPeer(target.descriptor, &peer);
  }
  EngineMetrics metrics{{"tcp"}, "p2p", false};
  Endpoint initiator{"initiator"};
  Target target{"target"};
  std::atomic<int64_t>* open = nullptr;
  std::shared_ptr<TransportPeer> peer;
};

TEST(TcpTransportTest, ConnectionsOpenOnFirstUseAndCloseWhenIdle) {
  CountedPeer counted;
  ASSERT_TRUE(counted
                  .Start([](Config* config) {
                    config->tcp_idle_timeout_ms = 50;
                    config->transfer_timeout_ms = 500;  // ticks every 50 ms
                  })
                  .ok());
  std::atomic<int64_t>* open = counted.open;
  TransportPeer* peer = counted.peer.get();
  const Target& target = counted.target;
  EXPECT_EQ(open->load(), 0) << "a peer handle alone opened a connection";
  std::vector<char> local(target.memory.size());
  ASSERT_TRUE(Read(*peer, target.info.base, &local).ok());
  EXPECT_EQ(open->load(), 1) << "one slice opens one of the peer's connections";
  ASSERT_TRUE(Eventually([&] { return open->load() == 0; }, std::chrono::seconds(10)))
      << "the idle connection stayed open";
  // Reopened on demand by the same peer handle.
  local.assign(local.size(), 0);
  ASSERT_TRUE(Read(*peer, target.info.base, &local).ok());
  EXPECT_EQ(local, target.memory);
}

// A peer that gets a request at a time (a batch spread over many peers) keeps to one
// of its connections, so 256 such peers cost 256 sockets at each end, not 1,024; bytes
// enough for several flows (a slice of kBytesPerRun or more each) use them all.
TEST(TcpTransportTest, OneConnectionCarriesWhatItCarriesWellAndBytesOpenTheOthers) {
  constexpr uint64_t kBig = 4 << 20;
  CountedPeer counted;
  ASSERT_TRUE(counted.Start([](Config* config) { config->tcp_connections_per_peer = 4; }).ok());
  std::atomic<int64_t>* open = counted.open;
  TransportPeer* peer = counted.peer.get();
  const Target& target = counted.target;
  std::vector<char> small(target.memory.size());
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(Read(*peer, target.info.base, &small).ok());
  EXPECT_EQ(open->load(), 1) << "requests one at a time spread over the peer's connections";

  // Big slices, each submitted while the others are still carried: a data port that
  // completes the HELLO and never answers a request holds them all.
  UniqueFd listener;
  uint16_t port = 0;
  ASSERT_TRUE(Listen("127.0.0.1", 0, &listener, &port).ok());
  SegmentDescriptor silent = target.descriptor;
  silent.name = "silent";
  silent.transports["tcp"] = TcpEndpoint::Format({"127.0.0.1"}, port);
  std::shared_ptr<TransportPeer> stalled;
  ASSERT_TRUE(counted.initiator.transport.GetPeer(silent, &stalled).ok());
  std::vector<char> local(4 * kBig);
  Submitted big(Request::WRITE, local.data(), target.info.base, 4, kBig);
  for (Slice& slice : big.slices) {
    Slice* one[] = {&slice};
    stalled->Submit(one, 1);
  }
  std::vector<UniqueFd> accepted;
  for (int i = 0; i < 4; ++i) {
    pollfd ready{listener.get(), POLLIN, 0};
    if (::poll(&ready, 1, 5000) != 1) break;
    UniqueFd fd;
    std::string name;
    ASSERT_TRUE(Accept(listener.get(), &fd).ok());
    ASSERT_TRUE(wire::ServerHello(fd.get(), wire::kChannelTcpData, "", &name).ok());
    accepted.push_back(std::move(fd));
  }
  EXPECT_EQ(accepted.size(), 4u) << "big slices at once stayed on fewer connections";
  accepted.clear();  // their slices fail
  ASSERT_TRUE(Eventually([&] { return big.done.load() == 4; }, std::chrono::seconds(10)));
  EXPECT_EQ(big.failed.load(), 4u);
}

// A target at its file-descriptor-derived limit refuses with the reason, which reaches
// the initiator's slice; it neither hangs nor resets the connection.
TEST(TcpTransportTest, ConnectionsBeyondTheTargetsLimitAreRefusedWithAReason) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 32;  // the target then serves 16 connections
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  Target target("target", 64 << 10);
  const Status started = target.Start();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);  // the limit is read at Start
  ASSERT_TRUE(started.ok()) << started.ToString();

  std::vector<std::unique_ptr<Endpoint>> initiators;
  std::vector<std::shared_ptr<TransportPeer>> peers;
  int refused = 0;
  for (int i = 0; i < 20; ++i) {  // one connection each
    initiators.push_back(std::make_unique<Endpoint>("initiator" + std::to_string(i)));
    initiators.back()->config.tcp_connections_per_peer = 1;
    ASSERT_TRUE(initiators.back()->Start().ok());
    std::shared_ptr<TransportPeer> peer;
    ASSERT_TRUE(initiators.back()->transport.GetPeer(target.descriptor, &peer).ok());
    std::vector<char> local(4096);
    const Status s = Read(*peer, target.info.base, &local);
    if (!s.ok()) {
      ++refused;
      EXPECT_EQ(s.code(), Status::Code::kResourceExhausted) << s.ToString();
      EXPECT_NE(s.message().find("open-file limit"), std::string::npos) << s.ToString();
    }
    peers.push_back(peer);
  }
  EXPECT_EQ(refused, 4) << "16 of 20 connections fit";
}

void WriteOneRun(TransportPeer& peer, const Target& target, size_t slices_per_run,
                 size_t slice_size, int round);

// The response to the first WRITE of a run can come back while the rest of the run
// waits for the socket, on the one I/O thread that must also go on sending it: its
// completion may not wait for the whole run (it once spun there forever).
TEST(TcpTransportTest, WriteAnsweredBeforeTheRestOfItsRunIsSentCompletes) {
  Endpoint initiator("initiator");
  initiator.config.tcp_io_threads = 1;
  initiator.config.tcp_connections_per_peer = 1;
  ASSERT_TRUE(initiator.Start().ok());
  constexpr size_t kSlices = 256, kSliceSize = 256 << 10;
  Target target("target", kSlices * kSliceSize);
  ASSERT_TRUE(target.Start().ok());
  std::shared_ptr<TransportPeer> peer;
  ASSERT_TRUE(initiator.transport.GetPeer(target.descriptor, &peer).ok());

  // A few rounds: whether a response overtakes its run depends on the scheduling.
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_NO_FATAL_FAILURE(WriteOneRun(*peer, target, kSlices, kSliceSize, round));
  }
}

void WriteOneRun(TransportPeer& peer, const Target& target, size_t slices_per_run,
                 size_t slice_size, int round) {
  std::vector<char> local(slices_per_run * slice_size);
  for (size_t i = 0; i < local.size(); ++i) {
    local[i] = static_cast<char>(i * 7 + i / 4096 + round);
  }
  Submitted run(Request::WRITE, local.data(), target.info.base, slices_per_run, slice_size);
  run.To(peer);
  // A hang detector: the run takes well under a second.
  ASSERT_TRUE(
      Eventually([&] { return run.done.load() == slices_per_run; }, std::chrono::seconds(30)))
      << run.done.load() << " of " << slices_per_run << " slices completed";
  EXPECT_EQ(run.failed.load(), 0u);
  EXPECT_EQ(target.memory, local);
}

// The target reads pipelined requests ahead, several headers and WRITE payload bytes
// in one recv: small WRITEs, refused WRITEs (whose payloads it drops) and READs, all
// on one connection, each get their own answer and the bytes land where they belong.
TEST(TcpTransportTest, PipelinedRequestsWithRefusedWritesBetweenThemStayInStep) {
  Endpoint initiator("initiator");
  initiator.config.tcp_connections_per_peer = 1;
  ASSERT_TRUE(initiator.Start().ok());
  constexpr size_t kSize = 64 << 10, kHalf = kSize / 2, kRequests = 300;
  Target target("target", kSize);
  ASSERT_TRUE(target.Start().ok());
  for (size_t i = kHalf; i < kSize; ++i) target.memory[i] = static_cast<char>(i * 13);
  std::vector<char> expect(target.memory), local(kRequests * 512);
  std::shared_ptr<TransportPeer> peer;
  ASSERT_TRUE(initiator.transport.GetPeer(target.descriptor, &peer).ok());

  struct Outcome {
    std::atomic<size_t> done{0};
    std::promise<void> all;
    std::vector<Status> status = std::vector<Status>(kRequests);
    Slice* first = nullptr;
  } outcome;
  std::vector<Slice> slices(kRequests);
  outcome.first = slices.data();
  std::vector<Slice*> pointers;
  for (size_t i = 0; i < kRequests; ++i) {
    Slice& s = slices[i];
    const uint64_t length = 1 + (i * 37) % 500;
    s.local = local.data() + i * 512;
    s.length = length;
    s.opcode = i % 3 == 2 ? Request::READ : Request::WRITE;
    if (s.opcode == Request::READ) {
      s.remote = target.info.base + kHalf + (i * 101) % (kHalf - 512);
    } else if (i % 3 == 1) {
      s.remote = target.info.base + kSize - length / 2;  // runs past the buffer: refused
    } else {
      const uint64_t at = (i * 211) % (kHalf - 512);
      for (uint64_t b = 0; b < length; ++b) s.local[b] = static_cast<char>(i + b);
      std::memcpy(expect.data() + at, s.local, length);
      s.remote = target.info.base + at;
    }
    s.owner = &outcome;
    s.on_done = [](Slice* slice, const Status& st) {
      auto* o = static_cast<Outcome*>(slice->owner);
      o->status[slice - o->first] = st;
      if (o->done.fetch_add(1) + 1 == kRequests) o->all.set_value();
    };
    pointers.push_back(&s);
  }
  peer->Submit(pointers.data(), pointers.size());
  ASSERT_EQ(outcome.all.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << outcome.done.load() << " of " << kRequests << " answered";
  for (size_t i = 0; i < kRequests; ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    if (i % 3 == 1) {
      EXPECT_FALSE(outcome.status[i].ok());
      continue;
    }
    ASSERT_TRUE(outcome.status[i].ok()) << outcome.status[i].ToString();
    if (i % 3 == 2) {
      const size_t at = slices[i].remote - target.info.base;
      EXPECT_EQ(std::memcmp(slices[i].local, expect.data() + at, slices[i].length), 0);
    }
  }
  EXPECT_EQ(target.memory, expect);
}

int IoThreads() { return te_test::ThreadsNamed(IoLoop::kThreadName); }

// The fan benchmark's peer processes hold 32 engines each, which ran two I/O threads
// apiece: transports with the same settings share one loop.
TEST(TcpTransportTest, TransportsWithTheSameSettingsShareTheirIoThreads) {
  ASSERT_TRUE(Eventually([] { return IoThreads() == 0; }, std::chrono::seconds(10)));
  std::vector<std::unique_ptr<Endpoint>> endpoints;
  for (int i = 0; i < 9; ++i) {
    endpoints.push_back(std::make_unique<Endpoint>("endpoint" + std::to_string(i)));
    endpoints.back()->config.tcp_io_threads = i < 8 ? 2 : 3;
    ASSERT_TRUE(endpoints.back()->Start().ok());
    EXPECT_EQ(IoThreads(), i < 8 ? 2 : 5) << i + 1 << " transports started";
  }
  endpoints[8]->transport.Stop();
  EXPECT_TRUE(Eventually([] { return IoThreads() == 2; }, std::chrono::seconds(10)))
      << "the last transport of a setting left its threads running";
  for (int i = 7; i > 0; --i) endpoints[i]->transport.Stop();
  EXPECT_EQ(IoThreads(), 2) << "the threads stopped while a transport still used them";
  endpoints[0]->transport.Stop();
  EXPECT_TRUE(Eventually([] { return IoThreads() == 0; }, std::chrono::seconds(10)));
}

// Every transport of the process shares the loop: stopping one, initiator or target,
// mid-transfer, ends its handlers before Stop returns, and no other's.
TEST(TcpTransportTest, StoppingOneTransportMidTransferLeavesTheOthersWorking) {
  constexpr size_t kSlices = 128, kSliceSize = 256 << 10;
  EngineMetrics target_metrics({"tcp"}, "p2p", false), initiator_metrics({"tcp"}, "p2p", false);
  Target kept("kept");
  Endpoint busy("busy"), stopped("stopped"), writer("writer");
  auto stopped_target = std::make_unique<Target>("stopped-target", kSlices * kSliceSize);
  stopped_target->context.metrics = &target_metrics;
  stopped.context.metrics = &initiator_metrics;
  ASSERT_TRUE(kept.Start().ok());
  for (Endpoint* e : {&busy, &stopped, &writer}) ASSERT_TRUE(e->Start().ok());
  ASSERT_TRUE(stopped_target->Start().ok());

  std::shared_ptr<TransportPeer> busy_peer, stopped_peer, writer_peer;
  ASSERT_TRUE(busy.transport.GetPeer(kept.descriptor, &busy_peer).ok());
  std::atomic<bool> reading{true};
  std::atomic<int> reads{0}, read_failures{0};
  std::thread reader([&] {
    std::vector<char> local(kept.memory.size());
    while (reading) {
      if (!Read(*busy_peer, kept.info.base, &local).ok() || local != kept.memory) ++read_failures;
      ++reads;
    }
  });
  std::vector<char> local(kSlices * kSliceSize, 'w');
  const uint64_t remote = stopped_target->info.base;

  // The initiator: every slice it was given is done when Stop returns, its sockets gone.
  ASSERT_TRUE(stopped.transport.GetPeer(stopped_target->descriptor, &stopped_peer).ok());
  Submitted cut(Request::WRITE, local.data(), remote, kSlices, kSliceSize);
  cut.To(*stopped_peer);
  stopped.transport.Stop();
  EXPECT_EQ(cut.done.load(), kSlices) << "Stop returned with slices of its own not done";
  EXPECT_EQ(initiator_metrics.Connections("tcp", false)->load(), 0)
      << "the stopped initiator's sockets are still in the loop";

  // The target, while another initiator writes on connections it serves.
  ASSERT_TRUE(writer.transport.GetPeer(stopped_target->descriptor, &writer_peer).ok());
  ASSERT_TRUE(Read(*writer_peer, remote, &local).ok());
  std::atomic<int64_t>* served = target_metrics.Connections("tcp", true);
  ASSERT_GE(served->load(), 1);
  Submitted served_writes(Request::WRITE, local.data(), remote, kSlices, kSliceSize);
  served_writes.To(*writer_peer);
  stopped_target->transport.Stop();
  EXPECT_EQ(served->load(), 0) << "the stopped target's connections are still in the loop";
  stopped_target.reset();  // its memory and registry go: a handler left would touch them
  EXPECT_TRUE(
      Eventually([&] { return served_writes.done.load() == kSlices; }, std::chrono::seconds(30)))
      << "writes to the stopped target hang";

  const int before = reads.load();
  EXPECT_TRUE(Eventually([&] { return reads.load() >= before + 10; }, std::chrono::seconds(10)))
      << "the other transports' reads stopped";
  reading = false;
  reader.join();
  EXPECT_EQ(read_failures.load(), 0);
}

TEST(TcpTransportTest, ARestartedTransportServesAndReachesPeersAgain) {
  Target target("target");
  Endpoint initiator("initiator");
  ASSERT_TRUE(target.Start().ok());
  ASSERT_TRUE(initiator.Start().ok());
  std::shared_ptr<TransportPeer> before, after;
  ASSERT_TRUE(initiator.transport.GetPeer(target.descriptor, &before).ok());
  std::vector<char> local(target.memory.size());
  ASSERT_TRUE(Read(*before, target.info.base, &local).ok());
  initiator.transport.Stop();
  target.transport.Stop();
  // A handle kept across the stop fails at once, without the loop.
  EXPECT_EQ(Read(*before, target.info.base, &local).code(), Status::Code::kCancelled);
  EXPECT_EQ(initiator.transport.GetPeer(target.descriptor, &after).code(),
            Status::Code::kUnavailable);

  ASSERT_TRUE(target.Endpoint::Start().ok());  // its buffer is registered already
  ASSERT_TRUE(initiator.Start().ok());
  ASSERT_TRUE(initiator.transport.GetPeer(target.descriptor, &after).ok());
  local.assign(local.size(), 0);
  ASSERT_TRUE(Read(*after, target.info.base, &local).ok());
  EXPECT_EQ(local, target.memory);
}

}  // namespace
}  // namespace te
