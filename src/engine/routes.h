// How the engine reaches one open segment: the transports that can carry its traffic,
// in order of preference.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "memory/memory.h"
#include "metadata/segment_descriptor.h"
#include "transport/transport.h"

namespace te {

struct Route {
  size_t transport_index = 0;
  std::shared_ptr<TransportPeer> peer;
};

// Replaced whole when the segment is refreshed; in-flight tasks keep theirs alive.
struct SegmentRoutes {
  std::shared_ptr<const SegmentDescriptor> descriptor;
  std::vector<Route> routes;  // in order of preference

  // The first route after `after` (the first at all for after = -1) that can serve
  // requests between local memory on `local_device` and `buffer` (null: a range the
  // descriptor does not know); -1 when none. Device memory on either side goes only
  // to peers that carry it.
  int NextRoute(int after, int local_device, const SegmentBuffer* buffer) const {
    const bool device =
        local_device != kHostMemory || (buffer && IsDeviceLocation(buffer->location));
    for (size_t i = static_cast<size_t>(after + 1); i < routes.size(); ++i) {
      const TransportPeer& peer = *routes[i].peer;
      if ((!device || peer.CarriesDeviceMemory()) && peer.CanServe(buffer)) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }
};

}  // namespace te
