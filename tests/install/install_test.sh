#!/usr/bin/env bash
# Installs the build into a temporary prefix, checks everything landed in its place,
# and builds and runs tests/install/consumer.cc against it twice: through the CMake
# package (find_package) and through pkg-config.
#   install_test.sh BUILD_DIR CXX PYTHON_DIR_RELATIVE_TO_PREFIX [SANITIZER_FLAGS]
# A sanitizer build's library needs its consumer built with the same sanitizer.
set -euo pipefail
build=$1 cxx=$2 pythondir=$3 sanitize=${4:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=$(mktemp -d /tmp/te-install-test.XXXXXX)
trap 'rm -rf "$prefix"' EXIT

cmake --install "$build" --prefix "$prefix/usr" >/dev/null
libdir=$(find "$prefix/usr" -name libtransfer_engine.so -printf '%h\n' | head -1)
for path in "$prefix/usr/include/te/transfer_engine.h" "$libdir/libtransfer_engine.a" \
            "$libdir/cmake/TransferEngine/TransferEngineConfig.cmake" \
            "$libdir/pkgconfig/transfer_engine.pc" "$prefix/usr/bin/transfer_engine_bench" \
            "$prefix/usr/bin/transfer_engine_info"; do
  [[ -e $path ]] || { echo "not installed: $path" >&2; exit 1; }
done

echo "--- CMake package"
cmake -S "$here" -B "$prefix/consumer-cmake" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_PREFIX_PATH="$prefix/usr" -DCMAKE_CXX_FLAGS="$sanitize" >/dev/null
cmake --build "$prefix/consumer-cmake" >/dev/null
"$prefix/consumer-cmake/consumer"

echo "--- pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
read -ra flags <<<"$(pkg-config --cflags --libs transfer_engine)"
"$cxx" -std=c++20 $sanitize "$here/consumer.cc" "${flags[@]}" -o "$prefix/consumer-pc"
LD_LIBRARY_PATH="$libdir" "$prefix/consumer-pc"

if [[ $pythondir != "" ]]; then
  echo "--- Python package"
  (cd / && PYTHONPATH="$prefix/usr/$pythondir" python3 -c \
    'import transfer_engine, sys; print("python: transfer_engine from", transfer_engine.__file__)') |
    grep -F "$prefix/usr/$pythondir/transfer_engine/"
fi
echo "install test passed"
