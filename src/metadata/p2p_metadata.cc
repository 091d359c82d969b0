#include "metadata/p2p_metadata.h"

#include "common/strings.h"
#include "rpc/rpc_client.h"

namespace te {

Status P2pMetadataClient::Lookup(const std::string& name, SegmentDescriptor* out) {
  std::string tag;
  bool unchanged;
  return LookupIfChanged(name, &tag, nullptr, out, &unchanged);
}

Status P2pMetadataClient::LookupIfChanged(const std::string& name, std::string* tag,
                                          const SegmentDescriptor* /*held*/, SegmentDescriptor* out,
                                          bool* unchanged) {
  *unchanged = false;
  RpcTarget target;
  if (!ParseHostPort(name, &target.host, &target.port) || target.port == 0) {
    return Status::InvalidArgument("p2p segment name '" + name + "' is not host:port");
  }
  target.timeout_ms = timeout_ms_;
  std::string reply;
  Status s = RpcCall(target, self_, wire::Opcode::kGetSegment, *tag, &reply);
  if (!s.ok()) return Status(s.code(), "segment '" + name + "': " + s.message());
  // Only an engine that knows tags answers with nothing (a descriptor is never empty).
  if (reply.empty() && !tag->empty()) {
    *unchanged = true;
    return Status::OK();
  }
  TE_RETURN_IF_ERROR(SegmentDescriptor::FromJson(reply, out));
  *tag = DescriptorTag(reply);
  return Status::OK();
}

}  // namespace te
