// p2p discovery: no server. A segment's name is its engine's RPC "host:port"; a lookup
// asks that engine for its descriptor.
#pragma once

#include "metadata/metadata_client.h"
#include "rpc/handshake.h"

namespace te {

class P2pMetadataClient : public MetadataClient {
 public:
  P2pMetadataClient(wire::Credentials self, uint32_t timeout_ms)
      : self_(std::move(self)), timeout_ms_(timeout_ms) {}
  // Peers ask the engine directly, so there is nothing to publish.
  Status Publish(const SegmentDescriptor&) override { return Status::OK(); }
  Status PublishChanges(const std::vector<SegmentBuffer>&, const std::vector<uint64_t>&) override {
    return Status::OK();  // peers ask the engine itself
  }
  Status Unpublish(const std::string&) override { return Status::OK(); }
  Status Lookup(const std::string& name, SegmentDescriptor* out) override;
  // The request names the tag; an engine that still has it answers with nothing.
  Status LookupIfChanged(const std::string& name, std::string* tag, const SegmentDescriptor* held,
                         SegmentDescriptor* out, bool* unchanged) override;
  bool Publishes() const override { return false; }

 private:
  wire::Credentials self_;
  uint32_t timeout_ms_;
};

}  // namespace te
