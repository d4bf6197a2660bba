#!/usr/bin/env python3
"""CPU time per new TLS connection through `tlstrace proxy`, with and without the live page.

Throughput on a shared 2-core machine moves with everyone else's load; CPU time per connection
(utime + stime from /proc/PID/stat, every thread) does not. Runs an nginx origin (TLS 1.3,
ECDSA P-256, no resumption), the proxy in reverse mode with its default trace to an events file
and a text log (as tools/bench/run.sh runs it), and the shared harness's tlsprobe opening N fresh
full handshakes (one GET each, CONC in flight) through it, in four configurations:

  none      no --ui
  ui        --ui, nobody watching
  curl      --ui with `curl -sN /events` reading the stream (tools/bench/with_ui.sh's viewer)
  chromium  --ui with headless Chromium on the live page

and prints CPU µs per connection of the proxy alone and of the viewer's processes (every process
of its session). Configurations alternate over REPS rounds; the median is printed.

  tools/bench/ui_cpu.py [--bin build/tlstrace] [--n 3000] [--conc 8] [--reps 2] [--configs none,ui,curl,chromium]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from callgrind_conn import ROOT, free_port, prepare, start_origin, wait_port  # the same process set-up
from callgrind_conn import stop as stop_origin  # (nginx: one process, not a session of its own)

TICK = os.sysconf("SC_CLK_TCK")


def stop(proc, secs=30):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=secs)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on


def cpu_of(pid):
    """utime + stime of one process (all its threads), in seconds."""
    f = stat_fields(pid)
    return (int(f[11]) + int(f[12])) / TICK


def cpu_of_session(sid):
    """utime + stime of every live process of session `sid`, in seconds."""
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            f = stat_fields(name)
        except (OSError, ValueError):
            continue
        if int(f[3]) == sid:
            total += (int(f[11]) + int(f[12])) / TICK
    return total


def probe(work, port, n, conc):
    r = subprocess.run([os.path.join(work, "tlsprobe"), "rate", "127.0.0.1", str(port), "/tiny", str(n), str(conc),
                        "600"], capture_output=True, text=True, timeout=900)
    if r.returncode != 0 or "failed=0" not in r.stdout:
        sys.exit(f"tlsprobe failed: {r.stdout} {r.stderr}")
    return r.stdout.strip()


def one(args, work, origin_port, config):
    port, ui_port = free_port(), free_port()
    out = tempfile.mkdtemp(dir=work)
    cmd = [args.bin, "proxy", "--mode", "reverse", "--listen", f"127.0.0.1:{port}", "--upstream",
           f"127.0.0.1:{origin_port}", "--insecure", "--ca-dir", os.path.join(work, "ca"), "--events",
           os.path.join(out, "events.jsonl"), "--log", os.path.join(out, "trace.log"), "--max-connections", "20000"]
    if config != "none":
        cmd += ["--ui", f"127.0.0.1:{ui_port}"]
    proxy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    viewer = None
    try:
        wait_port(port, proxy)
        if config != "none":
            wait_port(ui_port, proxy)
        probe(work, port, 50, args.conc)  # warm: the CA, the forged leaf cache, the allocator
        if config == "curl":
            viewer = subprocess.Popen(["curl", "-sN", "-o", "/dev/null", f"http://127.0.0.1:{ui_port}/events"],
                                      start_new_session=True)
        elif config == "chromium":
            viewer = subprocess.Popen([shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
                                       "--no-first-run", "--remote-debugging-port=0",
                                       f"--user-data-dir={tempfile.mkdtemp(dir=work)}", "--window-size=1400,1000",
                                       f"http://127.0.0.1:{ui_port}/"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(4 if config == "chromium" else 1)  # the page loaded and following /events
        p0 = cpu_of(proxy.pid)
        v0 = cpu_of_session(viewer.pid) if viewer else 0.0
        result = probe(work, port, args.n, args.conc)
        time.sleep(1.5)  # the last updates pushed and drawn
        p1 = cpu_of(proxy.pid)
        v1 = cpu_of_session(viewer.pid) if viewer else 0.0
        if viewer and viewer.poll() is not None:
            sys.exit(f"the {config} viewer exited early")
        return (p1 - p0) / args.n * 1e6, (v1 - v0) / args.n * 1e6, result
    finally:
        if viewer:
            stop(viewer)
        stop(proxy)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "tlstrace"))
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--conc", type=int, default=8)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--configs", default="none,ui,curl,chromium")
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    configs = args.configs.split(",")
    for tool in ["nginx", "gcc", "curl"] + (["chromium"] if "chromium" in configs else []):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed")
    with tempfile.TemporaryDirectory(prefix="tlstrace-uicpu-") as work:
        prepare(work, "tls13")
        origin, origin_port = start_origin(work, "tls13")
        results = {c: [] for c in configs}
        try:
            wait_port(origin_port, origin)
            for rep in range(args.reps):
                for c in configs:
                    proxy_us, viewer_us, probe_line = one(args, work, origin_port, c)
                    results[c].append((proxy_us, viewer_us))
                    print(f"round {rep + 1} {c:9s} proxy {proxy_us:7.0f} µs/conn  viewer {viewer_us:7.0f} µs/conn  "
                          f"({probe_line})", file=sys.stderr, flush=True)
        finally:
            stop_origin(origin)
    print(f"| configuration | proxy µs/conn | viewer µs/conn | proxy + viewer |  (median of {args.reps}, "
          f"{args.n} connections, {args.conc} in flight)")
    print("|---|---|---|---|")
    for c in configs:
        p = statistics.median(x[0] for x in results[c])
        v = statistics.median(x[1] for x in results[c])
        print(f"| {c} | {p:.0f} | {v:.0f} | {p + v:.0f} |")


if __name__ == "__main__":
    main()
