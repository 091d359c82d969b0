#!/usr/bin/env bash
# One command, one table: the engine on this machine beside its baselines, all
# measured in the same run.
#
#   tcp  engine READ/WRITE, 64 KiB and 1 MiB x16, 1 and 2 threads, beside iperf3 over
#        loopback with as many streams as threads, and (when ucx_perftest is
#        installed) beside UCX over TCP with one thread: ucp_put_bw for WRITE,
#        ucp_get for READ. One 4 KiB READ round trip (batch 1, one thread): p50 and
#        p99 beside a 4 KiB TCP ping-pong (sockperf, when installed), and again with
#        both ends placed on one CPU and on two, beside bench/tcp_pingpong.cc placed
#        alike. The target's
#        CPU while idle afterwards. iperf3 and sockperf run before and after the
#        engine; the better figure of the two counts.
#   shm, cma  the same throughput cases beside a plain memcpy of the same pattern in
#        one process (bench/memcpy_baseline.cc); CMA also beside process_vm_readv/
#        writev itself from a child process, one call per batch.
#
#   fan  one engine against N peers and N against one (bench/fan_bench.cc, over TCP)
#        for N in FAN_PEERS (default 1,4,16,64,256): per mode and N > 1 the aggregate
#        throughput and the engine's threads beside N = 1's, and at the largest N its
#        RSS per peer (over the idle engine) and CPU seconds per GB. Fan-out and fan-in
#        at the smallest and largest N also beside the same traffic over raw sockets
#        (bench/tcp_fan_baseline.cc), whose own largest-to-smallest ratio is what N
#        costs the kernel and the memory.
#   link the tcp throughput cases across a real 1500-MTU link (bench/netns_link.sh: two
#        network namespaces joined by a veth pair; root), beside iperf3 across the same
#        link, with no loss and with 0.1% and 1% random loss (LINK_LOSSES), with p99
#        batch latency.
#
#   ucx  the engine over --transport=ucx, READ/WRITE 64 KiB and 1 MiB x16, one thread,
#        beside ucx_perftest (ucp_get for READ, ucp_put_bw for WRITE) with the same
#        UCX_TLS, over UCX's tcp and its shared memory, and beside raw UCP moving the
#        engine's working set (bench/ucx_baseline.cc: 16 distinct blocks a batch, where
#        perftest reuses one cache-resident buffer) (needs a build with UCX).
#
#   bench/compare.sh [seconds per case, default 4] [transports, default "tcp shm cma fan"; or ucx]
# Environment: BUILD_DIR (see bench/lib.sh), FAN_PEERS (the fan rows' N list),
# LINK_LOSSES (the link rows' loss percentages, default "0 0.1 1").
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECS=${1:-4}
TRANSPORTS=${2:-tcp shm cma fan}
FAN_PEERS=${FAN_PEERS:-1,4,16,64,256}
[[ $SECS =~ ^[1-9][0-9]*$ ]] || die "seconds per case must be a whole number above 0 (got '$SECS')"
for transport in $TRANSPORTS; do
  [[ $transport =~ ^(tcp|shm|cma|ucx|fan|link)$ ]] ||
    die "unknown transport '$transport' (expected tcp, shm, cma, ucx, fan or link)"
done
[[ " $TRANSPORTS " == *" tcp "* ]] && need_tool iperf3
[[ " $TRANSPORTS " == *" ucx "* ]] && need_tool ucx_perftest
build_bench

SIZES=(65536 1048576)
THREADS=(1 2)
ROWS=()
NOTES=()

note() { echo "[compare] $*" >&2; }

# A number with $2 decimals (default 2), or nothing for nothing.
fixed() {
  if [[ -n $1 ]]; then printf "%.${2:-2}f" "$1"; fi
}

# row CASE FIGURE UNIT BASELINE BASE_FIGURE [lower]: one table line with the ratio
# figure / baseline; "lower" marks rows where less is better (latency).
row() {
  local ratio
  ratio=$(awk -v a="$2" -v b="$5" 'BEGIN { if (a != "" && b > 0) printf "%.2fx", a / b; else print "n/a" }')
  ROWS+=("$(printf '%-36s %9s %-4s  %-34s %9s %-4s %7s%s' "$1" "${2:-n/a}" "$3" "$4" "${5:-n/a}" "$3" \
    "$ratio" "${6:+  (lower is better)}")")
}

# GB/s of iperf3 with $1 parallel streams: over loopback, or with IPERF_HOST set, from
# the IPERF_CLIENT prefix (e.g. ip netns exec B) to a server under PIN_TARGET.
IPERF_HOST=127.0.0.1
IPERF_CLIENT=()
# The congestion control the engine's TCP connections use (Config::tcp_congestion:
# "auto" turns the kernel's bbr into cubic), which iperf3 then uses too.
engine_congestion() {
  local configured=${TE_TCP_CONGESTION:-auto} system
  system=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || true)
  case $configured in
    system) echo "$system" ;;
    auto) if [[ $system == bbr ]]; then echo cubic; else echo "$system"; fi ;;
    *) echo "$configured" ;;
  esac
}
CONGESTION=$(engine_congestion)

iperf3_gbps() {
  local port=$((20000 + RANDOM % 20000))
  start_bg "${PIN_TARGET[@]}" iperf3 -s -p "$port" >/dev/null 2>&1
  local server=$BG_PID
  sleep 0.5
  "${IPERF_CLIENT[@]}" iperf3 -c "$IPERF_HOST" -p "$port" -t "$SECS" -P "$1" -f M \
    ${CONGESTION:+-C "$CONGESTION"} 2>/dev/null |
    awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "MBytes/sec") v = $(i - 1) }
         END { if (v != "") printf "%.2f", v * 1048576 / 1e9 }'
  stop_bg "$server"
}

# UCX_TLS of the ucx rows' transport names: UCX's own tcp, and its shared memory.
declare -A UCX_TLS_OF=([tcp]=tcp [shm]="posix,sysv,cma")
# The `env` prefix that runs a raw UCX program over UCX transport $1 (tcp on loopback).
ucx_env_of() {
  UCX_ENV=(env "UCX_TLS=${UCX_TLS_OF[$1]},self")
  [[ $1 == tcp ]] && UCX_ENV+=(UCX_NET_DEVICES=lo)
  return 0
}

# GB/s of ucx_perftest test $2 (ucp_put_bw or ucp_get) with messages of $3 bytes,
# server and client on loopback, over UCX transport $1 (tcp or shm, see UCX_TLS_OF);
# nothing when the run fails.
ucx_gbps() {
  local port=$((20000 + RANDOM % 20000)) expected=1000000000 count
  local UCX_ENV
  ucx_env_of "$1"
  [[ $1 == shm ]] && expected=4000000000
  [[ $2 == ucp_get && $1 == tcp ]] && expected=100000000 # bytes/s, to size the run near $SECS
  count=$((SECS * expected / $3 + 100))
  start_bg "${UCX_ENV[@]}" ucx_perftest -p "$port" >"$BENCH_TMP/ucx_server.log" 2>&1
  local server=$BG_PID
  sleep 0.5
  timeout $((SECS * 10 + 30)) "${UCX_ENV[@]}" \
    ucx_perftest 127.0.0.1 -p "$port" -t "$2" -s "$3" -n "$count" -w $((count / 10 + 1)) -f 2>&1 |
    awk 'NF == 8 && $1 ~ /^[0-9]+$/ { bw = $6 } END { if (bw != "") printf "%.3f", bw * 1048576 / 1e9 }' ||
    true
  stop_bg "$server"
}

# GB/s of raw UCP doing the engine's batch ($2: read or write, 16 blocks of $3 bytes)
# over UCX transport $1, one thread (bench/ucx_baseline.cc); nothing when it fails.
ucx_raw_gbps() {
  local UCX_ENV
  ucx_env_of "$1"
  timeout $((SECS * 3 + 30)) "${UCX_ENV[@]}" "$UCX_BASELINE" --direction="$2" --size="$3" \
    --batch=16 --duration="$SECS" 2>/dev/null | sed -n 's/.*throughput \([0-9.]*\) GB\/s.*/\1/p' || true
}

# "P50 P99" in microseconds of a 4 KiB TCP ping-pong round trip (sockperf).
pingpong_us() {
  local port=$((20000 + RANDOM % 20000)) out
  start_bg sockperf server --tcp -i 127.0.0.1 -p "$port" >/dev/null 2>&1
  local server=$BG_PID
  sleep 0.5
  out=$(sockperf ping-pong --tcp -i 127.0.0.1 -p "$port" -m 4096 -t "$SECS" --full-rtt 2>&1 || true)
  stop_bg "$server"
  echo "$(sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p' <<<"$out")" \
    "$(sed -n 's/.*percentile 99.000 = *\([0-9.]*\).*/\1/p' <<<"$out")"
}

# CPU of process $1 over $2 seconds, in percent of one core.
idle_cpu_percent() {
  local ticks before after
  ticks=$(getconf CLK_TCK)
  before=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
  sleep "$2"
  after=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
  awk -v d=$((after - before)) -v hz="$ticks" -v s="$2" 'BEGIN { printf "%.1f", 100 * d / hz / s }'
}

# The engine's throughput cases against a target pinned to $1, as JSON lines.
engine_sweeps() {
  local workload sizes threads
  sizes=$(IFS=,; echo "${SIZES[*]}")
  threads=$(IFS=,; echo "${THREADS[*]}")
  for workload in read write; do
    note "engine $1 $workload"
    run_engine "$1" --workload=$workload --size="$sizes" --threads="$threads" --batch=16 \
      --duration="$SECS"
  done
}

# Sets BASE_NAME and BASE_FIGURE: the baseline of transport $1's case $2 (workload)
# $3 (size) $4 (threads).
declare -A BASE
baseline_for() {
  if [[ $1 == tcp ]]; then
    BASE_NAME="iperf3 -P $4"
    BASE_FIGURE=${BASE[iperf3-$4]}
  else
    BASE_NAME="$VIA $2 t=$4"
    [[ $VIA == cma ]] && BASE_NAME="process_vm_${2}v t=$4"
    BASE_FIGURE=${BASE[$VIA-$3-$4-$2]}
  fi
}

# Rows for transport $1's throughput cases, from its JSON lines in $2.
throughput_rows() {
  local size threads workload figure
  for size in "${SIZES[@]}"; do
    for threads in "${THREADS[@]}"; do
      for workload in read write; do
        figure=$(json_case $workload "$size" "$threads" 16 <<<"$2" | json_value throughput)
        baseline_for "$1" $workload "$size" "$threads"
        row "$1 $workload $((size / 1024))KiB x16 t=$threads" "$(fixed "$figure")" GB/s \
          "$BASE_NAME" "$BASE_FIGURE"
      done
    done
  done
}

# iperf3 and the ping-pong, measured before, between and after the engine's two runs
# of its TCP cases: on a shared machine both drift within minutes, so each side keeps
# the best of its runs (the baselines of three, the engine of two: if anything its
# ratios are understated).
tcp_baselines() {
  local streams gbps pingpong
  for streams in "${THREADS[@]}"; do
    note "iperf3 -P $streams"
    gbps=$(iperf3_gbps "$streams")
    BASE[iperf3-$streams]=$(awk -v a="$gbps" -v b="${BASE[iperf3-$streams]:-}" \
      'BEGIN { print (b == "" || a + 0 > b + 0) ? a : b }')
  done
  command -v sockperf >/dev/null || return 0
  note "sockperf ping-pong 4 KiB"
  read -r -a pingpong <<<"$(pingpong_us)"
  if [[ -n ${pingpong[0]:-} ]] && { [[ -z ${PINGPONG[0]:-} ]] ||
    awk -v a="${pingpong[0]}" -v b="${PINGPONG[0]}" 'BEGIN { exit !(a + 0 < b + 0) }'; }; then
    PINGPONG=("${pingpong[@]}")
  fi
}

# The 4 KiB round trip with both ends placed: target and initiator (server and client
# of te_tcp_pingpong, a blocking ping-pong between two processes) on one CPU, then on
# two. On a virtual machine the placement decides the figure (waking a thread on an
# idle virtual CPU can cost several round trips), so unplaced runs compare luck.
placed_latency_rows() {
  local placements=("0 0") placement tcpu icpu lat pp p
  (($(nproc) > 1)) && placements+=("1 0")
  for placement in "${placements[@]}"; do
    read -r tcpu icpu <<<"$placement"
    note "engine tcp 4 KiB read round trips, target on cpu $tcpu, initiator on cpu $icpu"
    PIN_TARGET=(taskset -c "$tcpu")
    PIN_INITIATOR=(taskset -c "$icpu")
    start_target tcp
    lat=$(run_engine tcp --workload=read --size=4096 --batch=1 --threads=1 --duration="$SECS")
    stop_bg "$TARGET_PID"
    PIN_TARGET=()
    PIN_INITIATOR=()
    note "te_tcp_pingpong 4 KiB, server on cpu $tcpu, client on cpu $icpu"
    pp=$("$PINGPONG_TOOL" --size=4096 --duration="$SECS" --server_cpu="$tcpu" --client_cpu="$icpu")
    for p in 50 99; do
      row "tcp read 4KiB x1 p$p cpus $tcpu+$icpu" \
        "$(fixed "$(json_value latency_p${p}_us <<<"$lat")" 1)" us \
        "te_tcp_pingpong 4KiB p$p cpus $tcpu+$icpu" \
        "$(sed -n "s/.* p$p \([0-9.]*\) us.*/\1/p" <<<"$pp")" lower
    done
  done
}

# The ucx rows: for UCX's tcp and shared memory, 64 KiB and 1 MiB x16 with one
# thread, the engine over --transport=ucx (WRITE, READ) beside ucp_put_bw and ucp_get
# with the same UCX_TLS (and, over tcp, UCX_NET_DEVICES), in the same run.
ucx_rows() {
  local tls size workload test json sizes engine
  sizes=$(IFS=,; echo "${SIZES[*]}")
  for tls in tcp shm; do
    export TE_UCX_TLS="${UCX_TLS_OF[$tls]},self"
    unset TE_UCX_NET_DEVICES
    [[ $tls == tcp ]] && export TE_UCX_NET_DEVICES=lo
    start_target ucx
    json=
    for workload in read write; do
      note "engine ucx $workload UCX_TLS=$TE_UCX_TLS"
      json+=$(run_engine ucx --workload=$workload --size="$sizes" --threads=1 --batch=16 \
        --duration="$SECS")$'\n'
    done
    stop_bg "$TARGET_PID"
    unset TE_UCX_TLS TE_UCX_NET_DEVICES
    for size in "${SIZES[@]}"; do
      for workload in read write; do
        test=ucp_get
        [[ $workload == write ]] && test=ucp_put_bw
        note "ucx_perftest $test $size UCX_TLS=${UCX_TLS_OF[$tls]}"
        engine=$(fixed "$(json_case $workload "$size" 1 16 <<<"$json" | json_value throughput)")
        row "ucx($tls) $workload $((size / 1024))KiB x16 t=1" "$engine" GB/s \
          "ucx_perftest $test $((size / 1024))KiB $tls" "$(ucx_gbps $tls $test "$size")"
        note "te_ucx_baseline $workload $size UCX_TLS=${UCX_TLS_OF[$tls]}"
        row "ucx($tls) $workload $((size / 1024))KiB x16 t=1" "$engine" GB/s \
          "raw ucp $workload $((size / 1024))KiB x16 $tls" "$(ucx_raw_gbps $tls $workload "$size")"
      done
    done
  done
}

# The fan rows: te_fan_bench's JSON lines, each N > 1 beside N = 1 (the first N). Each
# mode in a process of its own: memory the allocator kept from an earlier mode's cases
# would hide the next one's RSS per peer. A failing fan run is a note, not the end of
# the table.
fan_rows() {
  local json="" mode first last n line base
  for mode in out out-batch in; do
    note "te_fan_bench --peers=$FAN_PEERS --modes=$mode"
    if ! json+=$("$FAN_TOOL" --peers="$FAN_PEERS" --modes=$mode --duration="$SECS" --json \
      2>"$BENCH_TMP/fan.err" | grep '^{')$'\n'; then
      NOTES+=("te_fan_bench --modes=$mode failed: $(tail -1 "$BENCH_TMP/fan.err")")
      return 0
    fi
  done
  first=${FAN_PEERS%%,*}
  last=${FAN_PEERS##*,}
  for mode in fan-out fan-out-batch fan-in; do
    base=$(grep -F "\"mode\":\"$mode\"" <<<"$json" | grep -F "\"peers\":$first," | head -1 || true)
    for n in ${FAN_PEERS//,/ }; do
      ((n == first)) && continue
      line=$(grep -F "\"mode\":\"$mode\"" <<<"$json" | grep -F "\"peers\":$n," | head -1 || true)
      row "$mode N=$n throughput" "$(fixed "$(json_value throughput <<<"$line")")" GB/s \
        "$mode N=$first" "$(fixed "$(json_value throughput <<<"$base")")"
      row "$mode N=$n engine threads" "$(json_value engine_threads <<<"$line")" "" \
        "$mode N=$first" "$(json_value engine_threads <<<"$base")" lower
      [[ $n == "$last" ]] || continue
      row "$mode N=$n RSS per peer" "$(fixed "$(json_value rss_per_peer_kib <<<"$line")" 1)" KiB \
        "(over the idle engine)" ""
      row "$mode N=$n CPU per GB" "$(fixed "$(json_value cpu_seconds_per_gb <<<"$line")" 3)" s \
        "$mode N=$first" "$(fixed "$(json_value cpu_seconds_per_gb <<<"$base")" 3)" lower
    done
  done
  fan_raw_rows "$json" "$first" "$last"
}

# fan_raw_rows JSON FIRST LAST: fan-out and fan-in at N = FIRST and LAST beside raw
# sockets moving the same traffic (te_tcp_fan_baseline), and the raw sockets' LAST
# beside their FIRST.
fan_raw_rows() {
  local raw mode n engine line base
  note "te_tcp_fan_baseline --peers=$2,$3 --modes=out,in"
  if ! raw=$("$FAN_RAW_TOOL" --peers="$2,$3" --modes=out,in --duration="$SECS" --json \
    2>"$BENCH_TMP/fan.err" | grep '^{'); then
    NOTES+=("te_tcp_fan_baseline failed: $(tail -1 "$BENCH_TMP/fan.err")")
    return 0
  fi
  for mode in fan-out fan-in; do
    for n in "$2" "$3"; do
      engine=$(grep -F "\"mode\":\"$mode\"" <<<"$1" | grep -F "\"peers\":$n," | head -1 || true)
      line=$(grep -F "\"mode\":\"$mode-raw\"" <<<"$raw" | grep -F "\"peers\":$n," | head -1 || true)
      row "$mode N=$n throughput" "$(fixed "$(json_value throughput <<<"$engine")")" GB/s \
        "raw sockets N=$n" "$(fixed "$(json_value throughput <<<"$line")")"
      row "$mode N=$n CPU per GB" "$(fixed "$(json_value cpu_seconds_per_gb <<<"$engine")" 3)" s \
        "raw sockets N=$n" "$(fixed "$(json_value cpu_seconds_per_gb <<<"$line")" 3)" lower
    done
    base=$(grep -F "\"mode\":\"$mode-raw\"" <<<"$raw" | grep -F "\"peers\":$2," | head -1 || true)
    line=$(grep -F "\"mode\":\"$mode-raw\"" <<<"$raw" | grep -F "\"peers\":$3," | head -1 || true)
    row "raw $mode N=$3 throughput" "$(fixed "$(json_value throughput <<<"$line")")" GB/s \
      "raw $mode N=$2" "$(fixed "$(json_value throughput <<<"$base")")"
  done
}

# The link rows: for each loss in LINK_LOSSES, the pair made again with that loss, the
# target in A and the initiator (and iperf3's client) in B; each engine case beside
# iperf3 with as many streams, and its p99 batch latency.
link_rows() {
  local link=$BENCH_ROOT/bench/netns_link.sh loss json streams size threads workload line
  [[ $EUID -eq 0 ]] || { NOTES+=("link rows need root (network namespaces)"); return 0; }
  trap '"$BENCH_ROOT/bench/netns_link.sh" down >/dev/null 2>&1 || true; bench_cleanup' EXIT
  for loss in ${LINK_LOSSES:-0 0.1 1}; do
    note "link with ${loss}% loss"
    if [[ $loss == 0 ]]; then "$link" up >/dev/null; else "$link" up "$loss" >/dev/null; fi
    PIN_TARGET=(ip netns exec te-bench-a)
    PIN_INITIATOR=(ip netns exec te-bench-b)
    IPERF_CLIENT=(ip netns exec te-bench-b)
    IPERF_HOST=10.231.0.1
    declare -A LINK_IPERF=()
    for streams in "${THREADS[@]}"; do
      LINK_IPERF[$streams]=$(iperf3_gbps "$streams")
    done
    start_target tcp
    json=$(engine_sweeps tcp)
    stop_bg "$TARGET_PID"
    for size in "${SIZES[@]}"; do
      for threads in "${THREADS[@]}"; do
        for workload in read write; do
          line=$(json_case $workload "$size" "$threads" 16 <<<"$json")
          row "link ${loss}% $workload $((size / 1024))KiB x16 t=$threads" \
            "$(fixed "$(json_value throughput <<<"$line")")" GB/s \
            "iperf3 -P $threads ${loss}% loss" "${LINK_IPERF[$threads]}"
          row "link ${loss}% $workload $((size / 1024))KiB x16 t=$threads p99" \
            "$(fixed "$(json_value latency_p99_us <<<"$line")" 0)" us "(batch latency)" ""
        done
      done
    done
  done
  PIN_TARGET=()
  PIN_INITIATOR=()
  IPERF_CLIENT=()
  IPERF_HOST=127.0.0.1
  "$link" down
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
for transport in $TRANSPORTS; do
  if [[ $transport == fan ]]; then
    fan_rows
  elif [[ $transport == link ]]; then
    link_rows
  elif [[ $transport == ucx ]]; then
    ucx_rows
  elif [[ $transport == tcp ]]; then
    PINGPONG=()
    tcp_baselines
    declare -A UCX=()
    if command -v ucx_perftest >/dev/null; then
      for size in "${SIZES[@]}"; do
        for test in ucp_put_bw ucp_get; do
          note "ucx_perftest $test $size"
          UCX[$test-$size]=$(ucx_gbps tcp $test "$size")
        done
      done
    else
      NOTES+=("ucx_perftest is not installed: no UCX rows (apt-get install ucx-utils)")
    fi
    command -v sockperf >/dev/null ||
      NOTES+=("sockperf is not installed: no ping-pong baseline (apt-get install sockperf)")

    start_target tcp
    TCP_JSON=$(engine_sweeps tcp)
    note "engine tcp 4 KiB read round trips"
    LATENCY=$(run_engine tcp --workload=read --size=4096 --batch=1 --threads=1 --duration="$SECS")
    note "idle target CPU"
    IDLE=$(idle_cpu_percent "$TARGET_PID" 2)
    stop_bg "$TARGET_PID"
    tcp_baselines
    start_target tcp
    TCP_JSON+=$'\n'$(engine_sweeps tcp)
    stop_bg "$TARGET_PID"
    tcp_baselines

    throughput_rows tcp "$TCP_JSON"
    for size in "${SIZES[@]}"; do
      [[ -n ${UCX[ucp_put_bw-$size]+set} ]] || continue
      for workload in read write; do
        test=ucp_get
        [[ $workload == write ]] && test=ucp_put_bw
        figure=$(json_case $workload "$size" 1 16 <<<"$TCP_JSON" | json_value throughput)
        row "tcp $workload $((size / 1024))KiB x16 t=1" "$(fixed "$figure")" GB/s \
          "ucx_perftest $test $((size / 1024))KiB" "${UCX[$test-$size]}"
      done
    done
    p50=$(json_value latency_p50_us <<<"$LATENCY")
    p99=$(json_value latency_p99_us <<<"$LATENCY")
    row "tcp read 4KiB x1 t=1 p50" "$(fixed "$p50" 1)" us "sockperf ping-pong 4KiB p50" \
      "${PINGPONG[0]:-}" lower
    row "tcp read 4KiB x1 t=1 p99" "$(fixed "$p99" 1)" us "sockperf ping-pong 4KiB p99" \
      "${PINGPONG[1]:-}" lower
    placed_latency_rows
    ROWS+=("$(printf '%-36s %9s %-4s  (target process, 2 s idle after the runs)' "tcp target idle CPU" "$IDLE" "%")")
  else
    # CMA also beside the system call itself, one call per batch: what the kernel's
    # page pinning leaves of memcpy's figure, no engine could beat.
    vias=(memcpy)
    [[ $transport == cma ]] && vias+=(cma)
    for VIA in "${vias[@]}"; do
      for size in "${SIZES[@]}"; do
        for threads in "${THREADS[@]}"; do
          for workload in read write; do
            [[ -n ${BASE[$VIA-$size-$threads-$workload]+set} ]] && continue
            note "$VIA $workload $size t=$threads"
            BASE[$VIA-$size-$threads-$workload]=$("$MEMCPY" --via=$VIA --size="$size" \
              --batch=16 --threads="$threads" --duration="$SECS" --direction=$workload |
              awk '{ for (i = 1; i <= NF; i++) if ($i == "throughput") print $(i + 1) }')
          done
        done
      done
    done
    start_target "$transport"
    json=$(engine_sweeps "$transport")
    stop_bg "$TARGET_PID"
    for VIA in "${vias[@]}"; do throughput_rows "$transport" "$json"; done
  fi
done

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  host: $(uname -n)  cpus: $(nproc)  kernel: $(uname -r)"
echo "load average before: $LOAD  seconds/case: $SECS (+1 s warm-up)  tcp congestion control: ${CONGESTION:-default} (engine and iperf3)"
printf '%-36s %14s  %-34s %14s %7s\n' "case" "figure" "baseline" "figure" "ratio"
printf '%s\n' "${ROWS[@]}"
for n in "${NOTES[@]}"; do echo "note: $n"; done
