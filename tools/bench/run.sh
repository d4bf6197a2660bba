#!/usr/bin/env bash
# Benchmarks tlstrace beside HAProxy, sslsplit and mitmproxy with the shared peer harness
# (../shared/bench/peers), all on 127.0.0.1. Builds a Release binary first.
#
#   tools/bench/run.sh            full run (3 repetitions, all tests and variants; ~25 min)
#   tools/bench/run.sh --quick    developer loop (1 repetition, short runs, TLS 1.3 only; ~3 min)
#   tools/bench/run.sh --trace-cost   what `--trace all` costs against the default trace, on tests
#                                  b and c: PAIRS (4) alternating harness runs of each (~12 min)
#   tools/bench/run.sh --cost "FLAGS" what FLAGS (e.g. "--capture --tcp-states") cost against the
#                                  default, on tests a, b and c: PAIRS (4) alternating runs (~15 min)
#   tools/bench/run.sh --cost-ui      the same for --ui with a live-page client attached to its event
#                                  stream for the whole run (tools/bench/with_ui.sh)
#   tools/bench/run.sh --hold [N]     test e alone at N idle TLS connections (10000), beside HAProxy:
#                                  connections held and RSS per connection (~3 min)
#
# tlstrace runs with its default trace categories and events to a file, as users run it.
# Extra environment (REPS, DUR, TESTS, PEERS, OUT_DIR, ...) is passed to the harness.
# Results: the harness's Markdown tables, then bench-results.md with the ratios to HAProxy.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
harness="${BENCH_HARNESS:-$root/../shared/bench/peers/run.sh}"
[[ -x "$harness" ]] || { echo "peer harness not found at $harness (set BENCH_HARNESS)" >&2; exit 2; }

"$root/tools/deps.sh"
cmake -S "$root" -B "$root/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTLSTRACE_TESTS=OFF >/dev/null
cmake --build "$root/build-release" --target tlstrace

if [[ "${1:-}" == "--hold" ]]; then
  export TESTS=e IDLE_CONNS="${2:-10000}" PEERS="${PEERS:-haproxy}" CRYPTO_SPEED=0 VARIANTS=tls13
fi
if [[ "${1:-}" == "--quick" ]]; then
  export REPS="${REPS:-1}" DUR="${DUR:-3}" DUR_C_VARIANT="${DUR_C_VARIANT:-2}" IDLE_CONNS="${IDLE_CONNS:-1000}"
  export LAT_KA_N="${LAT_KA_N:-200}" LAT_NEW_N="${LAT_NEW_N:-40}" VARIANTS="${VARIANTS:-tls13}"
  export CRYPTO_SPEED="${CRYPTO_SPEED:-0}" PEERS="${PEERS:-direct haproxy}"
fi
candidate="$root/build-release/tlstrace proxy --mode reverse --listen 127.0.0.1:{port} \
--upstream {upstream} --insecure --ca-cert {ca_cert} --ca-key {ca_key} --events {workdir}/events-{port}.jsonl \
--log {workdir}/trace-{port}.log --max-connections 20000 --idle-timeout 600"

if [[ "${1:-}" =~ ^--(trace-cost|cost|cost-ui)$ ]]; then
  # Runs alternate (default, other, default, other, ...) so that both see the same drift of a
  # shared machine; each pair gives one ratio.
  base="${OUT_DIR:-$(mktemp -d /tmp/tlstrace-cost-XXXXXX)}"
  mkdir -p "$base"
  tests="${COST_TESTS:-a b c}" other_cmd="$candidate"
  case "$1" in
    --trace-cost) tests="b c" other_cmd="$candidate --trace all" ;;
    --cost) other_cmd="$candidate ${2:?--cost needs the flags to measure}" ;;
    --cost-ui) other_cmd="$root/tools/bench/with_ui.sh $candidate" ;;
  esac
  for i in $(seq "${PAIRS:-4}"); do
    for mode in default other; do
      cmd="$candidate"
      [[ $mode == other ]] && cmd="$other_cmd"
      echo "pair $i: $mode" >&2
      OUT_DIR="$base/$mode-$i" REPS=1 TESTS="$tests" VARIANTS=tls13 PEERS=direct CRYPTO_SPEED=0 \
        CANDIDATE_CMD="$cmd" "$harness" >"$base/$mode-$i.log" 2>&1
    done
  done
  echo "other: $other_cmd" >"$base/other.txt"
  python3 "$root/tools/bench/ratios.py" --trace-cost "$base" | tee "$base/cost.md"
  echo "results in $base"
  exit 0
fi

export OUT_DIR="${OUT_DIR:-$(mktemp -d /tmp/tlstrace-bench-XXXXXX)}"
export CANDIDATE_CMD="$candidate"
"$harness"
python3 "$root/tools/bench/ratios.py" "$OUT_DIR" | tee "$OUT_DIR/bench-results.md"
echo "results in $OUT_DIR"
