// How central metadata stores a segment (docs/metadata.md, "Keys and values"): a small
// header entry (the descriptor without its buffers, plus a version and a log of the
// latest changes) and one entry per buffer, so that registering a buffer writes two
// small entries whatever the number of buffers, and a peer that holds an older
// version fetches only the buffers changed since.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "metadata/segment_descriptor.h"

namespace te {

// Changes the header remembers; a peer further behind reads every buffer again.
constexpr size_t kChangeLogLength = 64;

struct SegmentKeys {
  std::string header;   // "te/segments/<name>"
  std::string buffers;  // "te/buffers/<length of name>/<name>/": prefix of the buffer entries
  static SegmentKeys Of(const std::string& name);
  // The key of a buffer entry (etcd, http; redis keeps buffers in one hash).
  std::string BufferKey(const std::string& id) const { return buffers + id; }
};

// A buffer entry's id: its base as 16 lower-case hex digits.
std::string BufferId(uint64_t base);

// The header's own fields.
struct HeaderState {
  std::string instance;        // random per publishing client: tells successive holders apart
  uint64_t version = 0;        // every change of the buffers increments it
  uint64_t changes_since = 0;  // `changes` lists every change after this version
  std::vector<std::pair<uint64_t, uint64_t>> changes;  // (version, base), oldest first

  // What a peer holds: equal tags, equal descriptors.
  std::string Tag() const { return instance + ":" + std::to_string(version); }
  // Records that `bases` changed in a new version (which it returns); keeps at most
  // kChangeLogLength entries.
  uint64_t Record(const std::vector<uint64_t>& bases);
  // A new version that every buffer entry may have changed in (a full write): peers
  // that hold an older one read everything.
  void Reset();
  // The bases changed since the version of `tag` (sorted, unique); false when the
  // log does not reach back to it (another instance, or too old): read everything.
  bool ChangedSince(const std::string& tag, std::vector<uint64_t>* bases) const;
};

// `segment` without its buffers (they are not written) and `state`, as JSON.
std::string HeaderToJson(const SegmentDescriptor& segment, const HeaderState& state);
// Strict, as SegmentDescriptor::FromJson; segment->buffers comes back empty.
Status HeaderFromJson(const std::string& text, SegmentDescriptor* segment, HeaderState* state);

// A segment as one value: the header with its buffers' entries in "buffers", i.e. a
// whole descriptor (which SegmentDescriptor::FromJson reads). http servers without
// the batch endpoint store segments so (docs/metadata.md, "http").
struct WholeSegment {
  std::string header;                          // HeaderToJson's text ("buffers": [])
  std::map<std::string, std::string> buffers;  // BufferId -> entry
  std::string ToJson() const;
  // Strict about the shape of "buffers" (objects with distinct unsigned bases); the
  // header and entries themselves are checked when they are parsed.
  static Status FromJson(const std::string& text, WholeSegment* out);
};

// `held`'s buffers with those at `bases` replaced by what the store holds for them
// (values[i] for bases[i]; nullopt: gone). bases must be sorted.
Status ApplyBufferChanges(const std::vector<SegmentBuffer>& held,
                          const std::vector<uint64_t>& bases,
                          const std::vector<std::optional<std::string>>& values,
                          std::vector<SegmentBuffer>* out);

}  // namespace te
