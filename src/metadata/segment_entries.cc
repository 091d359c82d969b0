#include "metadata/segment_entries.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/strings.h"

namespace te {
namespace {
using Json = nlohmann::json;
}  // namespace

SegmentKeys SegmentKeys::Of(const std::string& name) {
  // The length makes the prefix of one name never a prefix of another's ("a/" vs "a/b/").
  return {"te/segments/" + name, "te/buffers/" + std::to_string(name.size()) + "/" + name + "/"};
}

std::string BufferId(uint64_t base) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(base));
  return text;
}

void HeaderState::Reset() {
  ++version;
  changes.clear();
  changes_since = version;
}

uint64_t HeaderState::Record(const std::vector<uint64_t>& bases) {
  if (bases.size() > kChangeLogLength) {
    Reset();
    return version;
  }
  ++version;
  for (uint64_t base : bases) changes.emplace_back(version, base);
  if (changes.size() > kChangeLogLength) {
    const size_t drop = changes.size() - kChangeLogLength;
    // Entries of the last dropped version may stay; the log covers what is after it.
    changes_since = changes[drop - 1].first;
    changes.erase(changes.begin(), changes.begin() + static_cast<ptrdiff_t>(drop));
  }
  return version;
}

bool HeaderState::ChangedSince(const std::string& tag, std::vector<uint64_t>* bases) const {
  const std::string prefix = instance + ":";
  if (instance.empty() || tag.compare(0, prefix.size(), prefix) != 0) return false;
  uint64_t held = 0;
  if (!ParseUint64(std::string_view(tag).substr(prefix.size()), &held)) return false;
  if (held < changes_since || held > version) return false;
  bases->clear();
  for (const auto& [v, base] : changes) {
    if (v > held) bases->push_back(base);
  }
  std::sort(bases->begin(), bases->end());
  bases->erase(std::unique(bases->begin(), bases->end()), bases->end());
  return true;
}

std::string HeaderToJson(const SegmentDescriptor& segment, const HeaderState& state) {
  SegmentDescriptor header = segment;  // the caller's has no buffers: a cheap copy
  header.buffers.clear();
  Json j = Json::parse(header.ToJson());
  j["instance"] = state.instance;
  j["version"] = state.version;
  j["changes_since"] = state.changes_since;
  Json changes = Json::array();
  for (const auto& [version, base] : state.changes) changes.push_back({version, base});
  j["changes"] = std::move(changes);
  return j.dump();
}

Status HeaderFromJson(const std::string& text, SegmentDescriptor* segment, HeaderState* state) {
  TE_RETURN_IF_ERROR(SegmentDescriptor::FromJson(text, segment));
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  HeaderState s;
  try {
    s.instance = j.at("instance").get<std::string>();
    s.version = j.at("version").get<uint64_t>();
    s.changes_since = j.at("changes_since").get<uint64_t>();
    for (const Json& c : j.at("changes")) {
      s.changes.emplace_back(c.at(0).get<uint64_t>(), c.at(1).get<uint64_t>());
    }
  } catch (const std::exception& e) {
    return Status::ProtocolError(std::string("segment header: ") + e.what());
  }
  if (!segment->buffers.empty()) {
    return Status::ProtocolError("segment header lists buffers (a descriptor of another format?)");
  }
  *state = std::move(s);
  return Status::OK();
}

std::string WholeSegment::ToJson() const {
  Json j = Json::parse(header);
  Json list = Json::array();
  for (const auto& [id, entry] : buffers) list.push_back(Json::parse(entry));
  j["buffers"] = std::move(list);
  return j.dump();
}

Status WholeSegment::FromJson(const std::string& text, WholeSegment* out) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("buffers") || !j["buffers"].is_array()) {
    return Status::ProtocolError("segment entry is not a descriptor with buffers");
  }
  WholeSegment whole;
  for (const Json& b : j["buffers"]) {
    if (!b.is_object() || !b.contains("base") || !b["base"].is_number_unsigned()) {
      return Status::ProtocolError("segment entry: a buffer without an unsigned base");
    }
    if (!whole.buffers.emplace(BufferId(b["base"].get<uint64_t>()), b.dump()).second) {
      return Status::ProtocolError("segment entry: two buffers at one base");
    }
  }
  // The header as HeaderToJson wrote it: nlohmann's dump is canonical (sorted keys).
  j["buffers"] = Json::array();
  whole.header = j.dump();
  *out = std::move(whole);
  return Status::OK();
}

Status ApplyBufferChanges(const std::vector<SegmentBuffer>& held,
                          const std::vector<uint64_t>& bases,
                          const std::vector<std::optional<std::string>>& values,
                          std::vector<SegmentBuffer>* out) {
  std::vector<SegmentBuffer> merged;
  merged.reserve(held.size() + bases.size());
  size_t next = 0;  // into bases
  auto add_changed = [&](size_t i) -> Status {
    if (!values[i]) return Status::OK();  // gone
    SegmentBuffer b;
    TE_RETURN_IF_ERROR(SegmentBufferFromJson(*values[i], &b));
    if (b.base != bases[i]) return Status::ProtocolError("buffer entry of another base");
    merged.push_back(std::move(b));
    return Status::OK();
  };
  for (const SegmentBuffer& b : held) {
    while (next < bases.size() && bases[next] < b.base) TE_RETURN_IF_ERROR(add_changed(next++));
    if (next < bases.size() && bases[next] == b.base) {
      TE_RETURN_IF_ERROR(add_changed(next++));  // replaced or gone
    } else {
      merged.push_back(b);
    }
  }
  while (next < bases.size()) TE_RETURN_IF_ERROR(add_changed(next++));
  TE_RETURN_IF_ERROR(SortAndCheckBuffers(&merged));  // sorted already: only the overlap check
  *out = std::move(merged);
  return Status::OK();
}

}  // namespace te
