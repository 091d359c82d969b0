# shellcheck shell=bash
# Helpers the bench/ scripts share; `source` it, do not run it. It builds what is
# missing, starts benchmark targets, runs initiators, and on exit (normal, error or
# Ctrl-C) stops every process it started and removes its scratch folder.
#
# Environment: BUILD_DIR (default build-release; configured as Release and built
# when the benchmark binaries are missing).

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$BENCH_ROOT/build-release}
BENCH=$BUILD_DIR/tools/transfer_engine_bench
MEMCPY=$BUILD_DIR/bench/te_memcpy_baseline
PINGPONG_TOOL=$BUILD_DIR/bench/te_tcp_pingpong
FAN_TOOL=$BUILD_DIR/bench/te_fan_bench
FAN_RAW_TOOL=$BUILD_DIR/bench/te_tcp_fan_baseline
UCX_BASELINE=$BUILD_DIR/bench/te_ucx_baseline
# A command prefix for the engine's processes (e.g. taskset -c 0); empty: none.
PIN_TARGET=()
PIN_INITIATOR=()
BENCH_TMP=$(mktemp -d)
BENCH_PIDS=()

bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${BENCH_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

die() {
  echo "error: $*" >&2
  exit 1
}

need_tool() {
  command -v "$1" >/dev/null || die "$1 is missing (bash scripts/install_deps.sh installs it)"
}

# Always builds: cmake does nothing when the binaries are current, and a stale one
# would measure other code than the tree's.
build_bench() {
  echo "building $BUILD_DIR ..." >&2
  cmake -S "$BENCH_ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTE_BUILD_TESTS=OFF \
    >/dev/null || die "cmake configure failed"
  cmake --build "$BUILD_DIR" -j2 --target transfer_engine_bench te_memcpy_baseline te_tcp_pingpong \
    te_fan_bench te_tcp_fan_baseline >/dev/null || die "build failed"
  # Built only where UCX is (bench/CMakeLists.txt): the ucx rows need it.
  if ninja -C "$BUILD_DIR" -t targets all 2>/dev/null | grep -q '^te_ucx_baseline:'; then
    cmake --build "$BUILD_DIR" -j2 --target te_ucx_baseline >/dev/null || die "build failed"
  fi
}

# Runs "$@" in the background, remembered for the cleanup; sets BG_PID.
start_bg() {
  "$@" &
  BG_PID=$!
  BENCH_PIDS+=("$BG_PID")
}

stop_bg() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Starts a target pinned to transport $1 (shm: buffers in shared memory); sets
# SEGMENT and TARGET_PID. Runs in this shell, not in $(...), so that the cleanup
# knows the pid.
start_target() {
  local log=$BENCH_TMP/target_$1.log extra=()
  [[ $1 == shm ]] && extra=(--shmfs)
  start_bg "${PIN_TARGET[@]}" "$BENCH" --transport="$1" "${extra[@]}" >"$log" 2>&1
  TARGET_PID=$BG_PID
  SEGMENT=
  for _ in $(seq 100); do
    SEGMENT=$(grep -o -- '--remote_segment=[^ ]*' "$log" | head -1 | cut -d= -f2 || true)
    [[ -n $SEGMENT ]] && return
    kill -0 "$TARGET_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$log" >&2
  die "the $1 target did not start"
}

# run_engine TRANSPORT [FLAG...]: an initiator against the current target with
# --json; prints its JSON lines (one per case).
run_engine() {
  local transport=$1 err=$BENCH_TMP/initiator.err
  shift
  local out
  out=$("${PIN_INITIATOR[@]}" "$BENCH" --remote_segment="$SEGMENT" --transport="$transport" --json "$@" 2>"$err") || {
    cat "$err" >&2
    die "transfer_engine_bench --transport=$transport $* failed"
  }
  grep '^{' <<<"$out" || true
}

# json_case WORKLOAD SIZE THREADS BATCH < JSON lines: the line of that case; of
# several runs of it, the one with the highest throughput.
json_case() {
  grep -F "\"workload\":\"$1\"" | grep -F "\"size\":$2," | grep -F "\"threads\":$3," |
    grep -F "\"batch\":$4," |
    awk '{ t = $0; sub(/.*"throughput":/, "", t); sub(/[,}].*/, "", t); print t "\t" $0 }' |
    sort -t$'\t' -k1,1gr | head -1 | cut -f2- || true
}

# json_value FIELD < one JSON line: the number stored under FIELD.
json_value() {
  sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p"
}

# plot_output OUT: dies unless OUT names a .png and gnuplot is installed.
plot_output() {
  [[ $1 == *.png ]] || die "the output must be a .png file (got '$1')"
  need_tool gnuplot
}

# jsonl_from_files DATA FILE...: the JSON lines of the files, into DATA.
jsonl_from_files() {
  local data=$1 file
  shift
  for file in "$@"; do [[ -r $file ]] || die "cannot read $file"; done
  cat "$@" | grep '^{' >"$data" || die "no JSON lines in $*"
}

# json_columns FIELD... < JSON lines: per line, the numbers under the FIELDs, one
# column each (empty where a line lacks one), sorted by the first.
json_columns() {
  awk -v fields="$*" 'BEGIN { n = split(fields, f, " ") }
    { line = ""
      for (i = 1; i <= n; i++) {
        v = ""
        if (match($0, "\"" f[i] "\":[-0-9.eE+]+")) v = substr($0, RSTART + length(f[i]) + 3, RLENGTH - length(f[i]) - 3)
        line = line (i > 1 ? " " : "") v
      }
      print line }' | sort -n
}

# plot_panels OUT HEADING DIR NAMES XLABEL XFORMAT LEFT_LABEL LEFT_LOG RIGHT_LABEL RIGHT_LOG:
# a PNG of two panels over a log2 x axis, one line per name in NAMES (the data file
# DIR/NAME.dat: x, left y, right y); *_LOG 1 makes that y axis logarithmic.
plot_panels() {
  gnuplot -e "out='$1'; heading='$2'; dir='$3'; names='$4'; xlabel_text='$5'; xformat='$6'" \
    -e "left_label='$7'; left_log=$8; right_label='$9'; right_log=${10}" - <<'EOF_GNUPLOT'
set terminal pngcairo noenhanced size 1200,460 font ",10"
set output out
set multiplot layout 1,2 title heading
set logscale x 2
set format x xformat
set xlabel xlabel_text
set grid
set key top left
if (left_log) { set logscale y } else { set yrange [0:*] }
set ylabel left_label
plot for [i=1:words(names)] sprintf("%s/%s.dat", dir, word(names, i)) \
     using 1:2 with linespoints linewidth 2 title word(names, i)
unset logscale y
set autoscale y
if (right_log) { set logscale y } else { set yrange [0:*] }
set ylabel right_label
plot for [i=1:words(names)] sprintf("%s/%s.dat", dir, word(names, i)) \
     using 1:3 with linespoints linewidth 2 title word(names, i)
unset multiplot
EOF_GNUPLOT
  echo "wrote $1" >&2
}
