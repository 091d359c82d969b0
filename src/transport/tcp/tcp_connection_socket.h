// Private to TcpConnection: the socket it holds, shared by its send side
// (tcp_connection.cc) and its receive side (tcp_connection_receive.cc).
#pragma once

#include <atomic>
#include <cstdint>

#include "common/socket.h"
#include "metrics/engine_metrics.h"
#include "transport/tcp/tcp_connection.h"

namespace te {

struct TcpConnection::Socket {
  UniqueFd fd;
  GaugeHold counted;  // in the connection gauge while open
  uint64_t loop_id = 0;
  // Under the connection's mu_: what the loop watches the socket for (WatchFor), and
  // whether a send waits for room.
  uint32_t events = kFirstEvents;
  bool awaits_output = false;
  // The loop saw the peer hang up: its end of stream brings no later event, so a short
  // receive no longer means there is nothing more to read.
  std::atomic<bool> hung_up{false};
  // Only the loop's tick reads and sets it: SetMinRtoOnceRetransmitted has nothing left
  // to do for this socket.
  bool rto_settled = false;
};

}  // namespace te
