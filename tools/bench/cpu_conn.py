#!/usr/bin/env python3
"""CPU time per new connection through tlstrace and HAProxy, per thread, in alternating rounds.

callgrind_conn.py counts instructions; this measures what the harness's test c measures (the
proxy's CPU time, user and system, from /proc) in the same set-up: an nginx origin (tls12, tls13
or the harness's tls12-dhe), the proxy with one io thread (tlstrace with its default trace to
files), and the harness's tlsprobe making N fresh full handshakes one after the other (one GET
each). Connections one at a time remove the client's concurrency from the picture; the rounds
alternate between the proxies so that both see the same drift of a shared machine. Per thread,
because tlstrace's trace writer is a thread of its own: its cycles per instruction are not the io
thread's. Ratios to HAProxy are medians over the rounds.

  tools/bench/cpu_conn.py [--bin build-release/tlstrace ...] [--origin tls12] [--n 2000] [--rounds 3]
  tools/bench/cpu_conn.py --bin old/tlstrace --bin new/tlstrace   (each binary beside HAProxy)
  tools/bench/cpu_conn.py --outputs both --outputs none   (with and without the trace's files)
"""
import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from callgrind_conn import (OUTPUTS, ROOT, free_port, prepare, probe, proxy_command, start_origin,  # noqa: E402
                            stop, wait_port)

TICK = os.sysconf("SC_CLK_TCK")


def threads(pid):
    """{thread id: (user ticks, system ticks)} for every thread of pid."""
    out = {}
    for t in glob.glob(f"/proc/{pid}/task/*"):
        try:
            f = open(os.path.join(t, "stat")).read().rsplit(")", 1)[1].split()
        except OSError:  # (a thread that ended meanwhile)
            continue
        out[t.rsplit("/", 1)[1]] = (int(f[11]), int(f[12]))
    return out


def one(peer, binary, work, origin_port, n, extra, outputs="both"):
    """µs of CPU per connection: (user, system, {thread: user+system})."""
    proxy_port = free_port()
    out_dir = os.path.join(work, "out")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    proxy = subprocess.Popen(proxy_command(peer, binary, work, origin_port, proxy_port, out_dir, extra, outputs),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(proxy_port, proxy)
        probe(work, proxy_port, 50)  # warm: forged leaf, caches, allocator
        before = threads(proxy.pid)
        probe(work, proxy_port, n)
        time.sleep(0.5)  # the writer thread finishes the last connections' events
        after = threads(proxy.pid)
    finally:
        stop(proxy)
    us = lambda ticks: ticks * 1e6 / TICK / n  # noqa: E731
    per = {t: us(sum(after[t]) - sum(before.get(t, (0, 0)))) for t in after}
    user = us(sum(a[0] for a in after.values()) - sum(b[0] for b in before.values()))
    system = us(sum(a[1] for a in after.values()) - sum(b[1] for b in before.values()))
    return user, system, {t: v for t, v in per.items() if v > 0}


def label(peer, outputs):
    if peer[1] is None:
        return peer[0]
    return peer[1] + (f" (outputs: {peer[2]})" if len(outputs) > 1 or peer[2] != "both" else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", action="append", help="tlstrace binaries (default build-release/tlstrace)")
    ap.add_argument("--origin", choices=["tls12", "tls13", "tls12-dhe"], default="tls12")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--outputs", action="append", choices=OUTPUTS,
                    help="tlstrace's files, one set of rounds each: both (default), events, none")
    ap.add_argument("extra", nargs="*", help="more tlstrace options (after --)")
    args = ap.parse_args()
    bins = [os.path.abspath(b) for b in (args.bin or [os.path.join(ROOT, "build-release", "tlstrace")])]
    for tool in ["nginx", "gcc", "haproxy"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed")
    outputs = args.outputs or ["both"]
    peers = [("haproxy", None, None)] + [("tlstrace", b, o) for b in bins for o in outputs]
    totals = {p: [] for p in peers}
    with tempfile.TemporaryDirectory(prefix="tlstrace-cpu-") as work:
        prepare(work, args.origin)
        origin, origin_port = start_origin(work, args.origin)
        try:
            wait_port(origin_port, origin)
            for r in range(args.rounds):
                for p in peers:
                    user, system, per = one(p[0], p[1], work, origin_port, args.n, args.extra, p[2])
                    totals[p].append(user + system)
                    name = label(p, outputs)
                    threads_text = " ".join(f"{v:.0f}" for v in sorted(per.values(), reverse=True))
                    print(f"round {r + 1} {name}: user {user:.0f} + system {system:.0f} = {user + system:.0f} µs/conn "
                          f"(threads: {threads_text})", flush=True)
        finally:
            stop(origin)
    base = statistics.median(totals[peers[0]])
    print(f"\n{args.origin}, {args.n} connections x {args.rounds} rounds, medians (CPU µs per new connection):")
    for p in peers:
        m = statistics.median(totals[p])
        print(f"  {label(p, outputs)}: {m:.0f} ({m / base:.2f}x HAProxy)")


if __name__ == "__main__":
    main()
