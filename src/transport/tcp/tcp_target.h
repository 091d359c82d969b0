// The serving side of the TCP transport: one thread per data connection reads
// requests in order, checks each against the registered buffers before any byte
// moves, and answers. WRITE payloads are received straight into the destination and
// READ data is sent straight from the source.
#pragma once

#include <string>

#include "memory/buffer_registry.h"
#include "metrics/engine_metrics.h"

namespace te {

// Serves one accepted connection until the peer leaves, errs or the socket is shut down.
// With a non-empty secret, only a client that proves it gets served.
// metrics (optional) counts served requests, refusals and the open connection.
void ServeTcpDataConnection(int fd, BufferRegistry* registry, uint32_t io_timeout_ms,
                            const std::string& secret, EngineMetrics* metrics = nullptr);

}  // namespace te
