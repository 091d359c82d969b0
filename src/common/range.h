#pragma once

#include <cstdint>

namespace te {

// True when [addr, addr+len) lies inside [base, base+length), without overflow.
inline bool RangeInside(uint64_t addr, uint64_t len, uint64_t base, uint64_t length) {
  return addr >= base && len <= length && addr - base <= length - len;
}

}  // namespace te
