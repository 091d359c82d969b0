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

struct EngineStatistics {
  // Bytes submitted per transport name, retried slices included where they went.
  std::map<std::string, uint64_t> bytes_by_transport;
  // Slices that failed on one transport and were resubmitted on the next one that
  // reaches the segment (e.g. shared memory -> CMA -> TCP) before failing the task.
  uint64_t retried_slices = 0;
};

struct Notification {
  std::string from;  // sender's segment name
  std::string message;
};

}  // namespace te
