// Value types of the public API.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace te {

using SegmentHandle = uint64_t;
using BatchID = uint64_t;

// What peers may do with a registered buffer.
enum class Permission : uint8_t {
  kLocalOnly = 0,        // usable as the local side of transfers only; invisible to peers
  kRemoteRead = 1,       // peers may READ it
  kRemoteReadWrite = 2,  // peers may READ and WRITE it
};
const char* PermissionName(Permission p);

struct MemoryOptions {
  // "cpu:N" places DRAM on NUMA node N; empty lets the engine choose (allocation:
  // cpu:0; registration: the node the first page lives on).
  std::string location;
  // Allocate in POSIX shared memory so same-host peers can map it.
  bool shm = false;
  Permission permission = Permission::kRemoteReadWrite;
};

struct Request {
  enum OpCode : uint8_t { READ = 0, WRITE = 1 };
  OpCode opcode = READ;
  void* source = nullptr;       // local address (must lie in a registered buffer)
  SegmentHandle target_id = 0;  // from openSegment
  uint64_t target_offset = 0;   // remote address inside one of the target's buffers
  uint64_t length = 0;
};

enum class TransferState : uint8_t { kPending = 0, kCompleted = 1, kFailed = 2 };
const char* TransferStateName(TransferState s);

struct TransferStatus {
  TransferState state = TransferState::kPending;
  uint64_t transferred_bytes = 0;
  // For kFailed: why, with the status code name first.
  std::string error;
};

struct BufferInfo {
  uint64_t base = 0;
  uint64_t length = 0;
  std::string location;  // "cpu:N"
  Permission permission = Permission::kRemoteReadWrite;
  std::string shm_name;  // non-empty when the buffer lives in POSIX shared memory
};

struct SegmentInfo {
  std::string name;
  std::string machine_id;
  std::vector<std::string> transports;
  std::vector<BufferInfo> buffers;  // sorted by base
};

// Latencies in buckets: counts[i] samples took at most upper_bounds_seconds[i] (and
// more than the bound before); the last count, one past the bounds, has no bound.
struct LatencyHistogram {
  std::vector<double> upper_bounds_seconds;
  std::vector<uint64_t> counts;  // not cumulative; upper_bounds_seconds.size() + 1
  uint64_t count = 0;
  double sum_seconds = 0;
};

struct TransportStatistics {
  uint64_t read_bytes = 0, write_bytes = 0;  // retried slices included where they went
  uint64_t read_requests = 0, write_requests = 0;
  // Slices that failed for good, by reason ("timeout", "unavailable", ...).
  std::map<std::string, uint64_t> failures_by_reason;
  // Open connections (transports that keep none report 0).
  int64_t outbound_connections = 0, inbound_connections = 0;
  // From submission to the slice's completion, and to the completion of the last
  // task of the batch (labelled by the transport that finished it). Kept only while
  // the metrics endpoint is on (Config::metrics_port); empty counts otherwise.
  LatencyHistogram slice_latency, batch_latency;
};

struct MetadataOperationCount {
  std::string operation;  // "publish", "unpublish", "lookup"
  std::string result;     // "ok" or the failure's reason ("unavailable", ...)
  uint64_t count = 0;
};

struct EngineStatistics {
  // Bytes submitted per transport name, retried slices included where they went.
  std::map<std::string, uint64_t> bytes_by_transport;
  // Slices that failed on one transport and were resubmitted on the next one that
  // reaches the segment (e.g. shared memory -> CMA -> TCP) before failing the task.
  uint64_t retried_slices = 0;

  // Per transport name: the same bytes split by opcode, and more.
  std::map<std::string, TransportStatistics> transports;
  int64_t slices_in_flight = 0;
  uint64_t open_segments = 0;
  uint64_t registered_buffers = 0, registered_bytes = 0;
  std::string metadata_backend;                             // Config::metadata_type
  std::vector<MetadataOperationCount> metadata_operations;  // only those that happened
  // Central backends (redis, etcd, http): requests to the store and their payload
  // bytes each way (registering a buffer costs the same whatever is registered).
  uint64_t metadata_requests = 0, metadata_bytes_sent = 0, metadata_bytes_received = 0;
  // The serving side: peers' requests this engine answered (TCP; same-host peers copy
  // without its threads), and those it refused by reason ("out_of_range",
  // "permission", "authentication"; the last counts refused connections).
  uint64_t served_requests = 0, served_bytes = 0;
  std::map<std::string, uint64_t> refusals_by_reason;
};

struct Notification {
  std::string from;  // sender's segment name
  std::string message;
};

}  // namespace te
