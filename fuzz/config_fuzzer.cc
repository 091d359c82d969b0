// Engine configs come from files and the environment that users edit by hand.
#include <cstddef>
#include <cstdint>
#include <string>

#include "te/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  te::Config config;
  std::string text(reinterpret_cast<const char*>(data), size);
  if (te::Config::FromJson(text, &config).ok()) config.Validate();
  return 0;
}
