// The line between the engine and the transports. The engine splits requests into
// slices, picks a transport per peer and tracks completion; a transport only moves a
// slice's bytes and reports the outcome exactly once through on_done. Transports know
// nothing of batches; the engine knows nothing of sockets.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "memory/buffer_registry.h"
#include "memory/device_memory.h"
#include "metadata/segment_descriptor.h"
#include "metrics/engine_metrics.h"
#include "te/config.h"
#include "te/status.h"
#include "te/types.h"

namespace te {

struct Slice {
  Request::OpCode opcode = Request::READ;
  char* local = nullptr;
  uint64_t remote = 0;
  uint64_t length = 0;
  // The device holding `local`, or kHostMemory: device bytes need device copies.
  int local_device = kHostMemory;
  // Set by the owner to abandon slices not yet on the wire.
  const std::atomic<bool>* cancelled = nullptr;
  // Called once, from any thread, when the slice is done. It may free the slice.
  void (*on_done)(Slice* slice, const Status& status) = nullptr;
  void* owner = nullptr;
  int route = 0;  // the owner's bookkeeping: which of its routes carries the slice
  // Private to the transport carrying the slice.
  Slice* next = nullptr;
  uint64_t transport_tag = 0;
  // E.g. the connection it went out on; atomic, as a waiter may look while a retry
  // moves the slice elsewhere.
  std::atomic<void*> carrier{nullptr};
  // Set by the owner when the submitting thread will likely wait for this slice in
  // ReceiveFor: the transport may then leave its response to that thread, its own
  // threads not even watching for it. Cleared (then TransportPeer::Unattended) when
  // no thread will after all.
  std::atomic<bool> awaited{false};

  bool IsCancelled() const { return cancelled && cancelled->load(std::memory_order_relaxed); }
};

// What a transport may use of the local engine.
struct TransportContext {
  const Config* config = nullptr;
  BufferRegistry* registry = nullptr;
  std::string local_name;
  std::string advertise_host;        // host peers reach this engine at
  std::string bind_host;             // host the engine's servers bind
  EngineMetrics* metrics = nullptr;  // served requests, refusals, connections; may be null
  // No host was configured: advertise_host is the engine's own pick, and a transport may
  // advertise the host's other addresses too.
  bool advertise_any = false;
};

// One peer as seen by one transport.
class TransportPeer {
 public:
  virtual ~TransportPeer() = default;
  // Queues slices; never waits on the network. Each slice's on_done runs exactly once,
  // possibly before Submit returns.
  virtual void Submit(Slice* const* slices, size_t count) = 0;
  // Whether requests to this remote buffer can go through this peer. buffer is null
  // when the range is not in the cached descriptor: only a transport whose far side
  // checks requests itself may accept that.
  virtual bool CanServe(const SegmentBuffer* buffer) const {
    (void)buffer;
    return true;
  }
  // Whether this peer moves device (GPU) memory, on either side. Those that copy with
  // memcpy, process_vm_readv or shared-memory mappings must not: device addresses
  // fault there. The engine never routes a request touching device memory elsewhere.
  virtual bool CarriesDeviceMemory() const { return false; }
  // Lets a thread that waits for `slice` receive its response itself, until done() or
  // `deadline`, instead of sleeping while a transport thread receives it and wakes the
  // waiter: one thread hand-off less per round trip. False, having done nothing, when
  // this peer does not carry the slice or cannot now; true once it received.
  virtual bool ReceiveFor(const Slice& slice, const std::function<bool()>& done,
                          std::chrono::steady_clock::time_point deadline) {
    (void)slice;
    (void)done;
    (void)deadline;
    return false;
  }
  // No thread waits (or will wait) in ReceiveFor for `slice` after all: its owner
  // cleared slice.awaited, and the transport's threads must now receive its response
  // (and any other it left to a waiter) themselves. Cheap; any thread, any number of
  // times, also once the slice is done.
  virtual void Unattended(const Slice& slice) { (void)slice; }
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual const char* name() const = 0;
  // Starts serving peers. What peers need to reach this engine through this transport
  // goes in local->transports[name()]: opaque to the engine and the descriptor codec
  // (an endpoint "host:port", a worker address); empty when nothing is needed.
  // Printable text only (it travels in JSON): binary data must be encoded.
  virtual Status Start(const TransportContext& context, SegmentDescriptor* local) = 0;
  // Called for every buffer the engine registers (local-only ones too: a transport may
  // need the local side of its copies registered with its library), before peers can
  // see it. What it puts in *public_data is published with the buffer as
  // transport_data[name()] (a CUDA IPC handle, a packed remote key); opaque to all but
  // this transport's peers, printable text only. An error fails the registration
  // (the transports before it see OnUnregister). The engine calls the hooks one
  // at a time, in registration order, never for a buffer overlapping a registered one;
  // the data path runs meanwhile.
  virtual Status OnRegister(const BufferInfo& buffer, std::string* public_data) {
    (void)buffer;
    (void)public_data;
    return Status::OK();
  }
  // Called once the buffer is out of the registry (requests to it are refused) and
  // the copies the engine pinned it for drained, just before the descriptor without
  // it is published: whatever OnRegister set up may go.
  virtual void OnUnregister(const BufferInfo& buffer) { (void)buffer; }
  // Fails what is in flight and stops serving.
  virtual void Stop() = 0;
  // True when this transport can carry traffic to the segment.
  virtual bool CanReach(const SegmentDescriptor& peer) const = 0;
  // A handle to the peer; cheap and non-blocking (connections open lazily).
  virtual Status GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) = 0;
};

}  // namespace te
