#include "metadata/p2p_metadata.h"

#include "common/strings.h"
#include "rpc/rpc_client.h"

namespace te {

Status P2pMetadataClient::Lookup(const std::string& name, SegmentDescriptor* out) {
  RpcTarget target;
  if (!ParseHostPort(name, &target.host, &target.port) || target.port == 0) {
    return Status::InvalidArgument("p2p segment name '" + name + "' is not host:port");
  }
  target.timeout_ms = timeout_ms_;
  std::string reply;
  Status s = RpcCall(target, self_, wire::Opcode::kGetSegment, "", &reply);
  if (!s.ok()) return Status(s.code(), "segment '" + name + "': " + s.message());
  return SegmentDescriptor::FromJson(reply, out);
}

}  // namespace te
