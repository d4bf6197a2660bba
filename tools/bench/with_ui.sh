#!/usr/bin/env bash
# Runs a tlstrace proxy command with --ui on a free loopback port and, for as long as the proxy
# runs, a client reading the live page's event stream (GET /events, server-sent events) as a
# browser's EventSource does: tools/bench/run.sh --cost-ui measures what serving a watched page
# costs the proxy. curl stands in for the browser so that the 2-core machine's CPU goes to the
# proxy, not to a renderer. Ends both on SIGTERM (the harness stops the candidate by PID).
set -uo pipefail
ui_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$@" --ui "127.0.0.1:$ui_port" &
proxy=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$ui_port/" && break
  kill -0 "$proxy" 2>/dev/null || exit 1
  sleep 0.1
done
curl -sN -o /dev/null "http://127.0.0.1:$ui_port/events" &
viewer=$!
trap 'kill -TERM "$proxy" 2>/dev/null; wait "$proxy"; kill -TERM "$viewer" 2>/dev/null; exit 0' TERM INT
wait "$proxy"
kill -TERM "$viewer" 2>/dev/null
