// Segment discovery. The engine publishes its descriptor and looks peers up by name;
// each backend (p2p, and central servers later) implements this interface.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "metadata/segment_descriptor.h"
#include "te/config.h"

namespace te {

class MetadataClient {
 public:
  virtual ~MetadataClient() = default;
  // Makes the local descriptor findable; called again whenever it changes.
  virtual Status Publish(const SegmentDescriptor& local) = 0;
  virtual Status Unpublish(const std::string& name) = 0;
  virtual Status Lookup(const std::string& name, SegmentDescriptor* out) = 0;
  // Lookup for a caller that holds the descriptor with *tag (empty: none): when it is
  // still current, *unchanged is set and *out left alone; otherwise *tag becomes the
  // new one's. Backends without a cheap check always fetch (and leave *tag empty).
  virtual Status LookupIfChanged(const std::string& name, std::string* tag, SegmentDescriptor* out,
                                 bool* unchanged) {
    *unchanged = false;
    tag->clear();
    return Lookup(name, out);
  }
  // False when peers never read what Publish is given (p2p asks the engine itself).
  virtual bool Publishes() const { return true; }
};

// The tag of a descriptor's JSON text for LookupIfChanged: its length and 64-bit
// FNV-1a hash in hex.
std::string DescriptorTag(const std::string& json);

// Builds the backend named by config.metadata_type. local_name is announced to peers.
Status CreateMetadataClient(const Config& config, const std::string& local_name,
                            std::unique_ptr<MetadataClient>* out);

}  // namespace te
