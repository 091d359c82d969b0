#!/usr/bin/env bash
# promtool check metrics on what an engine serves at /metrics, after traffic (so
# histograms and labelled counters have samples). Exit 77 (skip) without promtool.
BENCH=$1
command -v promtool >/dev/null || { echo "SKIP: promtool not installed (Debian: prometheus)"; exit 77; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_target
initiator_port=$(free_port)
# Long enough to be seen running on a busy machine; stopped once the figures are in.
"$BENCH" --remote_segment="$SEGMENT" --duration=60 --warmup=0 --threads=1 --batch=2 \
  --workload=mix --metrics_port="$initiator_port" >"$WORK/initiator.out" 2>&1 &
initiator=$!
PIDS+=($initiator)
# The initiator's own endpoint, fetched while it runs: its transfer counters.
has_bytes() {
  http_get "http://127.0.0.1:$initiator_port/metrics" >"$WORK/initiator.prom" 2>/dev/null &&
    grep -Eq '^te_transfer_bytes_total\{opcode="read",transport="[a-z_]+"\} [1-9]' "$WORK/initiator.prom"
}
wait_until 30 has_bytes || { echo "no bytes counted:" >&2; cat "$WORK/initiator.out" "$WORK/initiator.prom" >&2; exit 1; }
kill "$initiator"
http_get "http://127.0.0.1:$TARGET_METRICS_PORT/metrics" >"$WORK/target.prom"
for f in initiator target; do
  echo "--- promtool check metrics ($f)"
  promtool check metrics <"$WORK/$f.prom"
done
grep -q '^te_slice_duration_seconds_bucket' "$WORK/initiator.prom"
echo "promtool check passed"
