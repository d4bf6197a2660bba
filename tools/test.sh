#!/usr/bin/env bash
# One command to run every test: installs what is missing, checks the formatting
# (tools/check_format.sh), builds with warnings as errors, runs the whole CTest suite (unit,
# layering, install, fuzz-corpus replays, lint, integration with real peers), then rebuilds under
# ASan+UBSan and runs the suite again.
#   TLSTRACE_SKIP_SANITIZE=1 / TLSTRACE_SKIP_TSAN=1 / TLSTRACE_SKIP_FUZZ=1 skip those passes
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
jobs="$(nproc)"
"$root/tools/deps.sh" --test
# Formatting first: seconds, and a failure here needs no build to be understood.
"$root/tools/check_format.sh"

cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTLSTRACE_WERROR=ON >/dev/null
cmake --build "$root/build" -j "$jobs"
(cd "$root/build" && ctest --output-on-failure -j "$jobs")

if [[ "${TLSTRACE_SKIP_SANITIZE:-0}" != "1" ]]; then
  cmake -S "$root" -B "$root/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTLSTRACE_WERROR=ON \
        -DTLSTRACE_SANITIZE=ON >/dev/null
  cmake --build "$root/build-asan" -j "$jobs"
  (cd "$root/build-asan" && TLSTRACE_SANITIZER_BUILD=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j "$jobs" \
       -E '^(clang_tidy|clang_format|install|layering|cli_doc)$')  # (source checks: the first pass ran them)
fi
# ThreadSanitizer: the proxy runs one io thread per core plus the trace writer; they share the
# tracer's queue and the caches. The integration tests drive it with real concurrent clients; the
# trace unit tests drive the writer queue from several threads. (TSan models one descriptor table
# per process, so there the io threads share one: the fallback path, tested here.)
if [[ "${TLSTRACE_SKIP_TSAN:-0}" != "1" ]]; then
  cmake -S "$root" -B "$root/build-tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTLSTRACE_WERROR=ON \
        -DTLSTRACE_TSAN=ON >/dev/null
  # Only what this pass runs: the proxy (the integration tests drive it) and the trace unit tests.
  cmake --build "$root/build-tsan" -j "$jobs" --target tlstrace unit_trace
  (cd "$root/build-tsan" && TLSTRACE_SANITIZER_BUILD=thread TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$root/tests/tsan.supp" \
     ctest --output-on-failure -j "$jobs" -L integration && ctest --output-on-failure -R unit_trace)
fi
# Fuzzing with libFuzzer (clang), bounded: each target starts from its committed corpus (which
# also replays under CTest above); a crash fails the run and leaves its reproducer in build-fuzz/
# to be committed under tests/fuzz/corpus/ as a regression seed.
if [[ "${TLSTRACE_SKIP_FUZZ:-0}" != "1" ]]; then
  secs="${TLSTRACE_FUZZ_SECONDS:-30}"
  cmake -S "$root" -B "$root/build-fuzz" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DTLSTRACE_FUZZ=ON -DTLSTRACE_TESTS=OFF >/dev/null
  cmake --build "$root/build-fuzz" -j "$jobs" --target fuzz_wire fuzz_connect fuzz_session fuzz_events fuzz_syn fuzz_starttls \
        fuzz_segment fuzz_socks fuzz_proxy_hop
  for t in wire connect session events syn starttls segment socks proxy_hop; do
    work="$root/build-fuzz/corpus-$t"
    mkdir -p "$work"
    # The session target's caches (forged leaves, certificate summaries) and OpenSSL's own make
    # libFuzzer suspect a leak on most inputs and rescan the heap each time (50x slower); its
    # corpus replays under the ASan build above with LeakSanitizer at exit instead.
    leaks=1
    [[ "$t" == session ]] && leaks=0
    (cd "$root/build-fuzz" && "./tests/fuzz/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
       -detect_leaks=$leaks "$work" "$root/tests/fuzz/corpus/$t" 2>&1 | tail -n 12)
  done
fi
echo "all tests passed"
