#!/usr/bin/env bash
# Builds transfer_engine_bench and runs it once on this host: a target in the
# background, an initiator against it, then the target is stopped.
#
#   scripts/run.sh [initiator flags...]      e.g. scripts/run.sh --workload=mix --threads=2
#
# It first installs what the build needs (scripts/install_deps.sh: Debian 12, as
# root or through sudo; nothing when every package is already there). The initiator
# runs for --duration=5 unless the arguments say otherwise. Of the arguments, the ones that size the target's
# buffers or pick its metadata and transport (--size, --batch, --threads,
# --metadata_type, --metadata_servers, --transport, --shmfs, in --flag=value form)
# are given to the target as well; TARGET_ARGS adds more target flags.
# Environment: BUILD_DIR (default build), JOBS (default 2), SKIP_DEPS=1, SKIP_BUILD=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
JOBS=${JOBS:-2}
BENCH=$BUILD_DIR/tools/transfer_engine_bench
TARGET_START_TIMEOUT=30  # seconds for the target to print its segment
TARGET_STOP_TIMEOUT=5    # seconds for the target to exit after SIGTERM

log() { printf '[run.sh] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

build() {
  local configure=(-S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release)
  local cache=$BUILD_DIR/CMakeCache.txt
  # A build directory made with another generator cannot switch to Ninja; keep it.
  if [[ ! -f $cache ]] || grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$cache"; then
    configure+=(-G Ninja)
  fi
  cmake "${configure[@]}"
  cmake --build "$BUILD_DIR" -j "$JOBS" --target transfer_engine_bench
}

target_pid=
workdir=
stop_target() {
  [[ -n $target_pid ]] || return 0
  local pid=$target_pid status=0 waited=0
  target_pid=
  if kill -TERM "$pid" 2>/dev/null; then
    while kill -0 "$pid" 2>/dev/null && ((waited < TARGET_STOP_TIMEOUT * 10)); do
      sleep 0.1
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "target did not stop within ${TARGET_STOP_TIMEOUT} s of SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || status=$?
  if ((status != 0)); then
    log "target exited with status $status"
    [[ -f $workdir/target.log ]] && sed 's/^/[target] /' "$workdir/target.log" >&2
  fi
  return 0
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_target
  [[ -n $workdir ]] && rm -rf "$workdir"
  exit "$status"
}

main() {
  if [[ ${SKIP_DEPS:-0} != 1 ]]; then
    bash "$ROOT/scripts/install_deps.sh"
  fi
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    build
  fi
  [[ -x $BENCH ]] || die "$BENCH was not built"

  local target_args=() duration=5 arg
  for arg in "$@"; do
    if [[ $arg =~ ^--?(size|batch|threads|metadata_type|metadata_servers|transport)= ||
          $arg =~ ^--?(no)?shmfs(=.*)?$ ]]; then
      target_args+=("$arg")
    fi
    if [[ $arg =~ ^--?duration=([0-9]+)$ ]]; then
      duration=${BASH_REMATCH[1]}
    fi
  done
  if [[ -n ${TARGET_ARGS:-} ]]; then
    local extra=()
    read -r -a extra <<<"$TARGET_ARGS"
    target_args+=("${extra[@]}")
  fi

  workdir=$(mktemp -d)
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  "$BENCH" "${target_args[@]}" >"$workdir/target.log" 2>&1 &
  target_pid=$!
  local segment='' deadline=$((SECONDS + TARGET_START_TIMEOUT))
  while :; do
    segment=$(sed -n "s/.*--remote_segment=\([^ ']*\).*/\1/p" "$workdir/target.log" | head -n 1)
    [[ -n $segment ]] && break
    if ! kill -0 "$target_pid" 2>/dev/null; then
      sed 's/^/[target] /' "$workdir/target.log" >&2
      target_pid=
      die "the target exited before printing its segment"
    fi
    ((SECONDS < deadline)) || die "the target printed no segment within ${TARGET_START_TIMEOUT} s"
    sleep 0.2
  done
  log "target serves segment $segment${target_args[*]:+ (flags: ${target_args[*]})}"

  local status=0
  log "initiator: --remote_segment=$segment --duration=5 $*"
  timeout --foreground --kill-after=10 "$((duration + 120))" \
    "$BENCH" --remote_segment="$segment" --duration=5 "$@" || status=$?
  if ((status == 124)); then
    log "the initiator did not finish within $((duration + 120)) s"
  fi
  stop_target
  return "$status"
}

main "$@"
