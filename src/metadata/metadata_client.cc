#include "metadata/metadata_client.h"

#include "metadata/p2p_metadata.h"

namespace te {

Status CreateMetadataClient(const Config& config, const std::string& local_name,
                            std::unique_ptr<MetadataClient>* out) {
  if (config.metadata_type == "p2p") {
    *out = std::make_unique<P2pMetadataClient>(local_name, config.connect_timeout_ms);
    return Status::OK();
  }
  return Status::NotSupported("metadata_type '" + config.metadata_type +
                              "' is not built yet; use p2p");
}

}  // namespace te
