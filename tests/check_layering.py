#!/usr/bin/env python3
"""Fails when a pure layer includes what it must not (docs/architecture.md)."""
import pathlib, re, sys

RULES = {
    "wire": ("boost/", "openssl/", "spdlog/", "CLI/", "trace/", "tls/", "net/"),
    "trace": ("boost/", "openssl/", "spdlog/", "CLI/", "tls/", "net/"),
    "config": ("boost/", "openssl/", "spdlog/", "CLI/"),
    "tls": ("boost/", "spdlog/", "CLI/", "net/"),
    "pki": ("boost/", "spdlog/", "CLI/", "net/"),
    "sinks": ("boost/", "openssl/", "CLI/", "net/"),
    "net": ("CLI/", "spdlog/"),
}
# Exceptions to the bans above: trace/ holds its JSON in Boost.JSON (header-only, no Asio).
ALLOWED = {"trace": ("boost/json/",)}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)

def main(src):
    bad = []
    for layer, banned in RULES.items():
        for f in sorted(pathlib.Path(src, layer).glob("*")):
            for inc in INCLUDE.findall(f.read_text()):
                if inc.startswith(banned) and not inc.startswith(ALLOWED.get(layer, ())):
                    bad.append(f"{f}: includes {inc}, not allowed in {layer}/")
    print("\n".join(bad) or "layering ok")
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
