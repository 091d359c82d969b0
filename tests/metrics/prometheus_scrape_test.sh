#!/usr/bin/env bash
# A real Prometheus (Debian's prometheus) scrapes a bench target and initiator during
# a bench run; its query API must then show the byte counters risen. Exit 77 (skip)
# without prometheus.
BENCH=$1
command -v prometheus >/dev/null ||
  { echo "SKIP: prometheus not installed (Debian: prometheus)"; exit 77; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SCRAPE_S=1

start_target
initiator_port=$(free_port)
prom_port=$(free_port)
cat >"$WORK/prometheus.yml" <<YML
global:
  scrape_interval: ${SCRAPE_S}s
  scrape_timeout: ${SCRAPE_S}s
scrape_configs:
  - job_name: te
    static_configs:
      - targets: ["127.0.0.1:$TARGET_METRICS_PORT", "127.0.0.1:$initiator_port"]
YML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$WORK/prometheus.out" 2>&1 &
PIDS+=($!)
wait_until 60 http_get "http://127.0.0.1:$prom_port/-/ready" >/dev/null ||
  { echo "prometheus did not get ready:" >&2; cat "$WORK/prometheus.out" >&2; exit 1; }

# Long enough for several scrapes of the initiator; stopped once the figures are seen.
"$BENCH" --remote_segment="$SEGMENT" --duration=60 --warmup=0 --threads=1 --batch=2 \
  --workload=write --transport=tcp --metrics_port="$initiator_port" >"$WORK/initiator.out" 2>&1 &
PIDS+=($!)

# query EXPR: true when Prometheus has a sample of EXPR above zero.
query_positive() {
  http_get "http://127.0.0.1:$prom_port/api/v1/query?query=$1" 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
sys.exit(0 if r and float(r[0]["value"][1]) > 0 else 1)'
}
# Bounded: the first scrape comes within an interval of the engines being up; ten
# intervals and the bench start-up is plenty.
deadline=$((30 + 10 * SCRAPE_S))
wait_until "$deadline" query_positive 'sum(te_transfer_bytes_total%7Bopcode="write",transport="tcp"%7D)' ||
  { echo "prometheus never saw initiator bytes:" >&2; cat "$WORK/initiator.out" "$WORK/prometheus.out" >&2; exit 1; }
wait_until "$deadline" query_positive 'sum(te_served_bytes_total)' ||
  { echo "prometheus never saw served bytes" >&2; exit 1; }
# Both targets were up as far as Prometheus knows.
query_positive 'count(up%3D%3D1)%3E1' || { echo "not both scrape targets up" >&2; exit 1; }
echo "prometheus saw the byte counters rise"
