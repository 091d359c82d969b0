// Blocking without the GIL. The engine's status calls never block, so waiting for a
// transfer means polling; these helpers poll with the GIL released and sleep between
// polls so that a waiting thread neither stalls other Python threads nor burns a core.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

#include "gil.h"

namespace te::python {

// Pauses between polls: a few yields first, so a transfer that ends within
// microseconds is seen at once, then sleeps doubling up to kMaxSleep. The cap
// bounds how late a long transfer's end is noticed (a 16 MiB batch takes
// milliseconds, so 100 us costs at most a few percent) and keeps a waiter at a few
// wakeups per millisecond.
class Backoff {
 public:
  void Pause() {
    if (yields_ < kYields) {
      ++yields_;
      std::this_thread::yield();
      return;
    }
    std::this_thread::sleep_for(sleep_);
    sleep_ = std::min(sleep_ * 2, kMaxSleep);
  }

 private:
  static constexpr int kYields = 16;
  static constexpr std::chrono::microseconds kMaxSleep{100};
  int yields_ = 0;
  std::chrono::microseconds sleep_{10};
};

enum class WaitResult { kReady, kTimeout, kInterrupted };

// How often a wait takes the GIL to run Python's signal handlers (Ctrl-C).
constexpr auto kSignalCheckPeriod = std::chrono::milliseconds(50);

// `timeout_s` (none: no limit; negative: none left) after `start`.
inline std::chrono::steady_clock::time_point DeadlineAfter(
    std::chrono::steady_clock::time_point start, std::optional<double> timeout_s) {
  using Clock = std::chrono::steady_clock;
  if (!timeout_s) return Clock::time_point::max();
  return start + std::chrono::duration_cast<Clock::duration>(
                     std::chrono::duration<double>(std::max(0.0, *timeout_s)));
}

// Call with the GIL held. Polls ready() without the GIL until it returns true or
// `timeout_s` (none: no limit) passes. Every 50 ms it takes the GIL to run Python's
// signal handlers, so Ctrl-C ends a long wait: kInterrupted leaves the handler's
// exception set for the caller to raise (pybind11::error_already_set).
template <typename Ready>
WaitResult WaitWithoutGil(Ready&& ready, std::optional<double> timeout_s) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = DeadlineAfter(start, timeout_s);
  auto next_signal_check = start + kSignalCheckPeriod;
  GilRelease release;
  Backoff backoff;
  for (;;) {
    if (ready()) return WaitResult::kReady;
    const auto now = Clock::now();
    if (now >= deadline) return WaitResult::kTimeout;
    if (now >= next_signal_check) {
      next_signal_check = now + kSignalCheckPeriod;
      GilAcquire acquire;
      if (PyErr_CheckSignals() != 0) return WaitResult::kInterrupted;
    }
    backoff.Pause();
  }
}

// Like WaitWithoutGil, for a wait that blocks by itself: wait_for(slice) waits up to
// `slice` and returns true once ready. Slices end at the signal-check period, so
// Ctrl-C still ends a long wait, and at the deadline.
template <typename WaitFor>
WaitResult WaitInSlicesWithoutGil(WaitFor&& wait_for, std::optional<double> timeout_s) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = DeadlineAfter(Clock::now(), timeout_s);
  GilRelease release;
  for (;;) {
    const auto now = Clock::now();
    const auto left = deadline - now;
    const auto slice =
        left < kSignalCheckPeriod
            ? std::chrono::ceil<std::chrono::milliseconds>(std::max(left, Clock::duration::zero()))
            : kSignalCheckPeriod;
    if (wait_for(slice)) return WaitResult::kReady;
    if (Clock::now() >= deadline) return WaitResult::kTimeout;
    GilAcquire acquire;
    if (PyErr_CheckSignals() != 0) return WaitResult::kInterrupted;
  }
}

}  // namespace te::python
