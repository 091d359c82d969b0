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
[[ $OUT == *.png ]] || die "the output must be a .png file (got '$OUT')"
need_tool gnuplot

DATA=$BENCH_TMP/sweep.jsonl
if (($# > 0)); then
  for file in "$@"; do [[ -r $file ]] || die "cannot read $file"; done
  cat "$@" | grep '^{' >"$DATA" || die "no JSON lines in $*"
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
  grep -F "\"transport\":\"$transport\"" "$DATA" |
    awk '{ size = tp = p99 = ""
           if (match($0, /"size":[0-9]+/)) size = substr($0, RSTART + 7, RLENGTH - 7)
           if (match($0, /"bytes_per_second":[-0-9.eE+]+/)) tp = substr($0, RSTART + 19, RLENGTH - 19) / 1e9
           if (match($0, /"latency_p99_us":[-0-9.eE+]+/)) p99 = substr($0, RSTART + 17, RLENGTH - 17)
           print size, tp, p99 }' | sort -n >"$BENCH_TMP/$transport.dat"
  PLOTTED+=("$transport")
done < <(sed -n 's/.*"transport":"\([a-z]*\)".*/\1/p' "$DATA" | sort -u)
((${#PLOTTED[@]} > 0)) || die "the JSON lines name no transport"

gnuplot -e "dir='$BENCH_TMP'; names='${PLOTTED[*]}'; out='$OUT'; heading='$TITLE'" - <<'EOF'
set terminal pngcairo size 1200,460 font ",10"
set output out
set multiplot layout 1,2 title heading
set logscale x 2
set format x "%.0b %BB"
set xlabel "block size"
set grid
set key top left
set ylabel "throughput (GB/s)"
plot for [i=1:words(names)] sprintf("%s/%s.dat", dir, word(names, i)) \
     using 1:2 with linespoints linewidth 2 title word(names, i)
set logscale y
set ylabel "p99 latency of a batch (us)"
plot for [i=1:words(names)] sprintf("%s/%s.dat", dir, word(names, i)) \
     using 1:3 with linespoints linewidth 2 title word(names, i)
unset multiplot
EOF
echo "wrote $OUT" >&2
