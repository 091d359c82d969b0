#!/usr/bin/env bash
# Plots the fan bench: the engine under test's threads and the aggregate throughput
# against the number of peers N, one line per mode (fan-out, fan-out-batch, fan-in), as a PNG
# (gnuplot). Without JSON files it first runs te_fan_bench on this machine with
# --json and keeps its JSON lines beside the PNG (same name, .jsonl). With JSON files
# (te_fan_bench --json output) it only plots them.
#
#   bench/plot_fan.sh [-o docs/fan.png] [-t seconds per case] [-p 1,4,16,64,256] [JSONL...]
# Environment: BUILD_DIR (see bench/lib.sh).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUT=$BENCH_ROOT/docs/fan.png
SECS=5
PEERS=1,4,16,64,256
usage="usage: $0 [-o out.png] [-t seconds] [-p peers] [JSONL...]"
while getopts "o:t:p:h" opt; do
  case $opt in
    o) OUT=$OPTARG ;;
    t) SECS=$OPTARG ;;
    p) PEERS=$OPTARG ;;
    h) echo "$usage" && exit 0 ;;
    *) die "$usage" ;;
  esac
done
shift $((OPTIND - 1))
plot_output "$OUT"

DATA=$BENCH_TMP/fan.jsonl
if (($# > 0)); then
  jsonl_from_files "$DATA" "$@"
  TITLE="te_fan_bench from $*"
else
  [[ $SECS =~ ^[1-9][0-9]*$ ]] || die "seconds per case must be a whole number above 0 (got '$SECS')"
  build_bench
  echo "[plot] te_fan_bench --peers=$PEERS" >&2
  "$FAN_TOOL" --peers="$PEERS" --modes=out,out-batch,in --duration="$SECS" --json | grep '^{' >"$DATA" ||
    die "te_fan_bench failed"
  cp "$DATA" "${OUT%.png}.jsonl"
  TITLE="tcp, $SECS s per case - $(uname -n), $(nproc) cpus, $(date -u '+%Y-%m-%d')"
fi

# One data file per mode: peers, engine threads, GB/s, sorted by peers.
PLOTTED=()
for mode in fan-out fan-out-batch fan-in; do
  grep -F "\"mode\":\"$mode\"" "$DATA" | json_columns peers engine_threads throughput \
    >"$BENCH_TMP/$mode.dat" || true
  if [[ -s $BENCH_TMP/$mode.dat ]]; then PLOTTED+=("$mode"); fi
done
((${#PLOTTED[@]} > 0)) || die "the JSON lines hold no fan-out, fan-out-batch or fan-in case"

plot_panels "$OUT" "$TITLE" "$BENCH_TMP" "${PLOTTED[*]}" "peers N" "%g" \
  "threads of the engine process" 1 "aggregate throughput (GB/s)" 0
