#!/usr/bin/env python3
"""Reads a peer-harness run (raw.tsv) and prints tlstrace's figures beside HAProxy's, with the
ratio candidate/HAProxy for each target of the performance issue. Usage: ratios.py OUT_DIR, or
ratios.py --trace-cost BASE for the runs of tools/bench/run.sh --trace-cost, --cost and --cost-ui."""
import os
import statistics
import sys
from collections import defaultdict

# Targets with an absolute bound besides the ratio: e is at most 40 KiB per idle connection at
# 1,000 connections (the count; other counts are reported against HAProxy only).
ABSOLUTE_LIMITS = {"e_KiB_per_conn": 40.0}
ABSOLUTE_LIMIT_AT_IDLE_CONNS = 1000

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


def read_runs(out_dir):
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
    return vals


# The tracing-cost target: `--trace all` within 10 % of the default trace on b and c (and a, for
# --cost runs, when present).
TRACE_COST_METRICS = [
    ("a_MBps", "a: bulk MB/s, 1 conn", True),
    ("a_peer_cpu_s_per_GB", "a: proxy CPU s per GB", False),
    ("b_rps", "b: keep-alive req/s", True),
    ("b_peer_cpu_us_per_req", "b: proxy CPU µs per request", False),
    ("c_cps", "c: new full-handshake conn/s", True),
    ("c_peer_cpu_us_per_conn", "c: proxy CPU µs per connection", False),
]


def trace_cost(base):
    """base holds default-N and other-N (or all-N: --trace-cost) harness runs of tools/bench/run.sh."""
    pairs = sorted(int(d.split("-")[1]) for d in os.listdir(base) if d.startswith("default-") and "." not in d)
    other = "other" if any(d.startswith("other-") for d in os.listdir(base)) else "all"
    runs = {(mode, i): read_runs(f"{base}/{mode}-{i}") for i in pairs for mode in ("default", other)}
    print("| metric | " + " | ".join(f"pair {i}: default / {other} / ratio" for i in pairs)
          + " | median ratio | within 10 % |")
    print("|---|" + "---|" * len(pairs) + "---|---|")
    for m, label, higher in TRACE_COST_METRICS:
        cells, ratios = [], []
        for i in pairs:
            d = runs[("default", i)].get(("candidate", m))
            a = runs[(other, i)].get(("candidate", m))
            if not d or not a:
                cells.append("n/a")
                continue
            d, a = statistics.median(d), statistics.median(a)
            r = a / d
            ratios.append(r)
            cells.append(f"{d:,.1f} / {a:,.1f} / {r:.2f}")
        if not ratios:
            continue  # a test this run did not have
        med = statistics.median(ratios)
        ok = "yes" if (med >= 0.9 if higher else med <= 1.1) else "no"
        print(f"| {label} | " + " | ".join(cells) + f" | {med:.2f} | {ok} |")


def idle_conns(out_dir):
    """IDLE_CONNS of the run, from the harness's settings line (1000 when absent)."""
    try:
        with open(f"{out_dir}/env.txt") as f:
            for word in f.read().split():
                if word.startswith("IDLE_CONNS="):
                    return int(word.split("=", 1)[1])
    except (OSError, ValueError):
        pass
    return 1000


def main(out_dir):
    vals = read_runs(out_dir)
    med = lambda p, m: statistics.median(vals[(p, m)]) if vals.get((p, m)) else None
    wanted = idle_conns(out_dir)
    only_e = not any(med(p, m) for p in ("haproxy", "candidate") for m, _, _ in METRICS if not m.startswith("e_"))
    print("| metric | direct | HAProxy | tlstrace | tlstrace / HAProxy | target met |")
    print("|---|---|---|---|---|---|")
    fmt = lambda x: "n/a" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.2f}")
    for m, label, higher in METRICS:
        if only_e and not m.startswith("e_"):  # a --hold run measures e alone
            continue
        d, h, c = med("direct", m), med("haproxy", m), med("candidate", m)
        ratio = c / h if c is not None and h else None
        met = "" if ratio is None else ("yes" if (ratio >= 1.0 if higher else ratio <= 1.0) else "no")
        if m in ABSOLUTE_LIMITS and c is not None and wanted == ABSOLUTE_LIMIT_AT_IDLE_CONNS:
            met = "yes" if c <= ABSOLUTE_LIMITS[m] and met == "yes" else f"no (limit {ABSOLUTE_LIMITS[m]:g})"
        if m.startswith("e_"):
            label += f" ({wanted:,})"
        print(f"| {label} | {fmt(d)} | {fmt(h)} | {fmt(c)} | {'n/a' if ratio is None else f'{ratio:.2f}'} | {met} |")
    # e's other half: every connection held, none refused or failed.
    d, h, c = med("direct", "e_opened"), med("haproxy", "e_opened"), med("candidate", "e_opened")
    if c is not None:
        met = "yes" if c >= wanted else "no"
        print(f"| e: idle connections held (of {wanted:,}) | {fmt(d)} | {fmt(h)} | {fmt(c)} | | {met} |")


if __name__ == "__main__":
    if sys.argv[1] == "--trace-cost":
        trace_cost(sys.argv[2])
    else:
        main(sys.argv[1])
