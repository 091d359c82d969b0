# Shared by the metrics tests: bench processes with their metrics endpoint, on
# loopback, cleaned up on exit. Sourced; BENCH is the transfer_engine_bench binary.
set -euo pipefail
WORK=$(mktemp -d /tmp/te-metrics-test.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# A port nothing listens on now (the kernel's pick, released again).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_get URL: the body on stdout; fails on an error status or no answer in 5 s.
http_get() {
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"
}

# Polls (10 per second) until `$@` succeeds or $1 seconds passed.
wait_until() {
  local seconds=$1
  shift
  local end=$((SECONDS + seconds))
  until "$@"; do
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
}

# start_target: a bench target with metrics on TARGET_METRICS_PORT; sets SEGMENT.
start_target() {
  TARGET_METRICS_PORT=$(free_port)
  "$BENCH" --metrics_port="$TARGET_METRICS_PORT" >"$WORK/target.out" 2>&1 &
  PIDS+=($!)
  wait_until 30 grep -q -- "--remote_segment=" "$WORK/target.out" ||
    { echo "target did not start:" >&2; cat "$WORK/target.out" >&2; exit 1; }
  SEGMENT=$(grep -o -- "--remote_segment=[^ ']*" "$WORK/target.out" | head -1 | cut -d= -f2)
  wait_until 10 http_get "http://127.0.0.1:$TARGET_METRICS_PORT/health" >/dev/null
}
