#!/usr/bin/env bash
# Builds and runs a consumer project (tests/consumer) the three ways the README documents:
#   1. find_package(tapegrad) after `cmake --install` into a scratch prefix,
#   2. pkg-config on the same prefix,
#   3. add_subdirectory on this source tree with NO CMAKE_BUILD_TYPE: tapegrad's own sources must
#      still compile optimised (-O2), the parent's own sources must not be touched, and a parent's
#      explicit choice (a build type, or -O in CMAKE_CXX_FLAGS) must be left alone.
# Usage: run.sh <tapegrad build dir>
set -euo pipefail
build_dir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() {
  echo "consumer: FAILED: $*" >&2
  exit 1
}

cmake --install "$build_dir" --prefix "$scratch/prefix" >/dev/null
cmake -S "$here" -B "$scratch/build" -G Ninja -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/build" >/dev/null
"$scratch/build/consumer"
echo "consumer: find_package works"

export PKG_CONFIG_PATH="$scratch/prefix/lib/pkgconfig:$scratch/prefix/lib/x86_64-linux-gnu/pkgconfig"
# shellcheck disable=SC2046
c++ "$here/main.cpp" -o "$scratch/consumer_pkgconfig" $(pkg-config --cflags --libs tapegrad)
"$scratch/consumer_pkgconfig"
echo "consumer: pkg-config works"

# The compile command ninja would run for one source file of a configured tree.
compile_command() {  # <build dir> <source file suffix>
  ninja -C "$1" -t commands consumer | grep -F -- "$2" | head -n 1
}
# The add_subdirectory builds are kept in the build tree, so a rerun only rebuilds what changed.
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
subproject=$build_dir/consumer-subproject
configure_subproject() {  # <build dir> [cmake options...]
  local dir=$1
  shift
  rm -f "$dir/CMakeCache.txt"  # each check starts from the user's command line, not a cache
  cmake -S "$here" -B "$dir" -G Ninja -DTAPEGRAD_SOURCE_DIR="$source_dir" "${launcher[@]}" "$@" \
    >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log" >&2; fail "configure $dir"; }
}
mkdir -p "$subproject" "$subproject-debug" "$subproject-o1"

configure_subproject "$subproject"
library_flags=$(compile_command "$subproject" ops/src/matmul.cpp)
consumer_flags=$(compile_command "$subproject" consumer/main.cpp)
echo "consumer: add_subdirectory, no build type: tapegrad compiles with: $(grep -oE -- ' -(O[0-9s]|g|DNDEBUG)\b' <<<"$library_flags" | tr -d '\n')"
grep -qE -- ' -O2( |$)' <<<"$library_flags" || fail "tapegrad is not optimised as a subproject: $library_flags"
grep -qE -- ' -O[0-9s]( |$)' <<<"$consumer_flags" && fail "the parent's own sources got an -O: $consumer_flags"
cmake --build "$subproject" >"$subproject.build.log" 2>&1 || { tail -n 40 "$subproject.build.log" >&2; fail "build"; }
"$subproject/consumer"
echo "consumer: add_subdirectory works"

# A parent's explicit choice wins: Debug stays unoptimised, an -O1 in CMAKE_CXX_FLAGS stays -O1.
configure_subproject "$subproject-debug" -DCMAKE_BUILD_TYPE=Debug
grep -qE -- ' -O2( |$)' <<<"$(compile_command "$subproject-debug" ops/src/matmul.cpp)" &&
  fail "a parent's CMAKE_BUILD_TYPE=Debug was overridden with -O2"
configure_subproject "$subproject-o1" -DCMAKE_CXX_FLAGS=-O1
flags=$(compile_command "$subproject-o1" ops/src/matmul.cpp)
grep -qE -- ' -O2( |$)' <<<"$flags" && fail "a parent's CMAKE_CXX_FLAGS=-O1 was overridden: $flags"
grep -qE -- ' -O1( |$)' <<<"$flags" || fail "a parent's CMAKE_CXX_FLAGS=-O1 was lost: $flags"
echo "consumer: a parent's build type and -O flags are kept"
echo "consumer: find_package, pkg-config and add_subdirectory all work"
