#include "metadata/segment_descriptor.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace te {
namespace {
using Json = nlohmann::json;

// nlohmann's get<uint16_t>() wraps out-of-range values and truncates fractions; a
// descriptor from the network must not be reinterpreted, so integers are checked.
template <typename T>
T GetUnsigned(const Json& j, const char* key) {
  const Json& v = j.at(key);
  if (!v.is_number_unsigned() || v.get<uint64_t>() > std::numeric_limits<T>::max()) {
    throw std::out_of_range(std::string("'") + key + "' is not an unsigned integer in range");
  }
  return static_cast<T>(v.get<uint64_t>());
}

bool ParsePermission(const std::string& s, Permission* p) {
  for (Permission cand : {Permission::kRemoteRead, Permission::kRemoteReadWrite}) {
    if (s == PermissionName(cand)) {
      *p = cand;
      return true;
    }
  }
  return false;
}
// A buffer's transport_data, and values under the keys of older descriptors
// (LegacyBufferKeys), which a transport_data entry of the same transport overrides.
Status ReadTransportData(const Json& b, std::map<std::string, std::string>* out) {
  for (const LegacyBufferKey& legacy : LegacyBufferKeys()) {
    if (b.contains(legacy.key)) (*out)[legacy.transport] = b.at(legacy.key).get<std::string>();
  }
  if (!b.contains("transport_data")) return Status::OK();
  if (!b.at("transport_data").is_object()) {
    return Status::ProtocolError("segment descriptor: transport_data is not an object");
  }
  for (const auto& [transport, value] : b.at("transport_data").items()) {
    (*out)[transport] = value.get<std::string>();
  }
  return Status::OK();
}

Json BufferObject(const SegmentBuffer& b) {
  Json entry = {{"base", b.base},
                {"length", b.length},
                {"location", b.location},
                {"permission", PermissionName(b.permission)},
                {"shm_name", b.shm_name}};
  if (b.pin_slot != SegmentBuffer::kNoPinSlot) {
    entry["pin_slot"] = b.pin_slot;
    entry["pin_generation"] = b.pin_generation;
  }
  if (!b.transport_data.empty()) entry["transport_data"] = b.transport_data;
  return entry;
}

// Throws (Json::exception, std::out_of_range) on missing fields and wrong types.
Status ParseBufferObject(const Json& b, SegmentBuffer* out) {
  if (!b.is_object()) return Status::ProtocolError("segment descriptor: a buffer is not an object");
  SegmentBuffer info;
  if (b.contains("pin_slot")) {
    info.pin_slot = GetUnsigned<uint32_t>(b, "pin_slot");
    info.pin_generation = GetUnsigned<uint64_t>(b, "pin_generation");
  }
  info.base = GetUnsigned<uint64_t>(b, "base");
  info.length = GetUnsigned<uint64_t>(b, "length");
  info.location = b.at("location").get<std::string>();
  info.shm_name = b.at("shm_name").get<std::string>();
  TE_RETURN_IF_ERROR(ReadTransportData(b, &info.transport_data));
  if (!ParsePermission(b.at("permission").get<std::string>(), &info.permission)) {
    return Status::ProtocolError("segment descriptor: bad buffer permission");
  }
  if (info.length == 0 || info.base + info.length < info.base) {
    return Status::ProtocolError("segment descriptor: bad buffer range");
  }
  *out = std::move(info);
  return Status::OK();
}

}  // namespace

const std::string& SegmentBuffer::TransportData(const std::string& transport) const {
  static const std::string kNone;
  auto it = transport_data.find(transport);
  return it == transport_data.end() ? kNone : it->second;
}

std::string SegmentBufferToJson(const SegmentBuffer& buffer) { return BufferObject(buffer).dump(); }

Status SegmentBufferFromJson(const std::string& text, SegmentBuffer* out) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  try {
    return ParseBufferObject(j, out);
  } catch (const std::exception& e) {
    return Status::ProtocolError(std::string("segment descriptor: buffer: ") + e.what());
  }
}

Status SortAndCheckBuffers(std::vector<SegmentBuffer>* buffers) {
  auto by_base = [](const SegmentBuffer& a, const SegmentBuffer& b) { return a.base < b.base; };
  if (!std::is_sorted(buffers->begin(), buffers->end(), by_base)) {
    std::sort(buffers->begin(), buffers->end(), by_base);
  }
  for (size_t i = 1; i < buffers->size(); ++i) {
    if ((*buffers)[i - 1].base + (*buffers)[i - 1].length > (*buffers)[i].base) {
      return Status::ProtocolError("segment descriptor: overlapping buffers");
    }
  }
  return Status::OK();
}

std::string SegmentDescriptor::ToJson() const {
  Json buffers_json = Json::array();
  for (const SegmentBuffer& b : buffers) buffers_json.push_back(BufferObject(b));
  Json j = {{"name", name},           {"machine_id", machine_id}, {"pid", pid},
            {"rpc_host", rpc_host},   {"rpc_port", rpc_port},     {"transports", transports},
            {"buffers", buffers_json}};
  if (!pin_table.empty()) j["pin_table"] = pin_table;
  return j.dump();
}

Status SegmentDescriptor::FromJson(const std::string& text, SegmentDescriptor* out) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::ProtocolError("segment descriptor is not a JSON object");
  SegmentDescriptor d;
  try {
    d.name = j.at("name").get<std::string>();
    d.machine_id = j.at("machine_id").get<std::string>();
    d.pid = GetUnsigned<uint32_t>(j, "pid");
    d.rpc_host = j.at("rpc_host").get<std::string>();
    d.rpc_port = GetUnsigned<uint16_t>(j, "rpc_port");
    d.transports = j.at("transports").get<std::map<std::string, std::string>>();
    if (j.contains("pin_table")) d.pin_table = j.at("pin_table").get<std::string>();
    if (!j.at("buffers").is_array())
      return Status::ProtocolError("segment descriptor: buffers is not an array");
    for (const Json& b : j.at("buffers")) {
      SegmentBuffer info;
      TE_RETURN_IF_ERROR(ParseBufferObject(b, &info));
      d.buffers.push_back(std::move(info));
    }
  } catch (const std::exception& e) {  // Json::exception or a range check above
    return Status::ProtocolError(std::string("segment descriptor: ") + e.what());
  }
  TE_RETURN_IF_ERROR(SortAndCheckBuffers(&d.buffers));
  *out = std::move(d);
  return Status::OK();
}

const SegmentBuffer* SegmentDescriptor::FindBuffer(uint64_t addr, uint64_t len) const {
  auto it = std::upper_bound(buffers.begin(), buffers.end(), addr,
                             [](uint64_t a, const SegmentBuffer& b) { return a < b.base; });
  if (it == buffers.begin()) return nullptr;
  --it;
  return RangeInside(addr, len, it->base, it->length) ? &*it : nullptr;
}

}  // namespace te
