#include "transport/tcp/tcp_connection.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "common/socket.h"
#include "rpc/handshake.h"
#include "rpc/wire.h"
#include "test_util.h"
#include "transport/tcp/tcp_endpoint.h"
#include "transport/tcp/tcp_test_endpoints.h"

namespace te {
namespace {
using tcp_test::Target;
using Clock = std::chrono::steady_clock;

// One connection to a target on a loop of its own, whose tick (the safety net for
// responses nobody asked for) comes only when a test wants it.
class LoneConnection {
 public:
  LoneConnection(const Target& target, std::chrono::milliseconds tick)
      : LoneConnection(target.descriptor.transports.at("tcp"), tick) {}
  // To the data port advertised as `endpoint`; a waiter polls for `busy_poll`.
  LoneConnection(const std::string& endpoint, std::chrono::milliseconds tick,
                 std::chrono::microseconds busy_poll = {}) {
    EXPECT_TRUE(loop_.Start({1, tick}).ok());
    handshakes_.Start(1, 4);
    TcpConnectionOptions options;
    options.endpoint = std::make_shared<TcpEndpoint>();
    EXPECT_TRUE(TcpEndpoint::Parse(endpoint, options.endpoint.get()).ok());
    options.self = {"initiator", ""};
    options.io_timeout_ms = 60000;  // no stall check ends a response in these tests
    options.busy_poll = busy_poll;
    conn_ = std::make_shared<TcpConnection>(options, &loop_, loop_.NewOwner(), &handshakes_);
  }
  ~LoneConnection() {
    conn_->Close();
    handshakes_.Stop();
    loop_.Stop();
  }
  // Returns once the loop ran what was posted to it and handled the events it had
  // (twice round: an event reported with a task is handled after it).
  void Drain() {
    for (int round = 0; round < 2; ++round) {
      std::promise<void> ran;
      loop_.Post(0, [&ran] { ran.set_value(); });
      ran.get_future().wait();
    }
  }
  TcpConnection& operator*() { return *conn_; }
  TcpConnection* operator->() { return conn_.get(); }

 private:
  IoLoop loop_;
  HandshakePool handshakes_;
  std::shared_ptr<TcpConnection> conn_;
};

// A 4 KiB READ of the target's buffer, its outcome kept.
struct Probe {
  Probe(const Target& target, bool awaited) : local(4096) {
    slice.opcode = Request::READ;
    slice.local = local.data();
    slice.remote = target.info.base;
    slice.length = local.size();
    slice.awaited.store(awaited);
    slice.owner = this;
    slice.on_done = [](Slice* s, const Status& status) {
      auto* probe = static_cast<Probe*>(s->owner);
      probe->ok = status.ok();
      probe->done.store(true);
    };
  }
  bool Eventually() const {
    return te_test::Eventually([this] { return done.load(); }, std::chrono::seconds(10));
  }
  std::vector<char> local;
  Slice slice;
  std::atomic<bool> done{false};
  bool ok = false;
};

constexpr auto kNoTick = std::chrono::hours(1);
// Long enough for a 4 KiB response on loopback to be back.
constexpr auto kResponseTime = std::chrono::milliseconds(2);

bool ReceiveUntilDone(TcpConnection& conn, const Probe& probe) {
  return conn.ReceiveFor([&probe] { return probe.done.load(); },
                         Clock::now() + std::chrono::seconds(10));
}

// Opens the socket with a request the loop receives, as any request not awaited, then
// makes round trips the way a waiter does until its waiter read one, after which the
// loop no longer watches for input (until a request no waiter is expected for). The
// first may be the loop's: its watch, on since the first read, is dropped only after
// the send, and a slow build's response comes before.
void Connect(const Target& target, LoneConnection& lone) {
  TcpConnection& conn = *lone;
  Probe first(target, false);
  conn.Enqueue(&first.slice, &first.slice);
  ASSERT_TRUE(first.Eventually() && first.ok) << "the first read failed";
  for (int i = 0;; ++i) {
    ASSERT_LT(i, 100) << "no waiter ever read its own response";
    Probe awaited(target, true);
    conn.Enqueue(&awaited.slice, &awaited.slice);
    const bool by_waiter = ReceiveUntilDone(conn, awaited);
    ASSERT_TRUE(awaited.Eventually() && awaited.ok) << "an awaited read failed";
    if (by_waiter) break;
  }
  // A read the loop was asked for meanwhile (input came while the waiter read) runs
  // now, not on the test's next response.
  lone.Drain();
}

// The loop never even watches for a response its waiter is expected to read: on one
// CPU that response is often back before the send returns, and a watch raised then
// woke the I/O thread, which took the response and the waiter's shortcut with it.
TEST(TcpConnectionTest, AnAwaitedResponseIsLeftToItsWaiter) {
  Target target("target");
  ASSERT_TRUE(target.Start().ok());
  LoneConnection conn(target, kNoTick);
  Connect(target, conn);
  for (int i = 0; i < 20; ++i) {
    Probe probe(target, true);
    conn->Enqueue(&probe.slice, &probe.slice);
    std::this_thread::sleep_for(kResponseTime);
    ASSERT_FALSE(probe.done) << "round trip " << i << ": the I/O thread received the response";
    EXPECT_TRUE(ReceiveUntilDone(*conn, probe));
    ASSERT_TRUE(probe.done && probe.ok) << "round trip " << i;
  }
}

TEST(TcpConnectionTest, AnAwaitedResponseNoWaiterComesForIsReceivedOnceUnattended) {
  Target target("target");
  ASSERT_TRUE(target.Start().ok());
  LoneConnection conn(target, kNoTick);
  Connect(target, conn);
  Probe probe(target, true);
  conn->Enqueue(&probe.slice, &probe.slice);
  std::this_thread::sleep_for(kResponseTime);
  ASSERT_FALSE(probe.done);
  conn->Unattended();
  EXPECT_TRUE(probe.Eventually() && probe.ok) << "left unreceived";
}

// A lone request sent while another thread's waiter reads (that thread then found the
// reader's role taken, and sleeps): the waiter stops at its own response, and the
// other one is the loop's from then on.
TEST(TcpConnectionTest, AWaiterLeavingHandsTheResponsesLeftToTheLoop) {
  Target target("target");
  ASSERT_TRUE(target.Start().ok());
  LoneConnection conn(target, kNoTick);
  Connect(target, conn);
  Probe first(target, true), second(target, true);
  conn->Enqueue(&first.slice, &first.slice);
  bool sent = false;
  auto first_done_then_send = [&] {
    if (first.done && !sent) {
      sent = true;  // on the wire before the waiter leaves, answered after
      conn->Enqueue(&second.slice, &second.slice);
    }
    return first.done.load();
  };
  EXPECT_TRUE(conn->ReceiveFor(first_done_then_send, Clock::now() + std::chrono::seconds(10)));
  ASSERT_TRUE(first.done && first.ok && sent);
  EXPECT_TRUE(second.Eventually() && second.ok) << "left unreceived";
}

TEST(TcpConnectionTest, AnAwaitedResponseNobodyAsksForIsReceivedByTheNextTick) {
  Target target("target");
  ASSERT_TRUE(target.Start().ok());
  LoneConnection conn(target, std::chrono::milliseconds(10));
  Connect(target, conn);
  Probe probe(target, true);
  conn->Enqueue(&probe.slice, &probe.slice);
  EXPECT_TRUE(probe.Eventually() && probe.ok) << "left unreceived";
}

// A data port that answers the READs of one connection with zeros, until it closes:
// the first at once, then pairs, the second of each `delay` after the first.
class SlowSecondAnswer {
 public:
  explicit SlowSecondAnswer(std::chrono::milliseconds delay) : delay_(delay) {
    EXPECT_TRUE(Listen("127.0.0.1", 0, &listener_, &port_).ok());
    thread_ = std::thread([this] { Serve(); });
  }
  ~SlowSecondAnswer() { thread_.join(); }
  std::string endpoint() const { return TcpEndpoint::Format({"127.0.0.1"}, port_); }

 private:
  void Serve() {
    UniqueFd fd;
    std::string peer;
    if (!Accept(listener_.get(), &fd).ok() || !SetIoTimeout(fd.get(), 10000).ok() ||
        !wire::ServerHello(fd.get(), wire::kChannelTcpData, "", &peer).ok()) {
      return;
    }
    for (int answered = 0;; ++answered) {
      uint8_t raw[wire::kHeaderSize];
      wire::FrameHeader h;
      if (!RecvAll(fd.get(), raw, sizeof(raw)).ok() || !wire::DecodeHeader(raw, &h).ok()) return;
      if (answered > 0 && answered % 2 == 0) std::this_thread::sleep_for(delay_);
      wire::FrameHeader reply = h;
      reply.flags = wire::kFlagResponse;
      reply.payload_len = h.length;
      uint8_t out[wire::kHeaderSize];
      wire::EncodeHeader(reply, out);
      const std::string data(h.length, '\0');
      if (!SendAll(fd.get(), out, sizeof(out)).ok() ||
          !SendAll(fd.get(), data.data(), data.size()).ok()) {
        return;
      }
    }
  }

  const std::chrono::milliseconds delay_;
  UniqueFd listener_;
  uint16_t port_ = 0;
  std::thread thread_;
};

// How often a waiter reading two responses `gap` apart sleeps between the two, with
// `busy_poll`. The socket opens with a request the loop receives; a pair whose
// responses the loop took (a read it had begun, or still reading when the waiter
// came) is tried again.
long WaiterSleepsBetweenResponses(std::chrono::microseconds busy_poll,
                                  std::chrono::milliseconds gap) {
  SlowSecondAnswer server(gap);
  LoneConnection conn(server.endpoint(), kNoTick, busy_poll);
  Target shape("unused");  // Probe's shape: 4 KiB READs at its base
  Probe opening(shape, false);
  conn->Enqueue(&opening.slice, &opening.slice);
  EXPECT_TRUE(opening.Eventually() && opening.ok);
  for (int attempt = 0; attempt < 10; ++attempt) {
    Probe first(shape, true), second(shape, true);
    first.slice.next = &second.slice;
    conn->Enqueue(&first.slice, &second.slice);
    long sleeps_at_first = -1;
    const bool received = conn->ReceiveFor(
        [&] {
          if (first.done && sleeps_at_first < 0) sleeps_at_first = te_test::SleepsSoFar();
          return second.done.load();
        },
        Clock::now() + std::chrono::seconds(10));
    const long sleeps = te_test::SleepsSoFar() - sleeps_at_first;
    if (!received) {
      // The loop was reading when the waiter came: like the engine's waiter, hand the
      // responses to the loop.
      first.slice.awaited.store(false);
      second.slice.awaited.store(false);
      conn->Unattended();
    }
    if (!first.Eventually() || !second.Eventually()) {
      conn->Close();  // completes both while they still exist
      ADD_FAILURE() << "the responses never came (received " << received << ")";
      return -1;
    }
    EXPECT_TRUE(first.ok && second.ok);
    if (received && sleeps_at_first >= 0) return sleeps;
  }
  ADD_FAILURE() << "the waiter never received the first response";
  return -1;
}

// Input arriving for a waiter that sleeps costs its sender a wake-up (on a virtual
// machine an interrupt to another CPU); one that polls finds it without.
TEST(TcpConnectionTest, AWaiterPollsForItsBusyPollTimeAfterInputThenSleeps) {
  EXPECT_EQ(WaiterSleepsBetweenResponses(std::chrono::seconds(5), std::chrono::milliseconds(20)), 0)
      << "slept although the response came within its busy-poll time";
  EXPECT_GE(
      WaiterSleepsBetweenResponses(std::chrono::milliseconds(5), std::chrono::milliseconds(200)), 1)
      << "still polling long after its busy-poll time";
  EXPECT_GE(WaiterSleepsBetweenResponses({}, std::chrono::milliseconds(20)), 1)
      << "polled without a busy-poll time";
}

// Responses are received ahead into a small buffer (a header with what follows it: a
// small payload, a refusal's text, the next headers); each byte must still land in
// its own slice, whatever the sizes and however the stream splits between receives.
TEST(TcpConnectionTest, ResponsesReceivedAheadLandWhereTheyBelong) {
  constexpr size_t kTargetSize = 1 << 20;
  Target target("target", kTargetSize);
  for (size_t i = 0; i < kTargetSize; ++i) target.memory[i] = static_cast<char>(i * 131 + 7);
  ASSERT_TRUE(target.Start().ok());
  LoneConnection conn(target, kNoTick);
  const std::vector<uint64_t> sizes = {1,    7,    24,   100,  4072,  4096, 4097,
                                       4120, 4144, 4145, 8192, 65536, 3,    70000};
  struct Expect {
    uint64_t remote;
    bool refused;
  };
  std::vector<Expect> expects;
  std::vector<std::unique_ptr<Probe>> probes;
  uint64_t offset = 0;
  for (int round = 0; round < 2; ++round) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      auto probe = std::make_unique<Probe>(target, false);
      probe->local.assign(sizes[i], 0);
      probe->slice.local = probe->local.data();
      probe->slice.length = sizes[i];
      // Every third one out of the buffer: refused, with a text as its payload.
      const bool refused = i % 3 == 2;
      const uint64_t remote = refused ? target.info.base + kTargetSize : target.info.base + offset;
      if (!refused) offset += sizes[i];
      probe->slice.remote = remote;
      expects.push_back({remote - target.info.base, refused});
      if (!probes.empty()) probes.back()->slice.next = &probe->slice;
      probes.push_back(std::move(probe));
    }
  }
  ASSERT_LE(offset, kTargetSize);
  conn->Enqueue(&probes.front()->slice, &probes.back()->slice);
  for (size_t i = 0; i < probes.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "slice " << i << " of " << probes[i]->local.size());
    ASSERT_TRUE(probes[i]->Eventually());
    ASSERT_EQ(probes[i]->ok, !expects[i].refused);
    if (expects[i].refused) continue;
    EXPECT_EQ(std::memcmp(probes[i]->local.data(), target.memory.data() + expects[i].remote,
                          probes[i]->local.size()),
              0);
  }
}

}  // namespace
}  // namespace te
