// Two hosts on one machine: network namespaces A and B joined by a veth pair with a
// 1500-byte MTU (tests/netns.h). The test process enters A before it creates its
// engine, so the engine and every thread it starts live there; te_test_peer runs in B
// (ip netns exec). The engines have different addresses and machine ids and use tcp
// only, so every byte crosses the link. What the link does to them comes from the
// test: taken down and up again, 1% of packets dropped (iptables in B), and a second
// interface in B that A cannot reach. Each case skips, saying what is missing, where
// namespaces (or iptables) cannot be made, and removes what it made.
#include <linux/tcp.h>  // tcp_info with byte counts
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>

#include "common/socket.h"
#include "netns.h"
#include "peer_sockets.h"
#include "transfer_fixture.h"

namespace te_test {
namespace {

class NetnsTransferTest : public PeerTransferTest {
 protected:
  // What each fixture varies: the topology and both engines' timeouts.
  virtual NetnsOptions Topology() const { return {}; }
  virtual uint32_t TransferTimeoutMs() const { return te::Config().transfer_timeout_ms; }
  virtual uint32_t ConnectTimeoutMs() const { return te::Config().connect_timeout_ms; }

  void SetUp() override {
    const std::string missing = NetnsPair::Unavailable();
    if (!missing.empty()) GTEST_SKIP() << "network namespaces cannot be made: " << missing;
    NetnsPair::RemoveStale();
    std::string error;
    if (!hosts_.Create(Topology(), &error)) {
      GTEST_SKIP() << "two network namespaces joined by a veth pair cannot be made here: " << error;
    }
    ASSERT_TRUE(entry_.Enter(hosts_.a(), &error)) << error;
    peer_launcher_ = hosts_.Launcher(hosts_.b());
    te::Config config;
    config.rpc_host = NetnsPair::kAddrA;
    config.machine_id = "netns-host-a-" + std::to_string(::getpid());
    config.transports = {"tcp"};
    config.transfer_timeout_ms = TransferTimeoutMs();
    config.connect_timeout_ms = ConnectTimeoutMs();
    StartEngine(config);
  }

  void TearDown() override {
    PeerTransferTest::TearDown();  // the engine and the peers go before their namespaces
    std::string error;
    EXPECT_TRUE(entry_.Leave(&error)) << error;
    hosts_.Destroy();
  }

  // A peer in B: `buffers` read-write buffers of `size` bytes holding pattern `fill`,
  // tcp only, a machine id of its own, the given rpc_host (empty: the engine's default).
  void StartHostB(uint64_t buffers, uint64_t size, uint64_t fill, PeerProcess** peer,
                  const std::string& rpc_host = NetnsPair::kAddrB) {
    std::vector<std::string> args = Args(buffers, size, "rw", fill);
    args.insert(args.end(), {"--rpc_host=" + rpc_host, "--transports=tcp",
                             "--machine_id=netns-host-b-" + std::to_string(::getpid()),
                             "--transfer_timeout_ms=" + std::to_string(TransferTimeoutMs()),
                             "--connect_timeout_ms=" + std::to_string(ConnectTimeoutMs())});
    ASSERT_NO_FATAL_FAILURE(StartPeer(args, peer));
  }

  // StartHostB with two buffers of `size`, the peer opened, and `size` bytes of local
  // memory registered.
  void ConnectHostB(uint64_t size, uint64_t fill, PeerProcess** peer, te::SegmentHandle* seg,
                    void** local) {
    ASSERT_NO_FATAL_FAILURE(StartHostB(2, size, fill, peer));
    ASSERT_NO_FATAL_FAILURE(OpenPeer(**peer, seg));
    ASSERT_NO_FATAL_FAILURE(AllocLocal(size, local));
  }

  // A batch waits at most this long before it counts as hung.
  std::chrono::milliseconds HangBound() const {
    return std::chrono::milliseconds(4 * (TransferTimeoutMs() + ConnectTimeoutMs()));
  }

  // READs the peer's [remote, remote+size) in `block`-sized requests of one batch and
  // checks every byte against pattern `seed`.
  void ExpectReadIntact(te::SegmentHandle seg, void* local, uint64_t remote, uint64_t size,
                        uint64_t block, uint64_t seed) {
    SCOPED_TRACE("READ of " + std::to_string(size) + " bytes in blocks of " +
                 std::to_string(block));
    std::memset(local, 0, size);
    Outcome o = RunBatch(
        *engine_, ConsecutiveRequests(Request::READ, local, seg, remote, size / block, block),
        HangBound());
    ASSERT_TRUE(o.completed()) << o.Describe();
    EXPECT_EQ(FirstPatternMismatch(local, size, seed), -1);
  }

  // WRITEs pattern `seed` to the peer's [remote, remote+size) in `block`-sized requests
  // of one batch and checks the peer's checksum of what landed.
  void ExpectWriteIntact(PeerProcess& peer, te::SegmentHandle seg, void* local, uint64_t remote,
                         uint64_t size, uint64_t block, uint64_t seed) {
    SCOPED_TRACE("WRITE of " + std::to_string(size) + " bytes in blocks of " +
                 std::to_string(block));
    FillPattern(local, size, seed);
    Outcome o = RunBatch(
        *engine_, ConsecutiveRequests(Request::WRITE, local, seg, remote, size / block, block),
        HangBound());
    ASSERT_TRUE(o.completed()) << o.Describe();
    EXPECT_EQ(PeerChecksum(peer, remote, size), PatternChecksum(seed, 0, size));
  }

  // A number the kernel shows for interface `dev` in `ns`: /sys/class/net/<dev>/<what>
  // ("mtu", "statistics/rx_bytes").
  uint64_t LinkValue(const std::string& ns, const std::string& dev, const std::string& what) {
    std::string out;
    const std::string path = "/sys/class/net/" + dev + "/" + what;
    EXPECT_EQ(hosts_.Exec(ns, {FindProgram("cat"), path}, &out), 0) << out;
    return std::strtoull(out.c_str(), nullptr, 10);
  }

  NetnsPair hosts_;
  NetnsEntry entry_;
};

TEST_F(NetnsTransferTest, ReadAndWriteAcrossTheLinkKeepEveryByte) {
  const uint64_t size = 8 * kMiB;
  PeerProcess* peer;
  te::SegmentHandle seg;
  void* local;
  ASSERT_NO_FATAL_FAILURE(ConnectHostB(size, 61, &peer, &seg, &local));
  ASSERT_EQ(peer->segment_name().rfind(std::string(NetnsPair::kAddrB) + ":", 0), 0u)
      << peer->segment_name();
  te::SegmentInfo info;
  ASSERT_TRUE(engine_->getSegmentInfo(seg, &info).ok());
  EXPECT_EQ(info.machine_id, "netns-host-b-" + std::to_string(::getpid()));
  ASSERT_EQ(LinkValue(hosts_.a(), NetnsPair::kVethA, "mtu"), 1500u);
  const uint64_t rx = LinkValue(hosts_.a(), NetnsPair::kVethA, "statistics/rx_bytes");
  const uint64_t tx = LinkValue(hosts_.a(), NetnsPair::kVethA, "statistics/tx_bytes");
  // Many slices in flight (128 of 64 KiB), a few of 1 MiB, one request of 8 slices.
  uint64_t seed = 600;
  for (uint64_t block : {64 * kKiB, kMiB, size}) {
    ASSERT_NO_FATAL_FAILURE(
        ExpectReadIntact(seg, local, peer->buffers()[0].base, size, block, BufferSeed(61, 0)));
    ASSERT_NO_FATAL_FAILURE(
        ExpectWriteIntact(*peer, seg, local, peer->buffers()[1].base, size, block, ++seed));
  }
  // The bytes went over the veth, not some other way between the processes.
  EXPECT_GE(LinkValue(hosts_.a(), NetnsPair::kVethA, "statistics/rx_bytes") - rx, 3 * size);
  EXPECT_GE(LinkValue(hosts_.a(), NetnsPair::kVethA, "statistics/tx_bytes") - tx, 3 * size);
}

// Short timeouts: the link's loss must show within them. Each case starts with a
// target in B holding 16 MiB to READ (buffer 0) and 16 MiB to be written (buffer 1),
// and connections that have carried traffic.
class NetnsLinkDownTest : public NetnsTransferTest {
 protected:
  static constexpr uint64_t kSize = 16 * kMiB;
  static constexpr uint64_t kFill = 62;

  uint32_t TransferTimeoutMs() const override { return 1500; }
  uint32_t ConnectTimeoutMs() const override { return 1500; }

  void SetUp() override {
    NetnsTransferTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(StartHostB(2, kSize, kFill, &peer_));
    ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer_, &seg_));
    ASSERT_NO_FATAL_FAILURE(AllocLocal(kSize, &local_read_));
    ASSERT_NO_FATAL_FAILURE(AllocLocal(kSize, &local_write_));
    ASSERT_NO_FATAL_FAILURE(ExpectReadIntact(seg_, local_read_, peer_->buffers()[0].base, kSize,
                                             kMiB, BufferSeed(kFill, 0)));
  }

  // 16 READs of 1 MiB from buffer 0 and 16 WRITEs of 1 MiB to buffer 1, one batch.
  te::BatchID SubmitTraffic() {
    auto requests = ConsecutiveRequests(Request::READ, local_read_, seg_, peer_->buffers()[0].base,
                                        kSize / kMiB, kMiB);
    auto writes = ConsecutiveRequests(Request::WRITE, local_write_, seg_, peer_->buffers()[1].base,
                                      kSize / kMiB, kMiB);
    requests.insert(requests.end(), writes.begin(), writes.end());
    te::BatchID batch = 0;
    EXPECT_TRUE(engine_->allocateBatch(requests.size(), &batch).ok());
    EXPECT_TRUE(engine_->submitTransfer(batch, requests).ok());
    return batch;
  }

  // Traffic surely in flight as the link goes: the target is stopped until the
  // batch's requests reached its sockets, so none of it can have been answered, and
  // resumes once the link is down, so its answers are lost. *down_at: when it went.
  void SubmitAndTakeTheLinkDown(te::BatchID* batch, Clock::time_point* down_at) {
    FillPattern(local_write_, kSize, 701);
    ASSERT_NO_FATAL_FAILURE(StopPeer(peer_));
    *batch = SubmitTraffic();
    ASSERT_NO_FATAL_FAILURE(WaitUntilRequestsReachStoppedPeer(*peer_));
    std::string error;
    ASSERT_TRUE(hosts_.SetLinkUp(false, &error)) << error;
    *down_at = Clock::now();
    peer_->Signal(SIGCONT);
  }

  // Waits for a batch sent while the link is down: every task must end FAILED, not
  // pending. With `bound_ms`, within that long of `since`. Frees the batch.
  void ExpectEveryTaskFails(te::BatchID batch, Clock::time_point since, const char* what,
                            int64_t bound_ms = -1) {
    SCOPED_TRACE(what);
    const te::TransferStatus overall = WaitBatch(*engine_, batch, HangBound());
    const int64_t took_ms = MsSince(since);
    EXPECT_EQ(overall.state, TransferState::kFailed) << overall.error;
    if (bound_ms >= 0) {
      EXPECT_LE(took_ms, bound_ms) << "the link's loss showed only after " << took_ms
                                   << " ms; transfer_timeout_ms is " << TransferTimeoutMs();
    }
    std::vector<te::TransferStatus> tasks;
    EXPECT_TRUE(engine_->getTransferStatus(batch, &tasks).ok());
    for (size_t i = 0; i < tasks.size(); ++i) {
      EXPECT_EQ(tasks[i].state, TransferState::kFailed) << "task " << i << ": " << tasks[i].error;
    }
    std::printf("[ netns   ] %s: FAILED after %lld ms: %s\n", what, static_cast<long long>(took_ms),
                overall.error.c_str());
    EXPECT_TRUE(engine_->freeBatch(batch).ok());
  }

  PeerProcess* peer_ = nullptr;
  te::SegmentHandle seg_ = 0;
  void* local_read_ = nullptr;
  void* local_write_ = nullptr;
};

// No slice progresses once the link is down, so each must fail within the transfer
// timeout ("a slice without progress this long fails") of the link going; the
// slack, half the timeout, is for how often a transport checks and for scheduling,
// not a guess at this machine's speed. A batch submitted later needs connections
// first: it fails within connect_timeout_ms, with the same slack, however many of its
// connects wait for a handshake thread (the wait is part of that timeout).
TEST_F(NetnsLinkDownTest, TasksFailWithinTheTransferTimeoutOnceTheLinkIsDown) {
  te::BatchID in_flight;
  Clock::time_point down_at;
  ASSERT_NO_FATAL_FAILURE(SubmitAndTakeTheLinkDown(&in_flight, &down_at));
  ExpectEveryTaskFails(in_flight, down_at, "in flight as the link went down",
                       TransferTimeoutMs() + TransferTimeoutMs() / 2);
  const auto submitted = Clock::now();
  te::BatchID later = SubmitTraffic();
  ExpectEveryTaskFails(later, submitted, "submitted while the link was down",
                       ConnectTimeoutMs() + TransferTimeoutMs() / 2);
}

// Back up: the same engine and segment handle (no reopen, no refresh by the test)
// must carry traffic again by itself within a few timeouts. Attempts that fail are
// retried, paced so that instant failures do not spin.
TEST_F(NetnsLinkDownTest, TheSameEngineTransfersAgainOnItsOwnOnceTheLinkIsBack) {
  te::BatchID in_flight;
  Clock::time_point down_at;
  ASSERT_NO_FATAL_FAILURE(SubmitAndTakeTheLinkDown(&in_flight, &down_at));
  ExpectEveryTaskFails(in_flight, down_at, "in flight as the link went down");
  std::string error;
  ASSERT_TRUE(hosts_.SetLinkUp(true, &error)) << error;
  const auto up_at = Clock::now();
  const int64_t recovery_bound_ms = 4 * (TransferTimeoutMs() + ConnectTimeoutMs());
  int attempts = 0;
  Outcome last;
  std::string failures;
  do {
    if (attempts++ > 0) std::this_thread::sleep_for(50ms);
    std::memset(local_read_, 0, kSize);
    last = RunBatch(*engine_,
                    ConsecutiveRequests(Request::READ, local_read_, seg_, peer_->buffers()[0].base,
                                        kSize / kMiB, kMiB),
                    HangBound());
    if (!last.completed()) {
      failures += "\n  attempt " + std::to_string(attempts) + ": " + last.Describe();
    }
  } while (!last.completed() && MsSince(up_at) < recovery_bound_ms);
  ASSERT_TRUE(last.completed()) << "no READ completed within " << recovery_bound_ms
                                << " ms of the link coming back:" << failures;
  std::printf("[ netns   ] transferring again %lld ms after the link came back, attempt %d%s\n",
              static_cast<long long>(MsSince(up_at)), attempts, failures.c_str());
  EXPECT_EQ(FirstPatternMismatch(local_read_, kSize, BufferSeed(kFill, 0)), -1);
  ASSERT_NO_FATAL_FAILURE(
      ExpectWriteIntact(*peer_, seg_, local_write_, peer_->buffers()[1].base, kSize, kMiB, 710));
}

// 1% of the packets each way dropped as they arrive (iptables' statistic match on INPUT
// in A and in B): a loss in the network. A drop in the sender's OUTPUT would be a local
// send failure instead, which TCP retries on its probe timer (bench/netns_link.sh).
class NetnsLossTest : public NetnsTransferTest {
 protected:
  void SetUp() override {
    NetnsTransferTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (FindProgram("iptables").empty()) {
      GTEST_SKIP() << "no iptables (scripts/install_deps.sh installs it)";
    }
    for (const std::string& host : {hosts_.a(), hosts_.b()}) {
      std::string out;
      if (hosts_.Exec(host,
                      {FindProgram("iptables"), "-A", "INPUT", "-m", "statistic", "--mode",
                       "random", "--probability", "0.01", "-j", "DROP"},
                      &out) != 0) {
        GTEST_SKIP() << "iptables cannot drop packets at random here: " << out;
      }
    }
  }

  // Packets the rules in A and B dropped so far.
  uint64_t Dropped() {
    uint64_t dropped = 0;
    for (const std::string& host : {hosts_.a(), hosts_.b()}) {
      std::string out;
      EXPECT_EQ(hosts_.Exec(host, {FindProgram("iptables"), "-L", "-n", "-v", "-x"}, &out), 0)
          << out;
      std::istringstream lines(out);
      std::string line;
      while (std::getline(lines, line)) {
        if (line.find("statistic") != std::string::npos) {
          dropped += std::strtoull(line.c_str(), nullptr, 10);  // the first column: pkts
        }
      }
    }
    return dropped;
  }
};

TEST_F(NetnsLossTest, OnePercentPacketLossKeepsEveryByteAndNeverHangs) {
  const uint64_t size = 4 * kMiB;
  PeerProcess* peer;
  te::SegmentHandle seg;
  void* local;
  ASSERT_NO_FATAL_FAILURE(ConnectHostB(size, 63, &peer, &seg, &local));
  // A few seconds of traffic, each batch bounded (HangBound): READs in 64 KiB blocks,
  // WRITEs in 1 MiB blocks, every byte checked.
  const auto start = Clock::now();
  int rounds = 0;
  while (rounds < 2 || MsSince(start) < 3000) {
    ASSERT_NO_FATAL_FAILURE(
        ExpectReadIntact(seg, local, peer->buffers()[0].base, size, 64 * kKiB, BufferSeed(63, 0)));
    ASSERT_NO_FATAL_FAILURE(
        ExpectWriteIntact(*peer, seg, local, peer->buffers()[1].base, size, kMiB, 800 + rounds));
    ++rounds;
  }
  const uint64_t dropped = Dropped();
  std::printf("[ netns   ] %d rounds of %llu MiB each way, %llu packets dropped\n", rounds,
              static_cast<unsigned long long>(size / kMiB),
              static_cast<unsigned long long>(dropped));
  EXPECT_GT(dropped, 0u) << "the rules dropped nothing: this run saw no loss";
}

// The minimum RTO (TCP_RTO_MIN_US, us) of each data connection of process `pid` that
// has retransmitted: each TCP socket it holds, taken into this process (pidfd_getfd)
// and asked (a data connection is one that moved over 1 MiB).
constexpr int kTcpRtoMinUs = 45;  // Linux >= 6.15 (uapi linux/tcp.h)

struct RetransmittedConnections {
  std::vector<int> rto_mins;  // one per data connection that has retransmitted
  std::string seen;           // every TCP socket looked at, for a failure's message
};

RetransmittedConnections RetransmittedDataConnectionRtoMins(pid_t pid) {
  RetransmittedConnections found;
  te::UniqueFd process(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (process.get() < 0) {
    ADD_FAILURE() << "pidfd_open: " << std::strerror(errno);
    return found;
  }
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    if (std::filesystem::read_symlink(entry.path(), ec).string().rfind("socket:[", 0) != 0)
      continue;
    const int target = std::atoi(entry.path().filename().c_str());
    te::UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_getfd, process.get(), target, 0)));
    tcp_info info{};
    socklen_t len = sizeof(info);
    if (fd.get() < 0 || ::getsockopt(fd.get(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) continue;
    found.seen += " [state " + std::to_string(info.tcpi_state) + ", retrans " +
                  std::to_string(info.tcpi_total_retrans) + ", acked " +
                  std::to_string(info.tcpi_bytes_acked) + ", received " +
                  std::to_string(info.tcpi_bytes_received) + "]";
    int rto_min = 0;
    socklen_t min_len = sizeof(rto_min);
    if (info.tcpi_state != 1 /* TCP_ESTABLISHED */ || info.tcpi_total_retrans == 0 ||
        info.tcpi_bytes_acked + info.tcpi_bytes_received <= kMiB ||
        ::getsockopt(fd.get(), IPPROTO_TCP, kTcpRtoMinUs, &rto_min, &min_len) != 0) {
      continue;
    }
    found.rto_mins.push_back(rto_min);
  }
  return found;
}

// Data connections start with the kernel's minimum RTO (200 ms; below it Linux also
// shortens delayed ACKs, a timer per ACK on a connection used every few ms) and take
// tcp_rto_min_us (5 ms) at the loop's next tick once they have retransmitted: on both
// ends, whichever lost a packet.
TEST_F(NetnsLossTest, ConnectionsThatRetransmitTakeTheShortMinimumRto) {
  int expected = 5000;  // as this kernel rounds it to its timer ticks
  {
    te::UniqueFd probe(::socket(AF_INET, SOCK_STREAM, 0));
    socklen_t len = sizeof(expected);
    if (::setsockopt(probe.get(), IPPROTO_TCP, kTcpRtoMinUs, &expected, len) != 0 ||
        ::getsockopt(probe.get(), IPPROTO_TCP, kTcpRtoMinUs, &expected, &len) != 0) {
      GTEST_SKIP() << "this kernel has no per-socket minimum RTO (Linux >= 6.15)";
    }
  }
  const uint64_t size = 4 * kMiB;
  PeerProcess* peer;
  te::SegmentHandle seg;
  void* local;
  ASSERT_NO_FATAL_FAILURE(ConnectHostB(size, 64, &peer, &seg, &local));
  // veth passes GSO packets of up to 64 KiB whole, so 1% of the packets is only a few
  // data packets a round (32 MiB: 9 to 20 drops), and an ACK's loss retransmits nothing.
  // So traffic goes on until each end holds a data connection that retransmitted, or 10 s.
  const pid_t ends[] = {::getpid(), peer->pid()};
  const auto traffic_start = Clock::now();
  int round = 0;
  auto each_end_retransmitted = [&] {
    for (const pid_t pid : ends) {
      if (RetransmittedDataConnectionRtoMins(pid).rto_mins.empty()) return false;
    }
    return true;
  };
  do {
    ASSERT_NO_FATAL_FAILURE(
        ExpectReadIntact(seg, local, peer->buffers()[0].base, size, 64 * kKiB, BufferSeed(64, 0)));
    ASSERT_NO_FATAL_FAILURE(
        ExpectWriteIntact(*peer, seg, local, peer->buffers()[1].base, size, kMiB, 900 + round));
    ++round;
  } while (MsSince(traffic_start) < 10000 && (round < 4 || !each_end_retransmitted()));
  std::printf("[ netns   ] %d rounds, %llu packets dropped\n", round,
              static_cast<unsigned long long>(Dropped()));
  // A loss after the last request (a tail loss probe 200 ms on, or its own loss)
  // retransmits late: each end gets a tick after its last retransmission.
  for (const pid_t pid : ends) {
    SCOPED_TRACE(pid == ::getpid() ? "initiator (host A)" : "target (host B)");
    RetransmittedConnections found;
    const auto start = Clock::now();
    do {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a tick: at most 100 ms
      found = RetransmittedDataConnectionRtoMins(pid);
    } while (MsSince(start) < 3000 &&
             (found.rto_mins.empty() ||
              std::find_if(found.rto_mins.begin(), found.rto_mins.end(),
                           [&](int m) { return m != expected; }) != found.rto_mins.end()));
    ASSERT_FALSE(found.rto_mins.empty())
        << "no data connection retransmitted: nothing to check; TCP sockets:" << found.seen;
    for (int min : found.rto_mins) EXPECT_EQ(min, expected) << "a connection that retransmitted";
  }
}

// B has a second interface, up, whose address A cannot reach (no route), and it is B's
// first non-loopback IPv4 address: what an engine without rpc_host and without a
// default route picks (te::DefaultAdvertiseAddress).
class NetnsTwoInterfacesTest : public NetnsTransferTest {
 protected:
  NetnsOptions Topology() const override {
    NetnsOptions options;
    options.unreachable_interface_in_b = true;
    return options;
  }
  uint32_t TransferTimeoutMs() const override { return 2000; }
  uint32_t ConnectTimeoutMs() const override { return 2000; }

  void SetUp() override {
    NetnsTransferTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // The premise: the unreachable address is the one listed first (getifaddrs lists
    // addresses in the kernel's order, as `ip addr` does).
    std::string out;
    ASSERT_EQ(hosts_.Exec(hosts_.b(), {FindProgram("ip"), "-4", "-o", "addr", "show", "up"}, &out),
              0)
        << out;
    std::istringstream lines(out);
    std::string index, dev, family, address;
    while (lines >> index >> dev >> family >> address) {
      if (dev != "lo") break;
      lines.ignore(1 << 20, '\n');
    }
    ASSERT_EQ(address, std::string(NetnsPair::kUnreachableAddrB) + "/24") << out;
  }

  // READ and WRITE of both of the peer's buffers in 1 MiB blocks, every byte checked.
  void ExpectTransfersIntact(PeerProcess& peer, te::SegmentHandle seg, uint64_t size,
                             uint64_t fill) {
    void* local;
    ASSERT_NO_FATAL_FAILURE(AllocLocal(size, &local));
    ASSERT_NO_FATAL_FAILURE(
        ExpectReadIntact(seg, local, peer.buffers()[0].base, size, kMiB, BufferSeed(fill, 0)));
    ASSERT_NO_FATAL_FAILURE(
        ExpectWriteIntact(peer, seg, local, peer.buffers()[1].base, size, kMiB, fill + 100));
  }
};

TEST_F(NetnsTwoInterfacesTest, ConfiguredRpcHostIsAdvertisedAndCarriesTransfers) {
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartHostB(2, 4 * kMiB, 64, &peer, NetnsPair::kAddrB));
  EXPECT_EQ(peer->segment_name().rfind(std::string(NetnsPair::kAddrB) + ":", 0), 0u)
      << peer->segment_name();
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  ASSERT_NO_FATAL_FAILURE(ExpectTransfersIntact(*peer, seg, 4 * kMiB, 64));
}

// Without rpc_host the target's RPC server listens on all its addresses; opened
// through the reachable one, its transfers must then go somewhere A reaches too,
// whichever addresses its transports advertise.
TEST_F(NetnsTwoInterfacesTest, WithoutRpcHostTransfersReachTheTargetOpenedByAReachableAddress) {
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartHostB(2, 4 * kMiB, 65, &peer, ""));
  const std::string& name = peer->segment_name();
  const std::string reachable = std::string(NetnsPair::kAddrB) + name.substr(name.rfind(':'));
  te::SegmentHandle seg;
  te::Status s = engine_->openSegment(&seg, reachable);
  ASSERT_TRUE(s.ok()) << "openSegment(" << reachable << "): " << s.ToString();
  ASSERT_NO_FATAL_FAILURE(ExpectTransfersIntact(*peer, seg, 4 * kMiB, 65))
      << "target's own segment name: " << name;
}

// Without rpc_host, the name the target reports for itself (p2p: "host:port") is what
// its peers open; it must lead to the target from A. B routes by default through the
// link to A, as a host routes towards the network of its peers: the engine names itself
// after the default route's interface, not after whichever comes first.
TEST_F(NetnsTwoInterfacesTest, WithoutRpcHostTheSegmentNameTheTargetReportsOpensAndTransfers) {
  std::string out;
  ASSERT_EQ(
      hosts_.Exec(hosts_.b(),
                  {FindProgram("ip"), "route", "add", "default", "via", NetnsPair::kAddrA}, &out),
      0)
      << out;
  PeerProcess* peer;
  ASSERT_NO_FATAL_FAILURE(StartHostB(2, 4 * kMiB, 66, &peer, ""));
  te::SegmentHandle seg;
  ASSERT_NO_FATAL_FAILURE(OpenPeer(*peer, &seg));
  ASSERT_NO_FATAL_FAILURE(ExpectTransfersIntact(*peer, seg, 4 * kMiB, 66));
}

}  // namespace
}  // namespace te_test
