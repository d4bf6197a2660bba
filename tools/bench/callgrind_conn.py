#!/usr/bin/env python3
"""Instructions per new connection through tlstrace or HAProxy, counted by callgrind.

The machine's 10-20% noise hides differences of a few percent; callgrind's instruction counts do
not. Runs an nginx origin (TLS 1.2 ECDHE or TLS 1.3, self-signed ECDSA P-256, or the harness's TLS 1.2
DHE with ffdhe2048 and RSA-2048; no resumption), the
proxy under callgrind with one io thread, and the shared harness's tlsprobe making N fresh full
handshakes (one GET each) through it; twice (N1 and N2 connections) so that start-up cancels:
(total(N2) - total(N1)) / (N2 - N1). Counts user-space instructions of every thread of the proxy
(kernel time is not counted). Per shared object with --by-object.

  tools/bench/callgrind_conn.py --peer tlstrace [--bin build-release/tlstrace] [--origin tls12]
  tools/bench/callgrind_conn.py --peer haproxy
  tools/bench/callgrind_conn.py --peer tlstrace -- --trace tcp     (extra proxy options after --)
  tools/bench/callgrind_conn.py --outputs none    (tlstrace writing no file: stderr lines only)
  tools/bench/callgrind_conn.py --keep /tmp/cg   (keeps both runs' callgrind.out.* files, events and
      trace in /tmp/cg/cg-N1 and cg-N2: by function, callgrind_annotate --inclusive=yes on each)
"""
import argparse
import collections
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TLSPROBE_SRC = os.path.join(ROOT, "..", "shared", "bench", "peers", "tlsprobe.c")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, secs=120):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"process {proc.args[0]} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"nothing listens on {port} after {secs} s")


def stop(proc, secs=120):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=secs)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def parse_objects(path):
    """Self cost per shared object of one callgrind output file."""
    names, cost, ob, in_call = {}, collections.Counter(), None, False
    for line in open(path):
        if line.startswith(("ob=", "cob=")):
            m = re.match(r"c?ob=\((\d+)\)(?: (.*))?", line.strip())
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                if line.startswith("ob="):
                    ob = names.get(m.group(1), "?")
        elif line.startswith("calls="):
            in_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if in_call:
                in_call = False
                continue
            parts = line.split()
            if len(parts) >= 2:
                cost[ob] += int(parts[1])
    return cost


def write_nginx_conf(work, origin_port, proto, extra=""):
    """The TLS origin both benchmarks use (nginx, ECDSA P-256 from work/origin.*, no resumption,
    /tiny answering "ok"; `extra` adds server directives); returns its prefix directory, whose
    nginx.conf it wrote."""
    ngx = os.path.join(work, "nginx")
    os.makedirs(ngx, exist_ok=True)
    with open(os.path.join(ngx, "nginx.conf"), "w") as f:
        f.write(f"""daemon off; master_process off; worker_processes 1; pid {ngx}/nginx.pid;
error_log {ngx}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {ngx}; proxy_temp_path {ngx}; fastcgi_temp_path {ngx};
  uwsgi_temp_path {ngx}; scgi_temp_path {ngx};
  ssl_session_tickets off; ssl_session_cache off;
  server {{ listen 127.0.0.1:{origin_port} ssl; ssl_certificate {work}/origin.pem;
    ssl_certificate_key {work}/origin.key; ssl_protocols {proto}; {extra}
    location = /tiny {{ default_type text/plain; return 200 "ok\\n"; }} }} }}
""")
    return ngx


def start_origin(work, origin):
    """nginx as the origin of `origin` (tls12, tls13, tls12-dhe): (process, port)."""
    port = free_port()
    ngx = write_nginx_conf(work, port, "TLSv1.3" if origin == "tls13" else "TLSv1.2",
                           # the shared harness's tls12-dhe variant: RFC 7919 ffdhe2048, RSA-2048 leaf
                           f"ssl_ciphers DHE-RSA-AES128-GCM-SHA256; ssl_dhparam {work}/ffdhe2048.pem;"
                           if origin == "tls12-dhe" else "")
    return subprocess.Popen(["nginx", "-p", ngx, "-c", os.path.join(ngx, "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port


# What tlstrace writes: both files (the benchmark's set-up, tools/bench/run.sh), the events file
# alone, or neither (the connection lines on stderr only, as `tlstrace proxy` with no output option).
OUTPUTS = ("both", "events", "none")


def proxy_command(peer, binary, work, origin_port, proxy_port, out_dir, extra, outputs="both"):
    """tlstrace (default trace categories, the files `outputs` names in out_dir) or HAProxy, one io
    thread each, reverse mode."""
    if peer == "tlstrace":
        files = []
        if outputs in ("both", "events"):
            files += ["--events", os.path.join(out_dir, "events.jsonl")]
        if outputs == "both":
            files += ["--log", os.path.join(out_dir, "trace.log")]
        return [binary, "proxy", "--mode", "reverse", "--upstream", f"127.0.0.1:{origin_port}",
                "--listen", f"127.0.0.1:{proxy_port}", "--insecure", "--threads", "1",
                "--ca-dir", os.path.join(work, "ca")] + files + extra
    # the shared harness's HAProxy relay, one thread, upstream sessions not reused
    with open(os.path.join(work, "haproxy.cfg"), "w") as f:
        f.write(f"""global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend f
  bind 127.0.0.1:{proxy_port} ssl crt {work}/haproxy.pem alpn http/1.1
  default_backend b
backend b
  server s 127.0.0.1:{origin_port} ssl verify none no-ssl-reuse
""")
    return ["haproxy", "-db", "-f", os.path.join(work, "haproxy.cfg")]


def probe(work, proxy_port, n):
    """n fresh full handshakes through the proxy, one after the other, one GET each."""
    subprocess.run([os.path.join(work, "tlsprobe"), "new", "127.0.0.1", str(proxy_port), "/tiny", str(n), "0"],
                   check=True, stdout=subprocess.DEVNULL, timeout=1800)


def run_once(args, work, n):
    origin, origin_port = start_origin(work, args.origin)
    proxy_port = free_port()
    out_dir = os.path.join(work, f"cg-{n}")
    shutil.rmtree(out_dir, ignore_errors=True)  # (a kept directory's earlier run)
    os.makedirs(out_dir)
    cg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir}/callgrind.out.%p"]
    cmd = proxy_command(args.peer, args.bin, work, origin_port, proxy_port, out_dir, args.extra, args.outputs)
    proxy = subprocess.Popen(cg + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(origin_port, origin)
        wait_port(proxy_port, proxy)
        probe(work, proxy_port, n)
    finally:
        stop(proxy)
        stop(origin)
    total, objects = 0, collections.Counter()
    for path in glob.glob(os.path.join(out_dir, "callgrind.out.*")):
        text = open(path).read()
        m = re.search(r"^totals: (\d+)", text, re.M) or re.search(r"^summary: (\d+)", text, re.M)
        total += int(m.group(1))
        objects.update(parse_objects(path))
    return total, objects


def prepare(work, origin):
    """Certificates (the origin's, HAProxy's ECDSA P-256 leaf like tlstrace's forged one), the
    ffdhe2048 parameters and the harness's tlsprobe client, in work/."""
    key = ["rsa:2048"] if origin == "tls12-dhe" else ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    for name, k in (("origin", key), ("haproxy", ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"])):
        subprocess.run(["openssl", "req", "-x509", "-newkey", *k, "-nodes", "-keyout", f"{work}/{name}.key",
                        "-out", f"{work}/{name}.crt", "-days", "30", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    shutil.copy(f"{work}/origin.crt", f"{work}/origin.pem")
    with open(f"{work}/haproxy.pem", "w") as f:
        f.write(open(f"{work}/haproxy.crt").read() + open(f"{work}/haproxy.key").read())
    subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048",
                    "-out", f"{work}/ffdhe2048.pem"], check=True, capture_output=True)
    subprocess.run(["gcc", "-O2", "-o", f"{work}/tlsprobe", TLSPROBE_SRC, "-lssl", "-lcrypto"], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", choices=["tlstrace", "haproxy"], default="tlstrace")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-release", "tlstrace"))
    ap.add_argument("--origin", choices=["tls12", "tls13", "tls12-dhe"], default="tls12")
    ap.add_argument("--n1", type=int, default=40)
    ap.add_argument("--n2", type=int, default=240)
    ap.add_argument("--by-object", action="store_true")
    ap.add_argument("--outputs", choices=OUTPUTS, default="both",
                    help="tlstrace's files: events and text trace (default), events only, none")
    ap.add_argument("--keep", metavar="DIR", help="keep the work files (callgrind outputs) in DIR")
    ap.add_argument("extra", nargs="*", help="more proxy options (after --)")
    args = ap.parse_args()
    for tool in ["valgrind", "nginx", "gcc"] + (["haproxy"] if args.peer == "haproxy" else []):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed")
    with tempfile.TemporaryDirectory(prefix="tlstrace-cg-") as tmp:
        work = args.keep or tmp
        os.makedirs(work, exist_ok=True)
        prepare(work, args.origin)
        t1, o1 = run_once(args, work, args.n1)
        t2, o2 = run_once(args, work, args.n2)
    per = (t2 - t1) / (args.n2 - args.n1)
    outputs = f" (outputs: {args.outputs})" if args.peer == "tlstrace" else ""
    print(f"{args.peer} {args.origin} {' '.join(args.extra)}{outputs}: "
          f"{per / 1e6:.3f} M instructions per new connection")
    if args.by_object:
        for ob in sorted(o2, key=lambda k: -(o2[k] - o1[k])):
            d = (o2[ob] - o1[ob]) / (args.n2 - args.n1)
            if d > 1000:
                print(f"  {d / 1e6:8.3f} M  {ob}")


if __name__ == "__main__":
    main()
