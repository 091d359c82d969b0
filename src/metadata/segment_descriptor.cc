#include "metadata/segment_descriptor.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace te {
namespace {
using Json = nlohmann::json;

bool ParsePermission(const std::string& s, Permission* p) {
  for (Permission cand : {Permission::kRemoteRead, Permission::kRemoteReadWrite}) {
    if (s == PermissionName(cand)) {
      *p = cand;
      return true;
    }
  }
  return false;
}
}  // namespace

std::string SegmentDescriptor::ToJson() const {
  Json buffers_json = Json::array();
  for (const BufferInfo& b : buffers) {
    buffers_json.push_back({{"base", b.base},
                            {"length", b.length},
                            {"location", b.location},
                            {"permission", PermissionName(b.permission)},
                            {"shm_name", b.shm_name}});
  }
  Json j = {{"name", name},         {"machine_id", machine_id}, {"pid", pid},
            {"rpc_host", rpc_host}, {"rpc_port", rpc_port},     {"transports", transports},
            {"buffers", buffers_json}};
  return j.dump();
}

Status SegmentDescriptor::FromJson(const std::string& text, SegmentDescriptor* out) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::ProtocolError("segment descriptor is not a JSON object");
  SegmentDescriptor d;
  try {
    d.name = j.at("name").get<std::string>();
    d.machine_id = j.at("machine_id").get<std::string>();
    d.pid = j.at("pid").get<uint32_t>();
    d.rpc_host = j.at("rpc_host").get<std::string>();
    d.rpc_port = j.at("rpc_port").get<uint16_t>();
    d.transports = j.at("transports").get<std::map<std::string, std::string>>();
    for (const Json& b : j.at("buffers")) {
      BufferInfo info;
      info.base = b.at("base").get<uint64_t>();
      info.length = b.at("length").get<uint64_t>();
      info.location = b.at("location").get<std::string>();
      info.shm_name = b.at("shm_name").get<std::string>();
      if (!ParsePermission(b.at("permission").get<std::string>(), &info.permission)) {
        return Status::ProtocolError("segment descriptor: bad buffer permission");
      }
      if (info.length == 0 || info.base + info.length < info.base) {
        return Status::ProtocolError("segment descriptor: bad buffer range");
      }
      d.buffers.push_back(std::move(info));
    }
  } catch (const Json::exception& e) {
    return Status::ProtocolError(std::string("segment descriptor: ") + e.what());
  }
  std::sort(d.buffers.begin(), d.buffers.end(),
            [](const BufferInfo& a, const BufferInfo& b) { return a.base < b.base; });
  for (size_t i = 1; i < d.buffers.size(); ++i) {
    if (d.buffers[i - 1].base + d.buffers[i - 1].length > d.buffers[i].base) {
      return Status::ProtocolError("segment descriptor: overlapping buffers");
    }
  }
  *out = std::move(d);
  return Status::OK();
}

const BufferInfo* SegmentDescriptor::FindBuffer(uint64_t addr, uint64_t len) const {
  auto it = std::upper_bound(buffers.begin(), buffers.end(), addr,
                             [](uint64_t a, const BufferInfo& b) { return a < b.base; });
  if (it == buffers.begin()) return nullptr;
  --it;
  return RangeInside(addr, len, it->base, it->length) ? &*it : nullptr;
}

}  // namespace te
