#!/usr/bin/env bash
# Builds tools/bench/json_bench.cpp against the trace library of two commits (-O2, as Release)
# and runs both:  tools/bench/json_bench.sh [BASE [NEW]]   (default: 3b2717f and the work tree)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
base="${1:-3b2717f}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
build() {  # src-dir out-binary [extra flags]
  local src="$1" out="$2"
  shift 2
  g++ -std=c++20 -O3 -DNDEBUG -I"$src/src" "$@" "$root/tools/bench/json_bench.cpp" "$src"/src/trace/*.cpp \
    "$src"/src/wire/*.cpp -o "$out" -lpthread
}
mkdir -p "$work/base"
git -C "$root" archive "$base" src | tar -x -C "$work/base"
build "$work/base" "$work/bench-base"
if [[ -n "${2:-}" ]]; then
  mkdir -p "$work/new"
  git -C "$root" archive "$2" src | tar -x -C "$work/new"
  build "$work/new" "$work/bench-new" -DWITH_BOOST_SERIALIZE
else
  build "$root" "$work/bench-new" -DWITH_BOOST_SERIALIZE
fi
fixture="$root/tests/data/ch_openssl_s_client.hex"
echo "== $base"
"$work/bench-base" "$fixture" "${N:-20000}"
echo "== ${2:-work tree}"
"$work/bench-new" "$fixture" "${N:-20000}"
