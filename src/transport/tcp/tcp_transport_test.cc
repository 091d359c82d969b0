#include "transport/tcp/tcp_transport.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <vector>

#include "memory/buffer_registry.h"

namespace te {
namespace {

// One end of the TCP transport with its own registry, as an engine would hold it.
struct Endpoint {
  explicit Endpoint(const std::string& name) {
    config.transfer_timeout_ms = 5000;
    context.config = &config;
    context.registry = &registry;
    context.local_name = name;
    context.advertise_host = "127.0.0.1";
    context.bind_host = "127.0.0.1";
    descriptor.name = name;
  }
  Status Start() { return transport.Start(context, &descriptor); }

  Config config;
  BufferRegistry registry;
  TransportContext context;
  SegmentDescriptor descriptor;
  TcpTransport transport;
};

// Reads `length` bytes of the target's buffer at `remote` into `local` through `peer`.
Status Read(TransportPeer& peer, uint64_t remote, std::vector<char>* local) {
  std::promise<Status> done;
  Slice slice;
  slice.opcode = Request::READ;
  slice.local = local->data();
  slice.remote = remote;
  slice.length = local->size();
  slice.owner = &done;
  slice.on_done = [](Slice* s, const Status& status) {
    static_cast<std::promise<Status>*>(s->owner)->set_value(status);
  };
  Slice* slices[] = {&slice};
  peer.Submit(slices, 1);
  auto result = done.get_future();
  if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    return Status::Timeout("read did not complete");
  }
  return result.get();
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

}  // namespace
}  // namespace te
