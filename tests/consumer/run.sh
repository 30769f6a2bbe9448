#!/usr/bin/env bash
# Installs the built tree into a scratch prefix, then builds and runs a consumer project against
# it through find_package and through pkg-config. Usage: run.sh <tapegrad build dir>
set -euo pipefail
build_dir=$1
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cmake --install "$build_dir" --prefix "$scratch/prefix" >/dev/null
cmake -S "$here" -B "$scratch/build" -G Ninja -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/build" >/dev/null
"$scratch/build/consumer"
export PKG_CONFIG_PATH="$scratch/prefix/lib/pkgconfig:$scratch/prefix/lib/x86_64-linux-gnu/pkgconfig"
# shellcheck disable=SC2046
c++ "$here/main.cpp" -o "$scratch/consumer_pkgconfig" $(pkg-config --cflags --libs tapegrad)
"$scratch/consumer_pkgconfig"
echo "consumer: find_package and pkg-config both work"
