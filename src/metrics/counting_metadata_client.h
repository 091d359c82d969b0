// Counts a metadata backend's calls by operation and result, around any backend.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "metadata/metadata_client.h"
#include "metrics/engine_metrics.h"

namespace te {

class CountingMetadataClient : public MetadataClient {
 public:
  CountingMetadataClient(std::unique_ptr<MetadataClient> backend, EngineMetrics* metrics)
      : backend_(std::move(backend)), metrics_(metrics) {}
  Status Publish(const SegmentDescriptor& local) override {
    return Count(MetadataOperation::kPublish, backend_->Publish(local));
  }
  Status PublishChanges(const std::vector<SegmentBuffer>& added,
                        const std::vector<uint64_t>& removed) override {
    return Count(MetadataOperation::kPublish, backend_->PublishChanges(added, removed));
  }
  Status Unpublish(const std::string& name) override {
    return Count(MetadataOperation::kUnpublish, backend_->Unpublish(name));
  }
  Status Lookup(const std::string& name, SegmentDescriptor* out) override {
    return Count(MetadataOperation::kLookup, backend_->Lookup(name, out));
  }
  Status LookupIfChanged(const std::string& name, std::string* tag, const SegmentDescriptor* held,
                         SegmentDescriptor* out, bool* unchanged) override {
    return Count(MetadataOperation::kLookup,
                 backend_->LookupIfChanged(name, tag, held, out, unchanged));
  }
  // Forwarded, or p2p engines would rebuild and "publish" their descriptor on every
  // registration (O(n) each), and refreshes would always fetch the whole descriptor.
  bool Publishes() const override { return backend_->Publishes(); }
  KvTraffic Traffic() const override { return backend_->Traffic(); }

 private:
  Status Count(MetadataOperation op, Status s) {
    metrics_->CountMetadata(op, s.code());
    return s;
  }
  std::unique_ptr<MetadataClient> backend_;
  EngineMetrics* const metrics_;
};

}  // namespace te
