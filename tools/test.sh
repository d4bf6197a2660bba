#!/usr/bin/env bash
# One command to run every test: installs what is missing, builds with warnings as errors, runs
# the whole CTest suite (unit, fuzz-corpus replays, integration with real peers), then rebuilds
# under ASan+UBSan and runs the suite again.
#   TLSTRACE_SKIP_SANITIZE=1  skips the sanitizer pass (developer loop)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
jobs="$(nproc)"
"$root/tools/deps.sh" --test

cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTLSTRACE_WERROR=ON >/dev/null
cmake --build "$root/build" -j "$jobs"
(cd "$root/build" && ctest --output-on-failure -j "$jobs")

if [[ "${TLSTRACE_SKIP_SANITIZE:-0}" != "1" ]]; then
  cmake -S "$root" -B "$root/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTLSTRACE_WERROR=ON \
        -DTLSTRACE_SANITIZE=ON >/dev/null
  cmake --build "$root/build-asan" -j "$jobs"
  (cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j "$jobs")
fi
echo "all tests passed"
