// Encodings the central metadata backends need: percent-encoding for URLs (http
// keys, credentials in redis URLs) and base64 for the etcd JSON gateway.
#pragma once

#include <string>
#include <string_view>

namespace te {

// Encodes every byte except the RFC 3986 unreserved ones (A-Z a-z 0-9 - . _ ~), like
// curl_easy_escape, so any key survives a query string.
std::string PercentEncode(std::string_view text);
// Decodes %XX escapes; false on a malformed escape. '+' stays '+'.
bool PercentDecode(std::string_view text, std::string* out);

std::string Base64Encode(std::string_view bytes);
// Standard alphabet with padding; false on anything else.
bool Base64Decode(std::string_view text, std::string* out);

}  // namespace te
