// Test-only: the TCP transport's ends as an engine would hold them, for the tests of
// the transport and of its connections.
#pragma once

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

}  // namespace tcp_test
}  // namespace te
