// Small string helpers shared by config, metadata and tools.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace te {

// Splits on `sep`, trimming spaces and dropping empty parts.
std::vector<std::string> SplitList(std::string_view text, char sep = ',');
// Parses a whole decimal unsigned number; false on junk or overflow.
bool ParseUint64(std::string_view text, uint64_t* value);
// "host:port" (port 0..65535; host may be "[v6]"). False when malformed.
bool ParseHostPort(std::string_view text, std::string* host, uint16_t* port);
// Bytes as lowercase hex, two digits each: binary data for JSON (a UCX worker
// address, a packed rkey).
std::string HexEncode(std::string_view bytes);
// The bytes back; false on an odd length or a non-hex digit.
bool HexDecode(std::string_view hex, std::string* bytes);

}  // namespace te
