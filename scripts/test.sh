#!/usr/bin/env bash
# The README's test command: installs dependencies, then builds and runs the whole
# test suite: a normal build (with -DUSE_CUDA=ON where the CUDA toolkit is installed;
# its GPU tests skip without a device), ASan+UBSan and TSan (both without CUDA, so the
# plain build's code runs the suite too); then a short run of each libFuzzer target
# (scripts/fuzz.sh), whose clang build of the library also checks the lock
# annotations (-Wthread-safety -Werror): one clang compile serves both.
#
#   scripts/test.sh            all four
#   TE_TEST_BUILDS="release" scripts/test.sh    a subset (release, asan, tsan, fuzz)
# Environment: JOBS (default 2), CTEST_ARGS (extra ctest arguments), FUZZ_SECONDS
# (per fuzz target, default 30 here; scripts/fuzz.sh alone runs longer).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-2}
BUILDS=${TE_TEST_BUILDS:-release asan tsan fuzz}

bash "$ROOT/scripts/install_deps.sh"

run_suite() {
  local name=$1
  shift
  local dir=$ROOT/build-test-$name
  echo "=== [$name] configure and build"
  cmake -S "$ROOT" -B "$dir" -G Ninja -DTE_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
  echo "=== [$name] test"
  (cd "$dir" && ctest --output-on-failure -j "$JOBS" ${CTEST_ARGS:-})
}

RAN=()
SKIPPED=()
for build in $BUILDS; do
  case $build in
    # CI must build the metrics endpoint: ON fails the build where it would be left out.
    release)
      # One build compile-checks the GPU code and runs the CPU suite against it: a
      # separate CUDA build ran the same suite again and cost CI a quarter of its time.
      cuda=()
      if [ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc >/dev/null; then
        cuda=(-DUSE_CUDA=ON)
      else
        echo "=== [release] without CUDA: no toolkit (/usr/local/cuda/bin/nvcc or nvcc on PATH)"
        SKIPPED+=("cuda (no CUDA toolkit)")
      fi
      run_suite release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTE_METRICS=ON "${cuda[@]}" ;;
    asan)
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      LSAN_OPTIONS=suppressions=$ROOT/tests/lsan_suppressions.txt \
        run_suite asan -DCMAKE_BUILD_TYPE=Debug -DTE_SANITIZE=address ;;
    tsan)
      # Without UCX: UCX's libucm replaces madvise/mmap for the whole process, and
      # glibc's thread start calls its madvise before TSan knows the thread (a
      # SIGSEGV in every threaded test, UCX 1.13). TSan could not see into the
      # uninstrumented UCX anyway; the ucx transport runs in the other builds.
      TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        run_suite tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTE_SANITIZE=thread -DTE_WITH_UCX=OFF ;;
    fuzz)
      echo "=== [fuzz] clang build (-Wthread-safety -Werror), then each target for ${FUZZ_SECONDS:-30} s"
      BUILD=$ROOT/build-test-fuzz JOBS=$JOBS FUZZ_CMAKE_ARGS="-DTE_THREAD_SAFETY=ON -DTE_WERROR=ON" \
        bash "$ROOT/scripts/fuzz.sh" "${FUZZ_SECONDS:-30}" ;;
    *) echo "unknown build '$build' (release, asan, tsan, fuzz)" >&2; exit 2 ;;
  esac
  RAN+=("$build")
done
# Says what "passed" covers: a build that was skipped did not pass.
echo "=== test builds passed: ${RAN[*]:-none}; skipped: ${SKIPPED[*]:-none}"
