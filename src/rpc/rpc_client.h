// One-shot control-plane calls: connect, HELLO, one request, close. Control calls are
// rare (opening segments, notifications), so no connection is kept.
#pragma once

#include <string>

#include "rpc/wire.h"

namespace te {

struct RpcTarget {
  std::string host;
  uint16_t port = 0;
  uint32_t timeout_ms = 3000;  // bounds connect and each wait for the reply
};

Status RpcCall(const RpcTarget& target, const std::string& local_name, wire::Opcode opcode,
               const std::string& request, std::string* response);

}  // namespace te
