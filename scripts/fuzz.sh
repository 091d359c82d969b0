#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang with ASan+UBSan) and runs each for a
# while from the corpus in fuzz/corpus/<target>. New interesting inputs go to a
# scratch directory, not the tree; crashes are saved under $BUILD/artifacts and fail
# the run. To grow the committed corpus: FUZZ_MERGE=1 scripts/fuzz.sh 600
#
#   scripts/fuzz.sh [seconds per target, default 60]
# Environment: BUILD (default build-fuzz), JOBS (default 2), FUZZ_CMAKE_ARGS (more
# configure options; CI adds the lock-annotation check, -DTE_THREAD_SAFETY=ON).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${1:-60}
BUILD=${BUILD:-$ROOT/build-fuzz}
JOBS=${JOBS:-2}
TARGETS=(wire descriptor config session)

CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTE_SANITIZE=fuzzer -DTE_BUILD_TESTS=OFF ${FUZZ_CMAKE_ARGS:-} >/dev/null
# The whole library, not only what the fuzzers link: the annotation check covers it all.
cmake --build "$BUILD" -j "$JOBS" --target transfer_engine_static "${TARGETS[@]/%/_fuzzer}"

mkdir -p "$BUILD/artifacts"
printf '%-12s %12s %10s %8s  %s\n' target executions exec/s corpus findings
for target in "${TARGETS[@]}"; do
  scratch=$BUILD/corpus-$target
  mkdir -p "$scratch"
  log=$BUILD/fuzz-$target.log
  status=0
  # -max_len keeps wire inputs inside one socket buffer (see wire_fuzzer.cc).
  "$BUILD/fuzz/${target}_fuzzer" "$scratch" "$ROOT/fuzz/corpus/$target" \
    -max_total_time="$SECS" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$target-" >"$log" 2>&1 || status=$?
  execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ { print $2 }' "$log")
  units=$(find "$scratch" "$ROOT/fuzz/corpus/$target" -type f | wc -l)
  findings=none
  if ((status != 0)); then
    findings="CRASH (exit $status): $(ls "$BUILD/artifacts" | grep "^$target-" | tr '\n' ' ')"
  elif [[ -z ${execs:-} || ${execs:-0} -eq 0 ]]; then
    # A target that ran nothing tested nothing (it failed to start, or its setup
    # consumed the whole time): that is a failure, not a clean run.
    findings="NO EXECUTIONS"
    status=1
  fi
  printf '%-12s %12s %10s %8s  %s\n' "$target" "${execs:-?}" "${rate:-?}" "$units" "$findings"
  if ((status != 0)); then
    echo "--- $log:" >&2
    cat "$log" >&2
    exit 1
  fi
  if [[ ${FUZZ_MERGE:-0} == 1 ]]; then
    "$BUILD/fuzz/${target}_fuzzer" -merge=1 "$ROOT/fuzz/corpus/$target" "$scratch" >/dev/null 2>&1
  fi
done
