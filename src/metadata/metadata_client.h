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
};

// Builds the backend named by config.metadata_type. local_name is announced to peers.
Status CreateMetadataClient(const Config& config, const std::string& local_name,
                            std::unique_ptr<MetadataClient>* out);

}  // namespace te
