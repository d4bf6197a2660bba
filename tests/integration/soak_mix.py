"""Good clients mixed with hostile ones on one explicit proxy, for a given time (test_soak).

Good: TLS through CONNECT to nginx (a small page and 1 MiB, TLS 1.2 and 1.3), and plain TCP through
CONNECT to a server that speaks first (banner, then echo). Each connects from a loopback address of
its own (127.w.x.y: the conn.open `client` names it alone, ports are reused within seconds) and
records the bytes it sent and received itself; after the run each must have exactly one connection
in the events whose conn.close carries those counts.
Hostile: slowloris on the request head, half-open clients (silent, silent after the tunnel, half a
ClientHello then FIN), garbage to the port and through a tunnel, a raw ClientHello with control
characters and invalid UTF-8 in SNI and ALPN, resets in the middle of the handshake, a reset after
a banner, and TLS 1.2 to an origin with a custom 4096-bit DH prime (the prime test).
Every wait is bounded; every server is stopped by the test's clean-up."""
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import threading
import time

from harness import CHECK_EVENTS, DEADLINE, SServer
from hostile import (BANNER, BannerServer, connect, drain, hostile_client_hello, real_client_hello, recv_exactly,
                     rst_close)

GOOD_WORKERS = int(os.environ.get("TLSTRACE_SOAK_GOOD_WORKERS", "6"))
HOSTILE_WORKERS = int(os.environ.get("TLSTRACE_SOAK_HOSTILE_WORKERS", "6"))
SLOW_LIMIT_S = 14  # a hostile client's longest wait: the proxy's handshake timeout (10 s) and some


def fd_counts(pid):
    # Per thread: the io threads keep their sockets in descriptor tables of their own, and
    # /proc/PID/fd shows only the main thread's.
    counts = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            counts[tid] = len(os.listdir(f"/proc/{pid}/task/{tid}/fd"))
        except FileNotFoundError:  # the thread ended meanwhile
            pass
    return counts


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_lines(path):
    """Every line, as bytes (a build that does not escape peer strings writes invalid UTF-8)."""
    with open(path, "rb") as f:
        return f.read().splitlines()


def lenient(line):
    return json.loads(line.decode("utf-8", "surrogateescape"), strict=False)


def strict_ok(line):
    try:
        json.loads(line.decode("utf-8"))
        return True
    except ValueError:  # UnicodeDecodeError among them
        return False


def lifecycle(lines):
    """conn.open and conn.close events, parsed leniently (only those lines are parsed)."""
    opens, closes = [], {}
    for line in lines:
        if b'"event":"conn.open"' in line:
            opens.append(lenient(line))
        elif b'"event":"conn.close"' in line:
            e = lenient(line)
            closes[e["conn"]] = e
    return opens, closes


class Mix:
    def __init__(self, tc, proxy, nginx, rsa_cert, rsa_key):
        from test_kex import pkcs3_params  # a custom prime, not a safe one: the costly test
        self.tc, self.p, self.nginx = tc, proxy, nginx
        self.banner = BannerServer()
        tc._stops.append(self.banner.stop)
        dh = pkcs3_params(tc.dir, 4096)
        self.dh = SServer(tc.dir, rsa_cert, rsa_key, ("-dhparam", dh, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"),
                          name="s_server-dh4096")
        tc._stops.append(self.dh.stop)
        self.good = []  # (kind, client address, sent, received, error)
        self.hostile = {}  # kind -> count
        self.lock = threading.Lock()
        self.end = 0.0

    # ---------------------------------------------------------------------------------------------
    # Good clients: they record what they sent and received, as the peers saw it.

    def good_tls(self, i, source):
        ctx = ssl.create_default_context(cafile=self.p.ca)
        if i % 2:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        s, head, rest = connect(self.p.port, f"localhost:{self.nginx.port}", source=source)
        addr = "%s:%d" % s.getsockname()
        sent = received = 0
        try:
            if not head.startswith("HTTP/1.1 200") or rest:
                raise AssertionError(f"CONNECT answered {head!r} {rest!r}")
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                path = "/big" if i % 5 == 0 else "/"
                req = f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode()
                t.sendall(req)
                sent = len(req)
                data = b""
                while True:
                    chunk = t.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                received = len(data)
                if b" 200 OK" not in data[:64] or (path == "/big" and len(data) <= (1 << 20)):
                    raise AssertionError(f"bad response: {data[:64]!r} ({len(data)} bytes)")
            return ("tls", addr, sent, received, None)
        except (OSError, AssertionError, ssl.SSLError) as e:
            s.close()
            return ("tls", addr, sent, received, repr(e))

    def good_banner(self, i, source):
        s, head, rest = connect(self.p.port, f"127.0.0.1:{self.banner.port}", source=source)
        addr = "%s:%d" % s.getsockname()
        try:
            with s:
                if not head.startswith("HTTP/1.1 200"):
                    raise AssertionError(f"CONNECT answered {head!r}")
                got = recv_exactly(s, len(BANNER), rest)
                if got != BANNER:
                    raise AssertionError(f"banner {got!r}")
                payload = os.urandom(random.Random(i).randint(1, 64 * 1024))
                s.sendall(payload)
                if recv_exactly(s, len(payload)) != payload:
                    raise AssertionError("echo differs")
                s.shutdown(socket.SHUT_WR)
                if s.recv(1) != b"":
                    raise AssertionError("bytes after the echo")
            return ("banner", addr, len(payload), len(BANNER) + len(payload), None)
        except (OSError, AssertionError) as e:
            return ("banner", addr, -1, -1, repr(e))

    # ---------------------------------------------------------------------------------------------
    # Hostile clients: what they get does not matter, only that the good ones do not suffer.

    def slowloris(self):
        s = socket.create_connection(("127.0.0.1", self.p.port), timeout=DEADLINE)
        with s:
            head = f"CONNECT localhost:{self.nginx.port} HTTP/1.1\r\n" + "X-Slow: x\r\n" * 40
            end = time.time() + SLOW_LIMIT_S
            try:
                for ch in head.encode():
                    if time.time() > end:
                        break
                    s.sendall(bytes([ch]))
                    time.sleep(0.3)
            except OSError:  # the proxy gave up on it (handshake timeout): as it should
                pass

    def half_open(self, variant):
        if variant == 0:  # connects and says nothing
            s = socket.create_connection(("127.0.0.1", self.p.port), timeout=DEADLINE)
        else:
            s, _, _ = connect(self.p.port, f"localhost:{self.nginx.port}")
            if variant == 2:  # half a ClientHello, then its FIN
                hello = real_client_hello()
                s.sendall(hello[:len(hello) // 2])
                s.shutdown(socket.SHUT_WR)
        with s:
            drain(s, SLOW_LIMIT_S)

    def garbage(self, through_tunnel):
        junk = bytes([0x80 | random.randrange(0x80)]) + os.urandom(random.randint(1, 8192))
        if through_tunnel:
            s, _, _ = connect(self.p.port, f"localhost:{self.nginx.port}")
        else:
            s = socket.create_connection(("127.0.0.1", self.p.port), timeout=DEADLINE)
        with s:
            try:
                s.sendall(junk)
            except OSError:
                return
            drain(s, SLOW_LIMIT_S)

    def hostile_hello(self):
        s, _, _ = connect(self.p.port, f"localhost:{self.nginx.port}")
        with s:
            s.sendall(hostile_client_hello())
            drain(s, SLOW_LIMIT_S)

    def rst_mid_handshake(self, after_answer):
        s, _, _ = connect(self.p.port, f"localhost:{self.nginx.port}")
        s.sendall(real_client_hello())
        if after_answer:  # the proxy's ServerHello flight is under way
            s.settimeout(DEADLINE)
            try:
                s.recv(100)
            except OSError:
                pass
        else:
            time.sleep(random.random() * 0.02)
        rst_close(s)

    def banner_rst(self):
        s, _, rest = connect(self.p.port, f"127.0.0.1:{self.banner.port}")
        if not rest:
            try:
                s.recv(5)
            except OSError:
                pass
        rst_close(s)

    def huge_dh(self):
        ctx = ssl.create_default_context(cafile=self.p.ca)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        s, _, _ = connect(self.p.port, f"localhost:{self.dh.port}", timeout=30)
        try:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"GET / HTTP/1.0\r\n\r\n")
                drain(t, 30)
        except (OSError, ssl.SSLError):
            s.close()

    def hostile_kinds(self):
        return [
            ("slowloris", self.slowloris),
            ("half_open_silent", lambda: self.half_open(0)),
            ("half_open_tunnel", lambda: self.half_open(1)),
            ("half_hello_fin", lambda: self.half_open(2)),
            ("garbage", lambda: self.garbage(False)),
            ("garbage_tunnel", lambda: self.garbage(True)),
            ("hostile_sni_alpn", self.hostile_hello),
            ("rst_mid_handshake", lambda: self.rst_mid_handshake(False)),
            ("rst_after_answer", lambda: self.rst_mid_handshake(True)),
            ("banner_rst", self.banner_rst),
            ("huge_dh_prime", self.huge_dh),
        ]

    # ---------------------------------------------------------------------------------------------

    def good_worker(self, w):
        n = 0
        while time.time() < self.end:
            source = f"127.{10 + w}.{(n >> 8) & 255}.{1 + (n & 255) % 254}"
            i = w + n * GOOD_WORKERS
            try:
                rec = self.good_tls(i, source) if i % 3 else self.good_banner(i, source)
            except OSError as e:  # not even connected
                rec = ("connect", source, -1, -1, repr(e))
            with self.lock:
                self.good.append(rec)
            n += 1

    def hostile_worker(self, w):
        # Half the hostile workers hold connections until the proxy's timeouts (slowloris, half-open),
        # the other half churn through the quick kinds.
        slow = {"slowloris", "half_open_silent", "half_open_tunnel", "half_hello_fin"}
        kinds = [k for k in self.hostile_kinds() if (k[0] in slow) == (w % 2 == 0)]
        i = w
        while time.time() < self.end:
            name, fn = kinds[i % len(kinds)]
            try:
                fn()
            except (OSError, ssl.SSLError):
                pass  # refused, reset, timed out: what hostile clients get
            with self.lock:
                self.hostile[name] = self.hostile.get(name, 0) + 1
            i += 1

    def wait_closed(self, n, timeout):
        """Until n conn.close (None: one per conn.open) or the timeout: (lines, opens, closes)."""
        end = time.time() + timeout
        while True:
            lines = read_lines(self.p.events)
            opens, closes = lifecycle(lines)
            if len(closes) >= (len(opens) if n is None else n) or time.time() > end:
                return lines, opens, closes
            time.sleep(0.2)

    def probe(self):
        """Whether this build escapes peer strings into valid UTF-8 JSON (issue [8] item 3): one
        hostile ClientHello alone, then every line so far parsed strictly."""
        self.hostile_hello()
        self.wait_closed(3, DEADLINE)
        return all(strict_ok(line) for line in read_lines(self.p.events))

    def run(self, seconds):
        tc, p = self.tc, self.p
        pid = p.proc.p.pid
        # Warm-up on both io threads (CA, forged leaves, caches, resolver threads), so that the
        # threads and files counted below are the same before and after.
        for i in range(2):
            rec = self.good_tls(i, None)
            tc.assertIsNone(rec[4], rec)
        self.wait_closed(2, DEADLINE)
        escapes = self.probe()
        time.sleep(0.5)
        idle_fds, idle_rss = fd_counts(pid), rss_kib(pid)
        t0 = time.time()
        self.end = t0 + seconds
        threads = [threading.Thread(target=self.good_worker, args=(w,), daemon=True) for w in range(GOOD_WORKERS)]
        threads += [threading.Thread(target=self.hostile_worker, args=(w,), daemon=True)
                    for w in range(HOSTILE_WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=seconds + 120)
        tc.assertFalse(any(t.is_alive() for t in threads), "a client did not finish")
        elapsed = time.time() - t0

        # Every connection ends in the events (hostile ones included), then the accounting.
        lines, opens, closes = self.wait_closed(None, 60)
        tc.assertEqual({e["conn"] for e in opens}, set(closes), "connections without conn.close")
        by_client = {}
        for e in opens:
            by_client.setdefault(e["client"], []).append(e["conn"])
        problems = []
        for kind, addr, sent, received, err in self.good:
            conns = by_client.get(addr, [])
            if err:  # with what the proxy says of it
                why = "; ".join(f"conn {c}: {closes[c]['outcome']}" for c in conns if c in closes)
                problems.append(f"{kind} from {addr}: {err} ({why or 'no connection in the events'})")
                continue
            if len(conns) != 1:
                problems.append(f"{kind} from {addr}: {len(conns)} connections in the events")
                continue
            c = closes[conns[0]]
            if (c["bytes_client_to_server"], c["bytes_server_to_client"]) != (sent, received):
                problems.append(f"{kind} conn {conns[0]}: client sent/received {sent}/{received}, conn.close says "
                                f"{c['bytes_client_to_server']}/{c['bytes_server_to_client']} ({c['outcome']})")
        time.sleep(1)
        fds, rss = fd_counts(pid), rss_kib(pid)
        invalid = sum(1 for line in lines if not strict_ok(line))
        # The DH origin really made the proxy test its 4096-bit prime (not just fail before it).
        dh4096 = sum(1 for line in lines if b'"event":"tls.key_exchange"' in line and b'"bits":4096' in line)
        good_tls = sum(1 for r in self.good if r[0] == "tls")
        print(f"\nhostile mix: {elapsed:.0f} s, {len(opens)} connections: {len(self.good)} good ({good_tls} TLS, "
              f"{len(self.good) - good_tls} banner-first plain), {sum(self.hostile.values())} hostile "
              f"{dict(sorted(self.hostile.items()))}; good problems {len(problems)}; fds {idle_fds} -> {fds}; "
              f"RSS {idle_rss} -> {rss} KiB; {dh4096} DHE-4096 key exchanges; {len(lines)} event lines, {invalid} not strict UTF-8 JSON"
              + ("" if escapes else " (this build does not escape peer strings: not asserted)"))
        tc.assertEqual(problems[:20], [], f"{len(problems)} good clients lost something")
        tc.assertGreater(len(self.good), 0)
        tc.assertTrue(all(self.hostile.get(k, 0) > 0 for k, _ in self.hostile_kinds()) or seconds < 30,
                      f"not every hostile kind ran: {self.hostile}")
        tc.assertGreater(dh4096, 0, "the DH origin never got to its key exchange")
        tc.assertEqual(fds, idle_fds, "file descriptors leaked (per thread)")
        if not os.environ.get("TLSTRACE_SANITIZER_BUILD"):
            tc.assertLess(rss - idle_rss, 64 * 1024, "RSS grew by more than 64 MiB")
        if escapes:
            tc.assertEqual(invalid, 0, "event lines that are not valid UTF-8 JSON")
            if os.path.exists(CHECK_EVENTS):
                r = subprocess.run([sys.executable, CHECK_EVENTS, p.events], capture_output=True, timeout=600)
                tc.assertEqual(r.returncode, 0, r.stdout.decode()[:2000])
