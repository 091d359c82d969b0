// Request payloads through a socket, for both kinds of memory: host bytes go straight
// to send/recv, device bytes through pinned staging chunks (memory/device_staging.h).
// Shared by the initiator (tcp_connection) and the serving side (tcp_server). These block
// (bounded by the socket's I/O timeout): device payloads are staged synchronously.
#pragma once

#include <cstdint>

#include "common/socket.h"
#include "memory/device_memory.h"
#include "memory/device_staging.h"

namespace te {

// `device` holds data, or is kHostMemory.
inline Status SendPayload(int fd, int device, const char* data, uint64_t len) {
  if (device == kHostMemory) return SendAll(fd, data, len);
  return StageFromDevice(device, data, len,
                         [fd](const char* chunk, size_t n) { return SendAll(fd, chunk, n); });
}

inline Status RecvPayload(int fd, int device, char* data, uint64_t len) {
  if (device == kHostMemory) return RecvAll(fd, data, len);
  return StageToDevice(device, data, len,
                       [fd](char* chunk, size_t n) { return RecvAll(fd, chunk, n); });
}

}  // namespace te
