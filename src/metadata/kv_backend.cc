#include "metadata/kv_backend.h"

namespace te {

size_t KvWrite::Bytes() const {
  size_t bytes = header.size();
  for (const auto& [id, value] : put) bytes += id.size() + value.size();
  for (const std::string& id : erase) bytes += id.size();
  return bytes;
}

std::vector<KvWrite> SplitWrite(const KvWrite& write, size_t max_ops, size_t max_bytes) {
  std::vector<KvWrite> parts(1);
  parts[0].replace = write.replace;
  size_t ops = 0, bytes = 0;
  auto room_for = [&](size_t size) {
    if (ops > 0 && (ops + 1 > max_ops || bytes + size > max_bytes)) {
      parts.emplace_back();
      ops = bytes = 0;
    }
    ++ops;
    bytes += size;
  };
  // Erases before puts: a peer that lists the entries between two parts then sees
  // buffers of the old set less some erased, or of the new set plus some put, never
  // an erased buffer beside one put in its place (overlapping ranges).
  for (const std::string& id : write.erase) {
    room_for(id.size());
    parts.back().erase.push_back(id);
  }
  for (const auto& entry : write.put) {
    room_for(entry.first.size() + entry.second.size());
    parts.back().put.push_back(entry);
  }
  if (!write.header.empty()) {
    room_for(write.header.size());
    parts.back().header = write.header;
  }
  return parts;
}

}  // namespace te
