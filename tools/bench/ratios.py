#!/usr/bin/env python3
"""Reads a peer-harness run (raw.tsv) and prints tlstrace's figures beside HAProxy's, with the
ratio candidate/HAProxy for each target of the performance issue. Usage: ratios.py OUT_DIR"""
import statistics
import sys
from collections import defaultdict

# Targets with an absolute bound besides the ratio: e is at most 40 KiB per idle connection.
ABSOLUTE_LIMITS = {"e_KiB_per_conn": 40.0}

# metric, label, higher_is_better
METRICS = [
    ("a_MBps", "a: bulk MB/s, 1 conn", True),
    ("a_peer_cpu_s_per_GB", "a: proxy CPU s per GB", False),
    ("b_rps", "b: keep-alive req/s", True),
    ("b_peer_cpu_us_per_req", "b: proxy CPU µs per request", False),
    ("c_cps", "c: new full-handshake conn/s", True),
    ("c_peer_cpu_us_per_conn", "c: proxy CPU µs per connection", False),
    ("d_ka_p50_us", "d: warm latency p50 µs", False),
    ("d_ka_p99_us", "d: warm latency p99 µs", False),
    ("d_new_p50_us", "d: new-connection latency p50 µs", False),
    ("e_KiB_per_conn", "e: RSS KiB per idle connection", False),
]


def main(out_dir):
    vals = defaultdict(list)
    with open(f"{out_dir}/raw.tsv") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 5:
                continue
            _, peer, variant, metric, value = parts
            if variant != "tls13":
                continue
            try:
                vals[(peer, metric)].append(float(value))
            except ValueError:
                pass
    med = lambda p, m: statistics.median(vals[(p, m)]) if vals.get((p, m)) else None
    print("| metric | direct | HAProxy | tlstrace | tlstrace / HAProxy | target met |")
    print("|---|---|---|---|---|---|")
    for m, label, higher in METRICS:
        d, h, c = med("direct", m), med("haproxy", m), med("candidate", m)
        ratio = c / h if c is not None and h else None
        met = "" if ratio is None else ("yes" if (ratio >= 1.0 if higher else ratio <= 1.0) else "no")
        if m in ABSOLUTE_LIMITS and c is not None:  # the issue also bounds these outright
            met = "yes" if c <= ABSOLUTE_LIMITS[m] and met == "yes" else f"no (limit {ABSOLUTE_LIMITS[m]:g})"
        fmt = lambda x: "n/a" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.2f}")
        print(f"| {label} | {fmt(d)} | {fmt(h)} | {fmt(c)} | {'n/a' if ratio is None else f'{ratio:.2f}'} | {met} |")


if __name__ == "__main__":
    main(sys.argv[1])
