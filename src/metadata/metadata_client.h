// Segment discovery. The engine publishes its descriptor and looks peers up by name;
// each backend (p2p, and central servers later) implements this interface.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "metadata/kv_backend.h"
#include "metadata/segment_descriptor.h"
#include "te/config.h"

namespace te {

class MetadataClient {
 public:
  virtual ~MetadataClient() = default;
  // Makes the local descriptor findable (a later call replaces it whole).
  virtual Status Publish(const SegmentDescriptor& local) = 0;
  // After Publish, what changed: buffers registered (as published: remote-visible,
  // with their pin slots and transport data) and the bases of buffers unregistered.
  // Costs what changed, not what is registered. Pure virtual so that a wrapper
  // cannot drop it.
  virtual Status PublishChanges(const std::vector<SegmentBuffer>& added,
                                const std::vector<uint64_t>& removed) = 0;
  virtual Status Unpublish(const std::string& name) = 0;
  virtual Status Lookup(const std::string& name, SegmentDescriptor* out) = 0;
  // Lookup for a caller that holds `held` with *tag (empty tag, null held: none):
  // when it is still current, *unchanged is set and *out left alone; otherwise *tag
  // becomes the new one's, which a backend may build from `held` and what changed
  // since. Backends without a cheap check always fetch (and leave *tag empty).
  virtual Status LookupIfChanged(const std::string& name, std::string* tag,
                                 const SegmentDescriptor* held, SegmentDescriptor* out,
                                 bool* unchanged) {
    (void)held;
    *unchanged = false;
    tag->clear();
    return Lookup(name, out);
  }
  // False when peers never read what Publish is given (p2p asks the engine itself).
  virtual bool Publishes() const { return true; }
  // What this client sent to and received from its store so far (zero for p2p).
  virtual KvTraffic Traffic() const { return {}; }
};

// The tag of a descriptor's JSON text for LookupIfChanged: its length and 64-bit
// FNV-1a hash in hex.
std::string DescriptorTag(const std::string& json);

// The store of a central backend (redis, etcd, http), as CreateMetadataClient builds
// it; tests read and write its entries directly.
Status CreateKvBackend(const Config& config, std::unique_ptr<KvBackend>* out);

// Builds the backend named by config.metadata_type. local_name is announced to peers.
Status CreateMetadataClient(const Config& config, const std::string& local_name,
                            std::unique_ptr<MetadataClient>* out);

}  // namespace te
