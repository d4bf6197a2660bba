#!/usr/bin/env bash
# One command to run tlstrace: installs what is missing, builds (Release), starts the proxy.
# Arguments are passed to `tlstrace proxy` (default: explicit mode on 127.0.0.1:8080).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/tools/deps.sh"
cmake -S "$root" -B "$root/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTLSTRACE_TESTS=OFF >/dev/null
cmake --build "$root/build-release" --target tlstrace
exec "$root/build-release/tlstrace" proxy "$@"
