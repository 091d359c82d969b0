// Test-only: the TCP transport's ends as an engine would hold them, for the tests of
// the transport, its connections, its server and its socket tuning; and slices
// submitted to a peer the way the engine does.
#pragma once

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "memory/buffer_registry.h"
#include "metadata/segment_descriptor.h"
#include "te/config.h"
#include "transport/tcp/tcp_transport.h"
#include "transport/transport.h"

namespace te {
namespace tcp_test {

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

// The target's memory, a base so that it outlives the transport serving it.
struct TargetMemory {
  explicit TargetMemory(size_t size) : memory(size, 't') {}
  std::vector<char> memory;
};

// A target transport with one registered buffer.
struct Target : TargetMemory, Endpoint {
  explicit Target(const std::string& name, size_t size = 4096)
      : TargetMemory(size), Endpoint(name) {
    info.base = reinterpret_cast<uint64_t>(memory.data());
    info.length = memory.size();
    info.location = "cpu:0";
  }
  Status Start() {
    TE_RETURN_IF_ERROR(registry.Add(info));
    return Endpoint::Start();
  }
  BufferInfo info;
};

// Reads `length` bytes of the target's buffer at `remote` into `local` through `peer`.
inline Status Read(TransportPeer& peer, uint64_t remote, std::vector<char>* local) {
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

// Slices submitted without waiting, counted as they complete.
struct Submitted {
  Submitted(Request::OpCode opcode, char* local, uint64_t remote, size_t count, size_t size)
      : slices(count) {
    for (size_t i = 0; i < count; ++i) {
      Slice& s = slices[i];
      s.opcode = opcode;
      s.local = local + i * size;
      s.remote = remote + i * size;
      s.length = size;
      s.owner = this;
      s.on_done = [](Slice* slice, const Status& status) {
        auto* submitted = static_cast<Submitted*>(slice->owner);
        if (!status.ok()) submitted->failed.fetch_add(1);
        submitted->done.fetch_add(1);
      };
    }
  }
  void To(TransportPeer& peer) {
    std::vector<Slice*> pointers;
    for (Slice& s : slices) pointers.push_back(&s);
    peer.Submit(pointers.data(), pointers.size());
  }
  std::vector<Slice> slices;
  std::atomic<size_t> done{0}, failed{0};
};

}  // namespace tcp_test
}  // namespace te
