#!/usr/bin/env bash
# Soak test (not in CI): 8 threads of mixed READ/WRITE with integrity checks against a
# target restarted every minute (SIGKILL and SIGTERM in turn), for 10 minutes. Prints
# a progress table and a summary; exits non-zero on any integrity error, stuck task,
# failed restart, or operation that failed with no restart overlapping it.
#
#   scripts/soak.sh [minutes, default 10] [extra te_soak flags, e.g. --same_host]
# Environment: BUILD_DIR (default build-soak; configured and built if needed).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MINUTES=${1:-10}
shift || true
BUILD_DIR=${BUILD_DIR:-$ROOT/build-soak}

cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j2 --target te_soak te_test_peer >/dev/null
echo "soak: $MINUTES min, 8 threads, target restarted every 60 s unless --restart_every_s says otherwise ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cpus)"
exec "$BUILD_DIR/tests/te_soak" --minutes="$MINUTES" --threads=8 --restart_every_s=60 "$@"
