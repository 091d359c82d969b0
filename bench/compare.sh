#!/usr/bin/env bash
# One command, one table: the engine's throughput on this machine beside its baselines,
# all measured in the same run. TCP cases are compared with iperf3 over loopback with
# as many streams as the benchmark has threads; shared-memory and CMA cases with a
# plain memcpy of the same pattern in one process (bench/memcpy_baseline.cc).
#
#   bench/compare.sh [seconds per case, default 4] [transports, default "tcp shm cma"]
# Environment: BUILD_DIR (default build-release; configured and built if needed).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${1:-4}
TRANSPORTS=${2:-tcp shm cma}
BUILD_DIR=${BUILD_DIR:-$ROOT/build-release}
BENCH=$BUILD_DIR/tools/transfer_engine_bench
MEMCPY=$BUILD_DIR/bench/te_memcpy_baseline

if [[ ! -x $BENCH || ! -x $MEMCPY ]]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTE_BUILD_TESTS=OFF >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target transfer_engine_bench te_memcpy_baseline >/dev/null
fi

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

field() {  # prints the number after "throughput"
  awk '/throughput/ { for (i = 1; i <= NF; i++) if ($i == "throughput") print $(i + 1) }'
}

declare -A BASE
if [[ " $TRANSPORTS " == *" tcp "* ]]; then
  command -v iperf3 >/dev/null || { echo "iperf3 is missing (scripts/install_deps.sh)" >&2; exit 1; }
  port=$((20000 + RANDOM % 20000))
  iperf3 -s -p "$port" >/dev/null 2>&1 &
  PIDS+=($!)
  sleep 0.5
  for streams in 1 2; do
    BASE[iperf3-$streams]=$(iperf3 -c 127.0.0.1 -p "$port" -t "$SECS" -P "$streams" -f M 2>/dev/null |
      awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "MBytes/sec") v = $(i - 1) }
           END { printf "%.2f", v * 1048576 / 1e9 }')
  done
fi
if [[ " $TRANSPORTS " == *" shm "* || " $TRANSPORTS " == *" cma "* ]]; then
  for size in 65536 1048576; do
    for threads in 1 2; do
      for dir in read write; do
        BASE[memcpy-$size-$threads-$dir]=$("$MEMCPY" --size=$size --batch=16 --threads=$threads \
          --duration="$SECS" --direction=$dir | field)
      done
    done
  done
fi

# Starts a target pinned to one transport; sets SEGMENT. Runs in this shell (not in
# a command substitution) so the cleanup trap knows the target's pid.
start_target() {
  local log=$BUILD_DIR/compare_target_$1.log extra=()
  [[ $1 == shm ]] && extra=(--shmfs)
  "$BENCH" --transport="$1" "${extra[@]}" >"$log" 2>&1 &
  PIDS+=($!)
  SEGMENT=
  for _ in $(seq 100); do
    SEGMENT=$(grep -o -- '--remote_segment=[^ ]*' "$log" | head -1 | cut -d= -f2 || true)
    [[ -n $SEGMENT ]] && return
    sleep 0.1
  done
  echo "target for $1 did not start:" >&2
  cat "$log" >&2
  exit 1
}

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  host: $(uname -n)  cpus: $(nproc)  kernel: $(uname -r)  seconds/case: $SECS"
printf '%-32s %9s  %-28s %9s %7s\n' "case" "GB/s" "baseline" "GB/s" "ratio"
for transport in $TRANSPORTS; do
  start_target "$transport"
  for size in 65536 1048576; do
    for threads in 1 2; do
      for workload in read write; do
        got=$("$BENCH" --remote_segment="$SEGMENT" --transport="$transport" --workload=$workload \
          --size=$size --batch=16 --threads=$threads --duration="$SECS" | field)
        if [[ $transport == tcp ]]; then
          base_name="iperf3 -P $threads"
          base=${BASE[iperf3-$threads]}
        else
          base_name="memcpy $workload t=$threads"
          base=${BASE[memcpy-$size-$threads-$workload]}
        fi
        ratio=$(awk -v a="$got" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
        printf '%-32s %9s  %-28s %9s %7s\n' "$transport $workload $((size / 1024))KiBx16 t=$threads" \
          "$got" "$base_name" "$base" "${ratio}x"
      done
    done
  done
done
