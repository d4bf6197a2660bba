#!/usr/bin/env bash
# Installs the Debian 12 packages tlstrace needs to build and test, only those that are missing.
set -euo pipefail
PKGS=(g++ cmake ninja-build pkg-config libssl-dev openssl libboost1.81-dev libspdlog-dev libcli11-dev
      libtomlplusplus-dev libgmp-dev libjemalloc-dev doctest-dev python3 curl ca-certificates zlib1g-dev
      libpcap-dev)  # libpcap-dev: --capture (optional: without it the flag says so at start)
PKGS+=(clang libbpf-dev bpftool)  # optional: --tcp-states (eBPF; CMake turns it off without them)
if [[ "${1:-}" == "--test" ]]; then
  PKGS+=(python3-cryptography python3-requests python3-lxml python3-jsonschema default-jdk-headless gnutls-bin clang clang-tidy clang-format groff-base libclang-rt-14-dev tshark nginx-light nftables)
  # Node and npm may come from another repository (NodeSource) whose nodejs conflicts with Debian's
  # npm package: install Debian's pair only when no npm is on the PATH at all.
  command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)
  # NSS's certutil and tstclnt: the `ca install --print nss` recipe's test (test_ca_install.py).
  PKGS+=(libnss3-tools)
  PKGS+=(chromium)  # headless: the report page's browser tests (tests/integration/test_report.py)
  # Real upstream proxies for --upstream-proxy (tests/integration/test_upstream_proxy.py): HTTP
  # CONNECT, SOCKS5 without and with RFC 1929 authentication. (If the install starts their packaged
  # services, those keep to their default ports: the tests run their own on run-time ports.)
  PKGS+=(tinyproxy dante-server microsocks)
  PKGS+=(iptables)  # its NFQUEUE target feeds tests/integration/impair.py (test_tcp_netns.py; no netem here)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "installing: ${missing[*]}" >&2
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
