#!/usr/bin/env bash
# Two "hosts" on this machine for benchmarks across a real link: network namespaces
# A and B joined by a veth pair (MTU 1500 by default), the topology of
# tests/netns_transfer_test.cc. Needs root and iproute2 (iptables for a loss).
#
#   bench/netns_link.sh up [LOSS_PERCENT]   make them (again); LOSS_PERCENT (e.g. 0.1
#                                           or 1) of the packets each way are dropped
#                                           at random as they arrive (iptables INPUT
#                                           in A and in B)
#   bench/netns_link.sh down                remove them
#   bench/netns_link.sh status              print the addresses and the loss rules
#
# Environment: NETNS_A, NETNS_B (default te-bench-a, te-bench-b), ADDR_A, ADDR_B
# (default 10.231.0.1, 10.231.0.2), MTU (default 1500). Everything lives inside the
# two namespaces; `down` removes them and with them their interfaces and rules.
set -euo pipefail

NETNS_A=${NETNS_A:-te-bench-a}
NETNS_B=${NETNS_B:-te-bench-b}
ADDR_A=${ADDR_A:-10.231.0.1}
ADDR_B=${ADDR_B:-10.231.0.2}
MTU=${MTU:-1500}
VETH_A=veth-a
VETH_B=veth-b

die() {
  echo "netns_link: $*" >&2
  exit 1
}

exists() { [[ -e /run/netns/$1 ]]; }

down() {
  local ns
  for ns in "$NETNS_A" "$NETNS_B"; do
    if exists "$ns"; then ip netns delete "$ns"; fi
  done
}

# probability PERCENT: PERCENT / 100, or an error when it is no percentage.
probability() {
  awk -v p="$1" 'BEGIN { if (p !~ /^[0-9]*\.?[0-9]+$/ || p > 100) exit 1; printf "%.6f", p / 100 }' ||
    die "loss '$1' is not a percentage in [0, 100]"
}

# set_loss PROBABILITY: drop that share of the packets each way at random, as they
# arrive (INPUT in A and in B). Not in the sender's OUTPUT: a packet dropped there is a
# local send failure, which TCP retries on its probe timer (at least 200 ms, whatever
# the socket's minimum RTO), not a loss in the network.
set_loss() {
  local ns
  for ns in "$NETNS_A" "$NETNS_B"; do
    ip netns exec "$ns" iptables -A INPUT -m statistic --mode random \
      --probability "$1" -j DROP
  done
}

up() {
  down
  trap down ERR  # a half-made pair goes again
  ip netns add "$NETNS_A"
  ip netns add "$NETNS_B"
  ip -n "$NETNS_A" link set lo up
  ip -n "$NETNS_B" link set lo up
  ip -n "$NETNS_A" link add "$VETH_A" mtu "$MTU" type veth peer name "$VETH_B" mtu "$MTU" \
    netns "$NETNS_B"
  ip -n "$NETNS_A" addr add "$ADDR_A/24" dev "$VETH_A"
  ip -n "$NETNS_B" addr add "$ADDR_B/24" dev "$VETH_B"
  ip -n "$NETNS_A" link set "$VETH_A" up
  ip -n "$NETNS_B" link set "$VETH_B" up
  if [[ -n ${1:-} ]]; then set_loss "$1"; fi
  trap - ERR
}

status() {
  { exists "$NETNS_A" && exists "$NETNS_B"; } || die "not up (bench/netns_link.sh up)"
  echo "A: namespace $NETNS_A, $VETH_A $ADDR_A, mtu $(ip -n "$NETNS_A" -o link show "$VETH_A" | grep -o 'mtu [0-9]*' | cut -d' ' -f2)"
  echo "B: namespace $NETNS_B, $VETH_B $ADDR_B, mtu $(ip -n "$NETNS_B" -o link show "$VETH_B" | grep -o 'mtu [0-9]*' | cut -d' ' -f2)"
  local rules ns
  for ns in "$NETNS_A" "$NETNS_B"; do
    rules=""
    if command -v iptables >/dev/null; then
      rules=$(ip netns exec "$ns" iptables -S | grep statistic || true)
    fi
    echo "loss rules in $ns: ${rules:-none}"
  done
  cat <<EOF
examples (target in B, initiator in A):
  ip netns exec $NETNS_B iperf3 -s -B $ADDR_B
  ip netns exec $NETNS_A iperf3 -c $ADDR_B -P 2
  ip netns exec $NETNS_B BUILD/tools/transfer_engine_bench --transport=tcp --local_segment=$ADDR_B
  ip netns exec $NETNS_A BUILD/tools/transfer_engine_bench --transport=tcp --local_segment=$ADDR_A \\
      --remote_segment=$ADDR_B:<port the target prints>
EOF
}

((EUID == 0)) || die "needs root (network namespaces)"
command -v ip >/dev/null || die "no ip (iproute2; bash scripts/install_deps.sh installs it)"
case ${1:-} in
  up)
    loss=""
    if [[ -n ${2:-} ]]; then
      command -v iptables >/dev/null || die "no iptables (bash scripts/install_deps.sh installs it)"
      loss=$(probability "$2")
    fi
    up "$loss"
    status
    ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up [LOSS_PERCENT] | down | status" ;;
esac
