#include "bench_sweep.h"

#include <charconv>
#include <string_view>

namespace te::bench {
namespace {

Status Bad(const std::string& flag, const std::string& what) {
  return Status::InvalidArgument("--" + flag + ": " + what);
}

std::string Quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

// A number, with a binary suffix where allowed.
Status ParseValue(const std::string& flag, std::string_view text, bool byte_suffixes,
                  uint64_t* value) {
  std::string_view digits = text;
  uint64_t multiplier = 1;
  if (byte_suffixes && !digits.empty()) {
    switch (digits.back()) {
      case 'K':
      case 'k':
        multiplier = 1ULL << 10;
        break;
      case 'M':
      case 'm':
        multiplier = 1ULL << 20;
        break;
      case 'G':
      case 'g':
        multiplier = 1ULL << 30;
        break;
    }
    if (multiplier != 1) digits.remove_suffix(1);
  }
  if (!digits.empty() && digits.front() == '-') {
    return Status::InvalidArgument("--" + flag + " must be at least 1 (got " + std::string(text) +
                                   ")");
  }
  uint64_t number = 0;
  const char* end = digits.data() + digits.size();
  auto [stop, error] = std::from_chars(digits.data(), end, number);
  if (digits.empty() || error != std::errc() || stop != end) {
    return Bad(flag, Quoted(text) + " is not a number" +
                         (byte_suffixes ? " (digits with an optional K, M or G)" : ""));
  }
  if (__builtin_mul_overflow(number, multiplier, value)) {
    return Bad(flag, Quoted(text) + " does not fit in 64 bits");
  }
  if (*value < 1) {
    return Status::InvalidArgument("--" + flag + " must be at least 1 (got " + std::string(text) +
                                   ")");
  }
  return Status::OK();
}

// A:B, A:B:+S or A:B:*F appended to values.
Status ParseRange(const std::string& flag, std::string_view item, bool byte_suffixes,
                  std::vector<uint64_t>* values) {
  const size_t colon = item.find(':');
  const size_t second = item.find(':', colon + 1);
  uint64_t from, to, step = 2;
  bool add = false;
  TE_RETURN_IF_ERROR(ParseValue(flag, item.substr(0, colon), byte_suffixes, &from));
  TE_RETURN_IF_ERROR(
      ParseValue(flag, item.substr(colon + 1, second - colon - 1), byte_suffixes, &to));
  if (second != std::string_view::npos) {
    std::string_view how = item.substr(second + 1);
    if (how.empty() || (how.front() != '+' && how.front() != '*')) {
      return Bad(flag, "range " + Quoted(item) + " needs a step +N or a factor *N after ':'");
    }
    add = how.front() == '+';
    TE_RETURN_IF_ERROR(ParseValue(flag, how.substr(1), add && byte_suffixes, &step));
    if (!add && step < 2)
      return Bad(flag, "range " + Quoted(item) + " needs a factor of 2 or more");
  }
  if (from > to) return Bad(flag, "range " + Quoted(item) + " goes down");
  for (uint64_t v = from; v <= to;) {
    if (values->size() >= kMaxSweepValues) {
      return Bad(flag, "more than " + std::to_string(kMaxSweepValues) + " values");
    }
    values->push_back(v);
    const bool overflow =
        add ? __builtin_add_overflow(v, step, &v) : __builtin_mul_overflow(v, step, &v);
    if (overflow) break;
  }
  return Status::OK();
}

}  // namespace

Status ParseSweep(const std::string& flag, const std::string& text, bool byte_suffixes,
                  std::vector<uint64_t>* values) {
  values->clear();
  if (text.empty()) return Bad(flag, "no value given");
  std::string_view rest = text;
  for (;;) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    if (item.find(':') != std::string_view::npos) {
      TE_RETURN_IF_ERROR(ParseRange(flag, item, byte_suffixes, values));
    } else {
      uint64_t value;
      TE_RETURN_IF_ERROR(ParseValue(flag, item, byte_suffixes, &value));
      if (values->size() >= kMaxSweepValues) {
        return Bad(flag, "more than " + std::to_string(kMaxSweepValues) + " values");
      }
      values->push_back(value);
    }
    if (comma == std::string_view::npos) return Status::OK();
    rest.remove_prefix(comma + 1);
  }
}

std::vector<BenchCase> ExpandCases(const std::vector<uint64_t>& threads,
                                   const std::vector<uint64_t>& batches,
                                   const std::vector<uint64_t>& sizes) {
  std::vector<BenchCase> cases;
  for (uint64_t t : threads) {
    for (uint64_t b : batches) {
      for (uint64_t s : sizes) cases.push_back({t, b, s});
    }
  }
  return cases;
}

std::string FormatSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  size_t unit = 0;
  while (bytes != 0 && bytes % 1024 == 0 && unit + 1 < std::size(kUnits)) {
    bytes /= 1024;
    ++unit;
  }
  return std::to_string(bytes) + kUnits[unit];
}

}  // namespace te::bench
