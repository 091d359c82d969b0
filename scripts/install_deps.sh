#!/usr/bin/env bash
# Installs the Debian 12 packages the build, the tests and the benchmarks need.
# Does nothing when all are present; uses sudo when not run as root.
set -euo pipefail

PACKAGES=(build-essential cmake ninja-build pkg-config libgflags-dev nlohmann-json3-dev
          libhiredis-dev liburing-dev libcurl4-openssl-dev libnuma-dev libgtest-dev
          libgmock-dev libbenchmark-dev iperf3 redis-server etcd-server etcd-client
          libcpp-httplib-dev libssl-dev clang python3-dev python3-pytest python3-numpy
          python3-setuptools python3-pip pybind11-dev libucx-dev ucx-utils sockperf gnuplot-nox
          prometheus-cpp-dev libcivetweb-dev prometheus iproute2 iptables)

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "[install_deps] no dpkg-query (not Debian?): install ${PACKAGES[*]} yourself" >&2
  exit 0
fi
missing=()
for package in "${PACKAGES[@]}"; do
  if [[ $(dpkg-query -W -f='${Status}' "$package" 2>/dev/null) != "install ok installed" ]]; then
    missing+=("$package")
  fi
done
((${#missing[@]} == 0)) && exit 0
as_root=()
if ((EUID != 0)); then
  command -v sudo >/dev/null 2>&1 || { echo "[install_deps] installing ${missing[*]} needs root" >&2; exit 1; }
  as_root=(sudo)
fi
echo "[install_deps] installing ${missing[*]}" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
