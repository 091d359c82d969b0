// Minimal leveled logging to stderr. The engine is a library: it logs little, never
// aborts, and the level is per process (set from Config::log_level).
#pragma once

#include <sstream>
#include <string_view>

namespace te {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Returns false for an unknown name.
bool ParseLogLevel(std::string_view name, LogLevel* level);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();  // writes the line atomically
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// Binds looser than << and yields void, so TE_LOG works as one expression (safe
// inside an unbraced if/else) and builds no message when the level is off.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace te

#define TE_LOG(level)                         \
  !::te::LogEnabled(::te::LogLevel::k##level) \
      ? (void)0                               \
      : ::te::LogVoidify() &                  \
            ::te::LogMessage(::te::LogLevel::k##level, __FILE__, __LINE__).stream()
