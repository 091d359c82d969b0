#!/usr/bin/env bash
# Plots throughput and p99 batch latency against block size, one line per transport,
# as a PNG (gnuplot). Without JSON files it first runs the sweep on this machine: per
# transport a target and one initiator with --size=SIZES --json, and keeps the JSON
# lines beside the PNG (same name, .jsonl). With JSON files (transfer_engine_bench
# --json output, one line per case) it only plots them.
#
#   bench/plot_sweep.sh [-o docs/sweep.png] [-t seconds per case] [-T "tcp shm cma"]
#                       [-s 4K:4M] [-w read|write] [-b 16] [JSONL...]
# Environment: BUILD_DIR (see bench/lib.sh).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUT=$BENCH_ROOT/docs/sweep.png
SECS=2
TRANSPORTS="tcp shm cma"
SIZES=4K:4M
WORKLOAD="read"
BATCH=16
usage="usage: $0 [-o out.png] [-t seconds] [-T transports] [-s sizes] [-w read|write] [-b batch] [JSONL...]"
while getopts "o:t:T:s:w:b:h" opt; do
  case $opt in
    o) OUT=$OPTARG ;;
    t) SECS=$OPTARG ;;
    T) TRANSPORTS=$OPTARG ;;
    s) SIZES=$OPTARG ;;
    w) WORKLOAD=$OPTARG ;;
    b) BATCH=$OPTARG ;;
    h) echo "$usage" && exit 0 ;;
    *) die "$usage" ;;
  esac
done
shift $((OPTIND - 1))
plot_output "$OUT"

DATA=$BENCH_TMP/sweep.jsonl
if (($# > 0)); then
  jsonl_from_files "$DATA" "$@"
  TITLE="transfer_engine_bench sweeps from $*"
else
  [[ $SECS =~ ^[1-9][0-9]*$ ]] || die "seconds per case must be a whole number above 0 (got '$SECS')"
  build_bench
  for transport in $TRANSPORTS; do
    echo "[plot] $transport: --size=$SIZES" >&2
    start_target "$transport"
    run_engine "$transport" --workload="$WORKLOAD" --size="$SIZES" --batch="$BATCH" --threads=1 \
      --duration="$SECS" >>"$DATA"
    stop_bg "$TARGET_PID"
  done
  cp "$DATA" "${OUT%.png}.jsonl"
  TITLE="$WORKLOAD, batch $BATCH, 1 thread, $SECS s per case - $(uname -n), $(nproc) cpus, $(date -u '+%Y-%m-%d')"
fi

# One data file per transport: size, GB/s, p99 in microseconds, sorted by size.
PLOTTED=()
while read -r transport; do
  grep -F "\"transport\":\"$transport\"" "$DATA" | json_columns size bytes_per_second latency_p99_us |
    awk '{ $2 = $2 / 1e9; print }' >"$BENCH_TMP/$transport.dat"
  PLOTTED+=("$transport")
done < <(sed -n 's/.*"transport":"\([a-z]*\)".*/\1/p' "$DATA" | sort -u)
((${#PLOTTED[@]} > 0)) || die "the JSON lines name no transport"

plot_panels "$OUT" "$TITLE" "$BENCH_TMP" "${PLOTTED[*]}" "block size" "%.0b %BB" \
  "throughput (GB/s)" 0 "p99 latency of a batch (us)" 1
