"""Head-of-line blocking (issue 8, item 4): with one io thread, a slow DNS name or a large custom
DH prime's safe-prime test must not delay the other connections on that thread.

Slow DNS: a tiny DNS server of the test's own (UDP, on a 127/8 address, port 53) answers some
names late and others never; the proxy runs in a mount namespace of its own where /etc/resolv.conf
names that server (unshare -m + bind mount; root only). Good clients CONNECT to an IP literal and
to an /etc/hosts name meanwhile and must be served in normal time.

Large prime: an openssl s_server with a fresh 4096-bit DH prime; its verdict is compared with
`openssl prime` on p and (p-1)/2 (an independent test), and other clients must be served in
normal time while the proxy's test runs."""
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import threading
import time
import unittest

from harness import DEADLINE, ProxyTestCase, of, rsa_cert, run, send_connect
from test_kex import pkcs3_params

GOOD_LIMIT = 1.0  # seconds: a CONNECT to a local echo server is a few ms; 1 s is far from 5-10 s


class SlowDns:
    """UDP DNS on ip:53. Names under `late.test` are answered (127.0.0.1, A only) after `delay`
    seconds; names under `dead.test` never; anything else NXDOMAIN at once. Records the names asked."""

    def __init__(self, ip, delay):
        self.ip, self.delay, self.asked = ip, delay, []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 53))
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                q, addr = self.sock.recvfrom(512)
            except OSError:
                continue
            name, qtype, end = self._question(q)
            if name is None:
                continue
            self.asked.append(name)
            if name.endswith("dead.test"):
                continue
            if name.endswith("late.test"):
                threading.Timer(self.delay, self._answer, (q, addr, end, qtype, True)).start()
            else:
                self._answer(q, addr, end, qtype, False)

    @staticmethod
    def _question(q):
        # RFC 1035 4.1.2: after the 12-byte header, QNAME as labels, then QTYPE and QCLASS.
        labels, i = [], 12
        while i < len(q) and q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
            i += 1 + q[i]
        if i + 5 > len(q):
            return None, 0, 0
        return ".".join(labels).lower(), struct.unpack("!H", q[i + 1:i + 3])[0], i + 5

    def _answer(self, q, addr, end, qtype, found):
        a = found and qtype == 1
        flags = 0x8180 if found else 0x8183  # response, RD+RA; rcode 3 = NXDOMAIN
        header = q[:2] + struct.pack("!HHHHH", flags, 1, 1 if a else 0, 0, 0)
        body = q[12:end]
        if a:  # RFC 1035 4.1.3: name pointer to the question, A, IN, TTL, 4 bytes
            body += struct.pack("!HHHIH", 0xC00C, 1, 1, 30, 4) + socket.inet_aton("127.0.0.1")
        try:
            if not self.stopping:
                self.sock.sendto(header + body, addr)
        except OSError:
            pass

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


def connect_via(proxy_port, target, timeout=DEADLINE):
    """CONNECT target through the proxy, then an echo round trip. Returns (status line, seconds)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout) as s:
        head = send_connect(s, target)
        status = head.split(b"\r\n", 1)[0].decode()
        if " 200 " in status + " ":
            s.sendall(b"ping")
            got = b""
            while len(got) < 4:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            if got != b"ping":
                status += " (no echo)"
    return status, time.monotonic() - t0


class GoodClients:
    """CONNECTs to `targets` in turn, every `every` seconds, in a thread, until stopped."""

    def __init__(self, port, targets, every=0.1):
        self.port, self.targets, self.every = port, targets, every
        self.results = []  # (target, status, seconds, finished at)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        i = 0
        while not self.stopping:
            target = self.targets[i % len(self.targets)]
            try:
                status, secs = connect_via(self.port, target)
            except OSError as e:
                status, secs = f"error {e}", DEADLINE
            self.results.append((target, status, secs, time.time()))
            i += 1
            time.sleep(self.every)

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=DEADLINE + 5)


class SlowResolver(ProxyTestCase):
    def setUp(self):
        super().setUp()
        if os.geteuid() != 0 or not shutil.which("unshare"):
            self.skipTest("needs root and unshare(1) for a mount namespace")
        probe = run(["unshare", "-m", "true"])
        if probe.returncode != 0:
            self.skipTest("cannot create a mount namespace: " + probe.stderr.decode())
        self.dns_ip = f"127.53.{random.randint(1, 254)}.{random.randint(2, 254)}"
        self.dns = SlowDns(self.dns_ip, delay=1.0)
        self._stops.append(self.dns.stop)
        resolv = f"{self.dir}/resolv.conf"
        with open(resolv, "w") as f:
            # glibc's own default (5 s, 2 attempts): a dead name blocks a lookup for ~10 s.
            f.write(f"nameserver {self.dns_ip}\noptions timeout:5 attempts:2\n")
        # The proxy alone sees this resolv.conf: a private mount namespace, then exec (same PID).
        self.prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                       'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolv]

    def test_slow_names_do_not_delay_good_connects_on_the_same_thread(self):
        echo = self.echo()
        p = self.proxy("--threads", "1", "--resolve-timeout", "2", prefix=self.prefix)
        # The fake DNS is the proxy's resolver: a late name resolves through it (after its delay).
        status, secs = connect_via(p.port, f"ok.late.test:{echo.port}")
        self.assertIn(" 200 ", status)
        self.assertGreaterEqual(secs, 0.9)
        self.assertIn("ok.late.test", self.dns.asked)

        good = GoodClients(p.port, [f"127.0.0.1:{echo.port}", f"localhost:{echo.port}"])
        self._stops.append(good.stop)
        # Bad clients: a dead name every 0.3 s (a new one each time, and one repeated), for 6 s.
        bad, threads = [], []

        def bad_connect(target):
            status, secs = connect_via(p.port, target)
            bad.append((target, status, secs))

        end = time.time() + 6
        n = 0
        while time.time() < end:
            target = f"n{n}.dead.test:{echo.port}" if n % 2 else f"same.dead.test:{echo.port}"
            t = threading.Thread(target=bad_connect, args=(target,), daemon=True)
            t.start()
            threads.append(t)
            n += 1
            time.sleep(0.3)
        for t in threads:
            t.join(timeout=DEADLINE)
        good.stop()

        self.assertGreater(len(good.results), 20)
        slow = [r for r in good.results if " 200 " not in r[1] or r[2] > GOOD_LIMIT]
        self.assertEqual(slow, [], f"good CONNECTs delayed or failed ({len(good.results)} in all)")
        self.assertTrue(any(r[0].startswith("localhost:") for r in good.results))
        # Every dead name got its 504 at the resolve timeout (2 s), not glibc's 10 s.
        self.assertEqual(len(bad), n)
        for target, status, secs in bad:
            self.assertIn(" 504 ", status, target)
            self.assertLess(secs, 2 + GOOD_LIMIT, target)
            self.assertGreaterEqual(secs, 1.9, target)
        self.assertTrue(any(name.endswith("dead.test") for name in self.dns.asked))
        evs = p.conn_closed(1 + len(good.results) + n)
        errors = [e for e in of(evs, "proxy.error") if e["status"] == 504]
        self.assertEqual(len(errors), n)
        self.assertTrue(all("name resolution timed out" in e["reason"] for e in errors), errors[:2])


def openssl_is_prime(n):
    r = run(["openssl", "prime", "-hex", format(n, "x")], timeout=120)
    out = r.stdout.decode()
    assert r.returncode == 0 and "prime" in out, out + r.stderr.decode()
    return "is not prime" not in out


def dh_prime(path):
    """p of a PEM DH parameters file, as `openssl pkeyparam -text` prints it."""
    r = run(["openssl", "pkeyparam", "-in", path, "-noout", "-text"])
    text = r.stdout.decode()
    hexdigits = []
    on = False
    for line in text.splitlines():
        if line.strip().startswith("P:") or line.strip().startswith("prime:"):
            on = True
            continue
        if on:
            if ":" not in line or line.strip()[0] not in "0123456789abcdef":
                break
            hexdigits.append(line.strip().replace(":", ""))
    return int("".join(hexdigits), 16)


DATA = os.path.join(os.path.dirname(__file__), "../data")


class LargePrime(ProxyTestCase):
    def test_fresh_random_4096_bit_prime_is_tested_off_the_io_thread(self):
        # Fresh, random: not a known group, and (almost surely) not a safe prime.
        self.prime_case(pkcs3_params(self.dir, 4096))

    def test_4096_bit_safe_prime_is_tested_off_the_io_thread(self):
        # Made once with `openssl genpkey -genparam -algorithm DH -pkeyopt dh_paramgen_prime_len:4096`
        # (17 min here): a safe prime of no known group, public data.
        self.prime_case(os.path.join(DATA, "dh4096_safe.pem"))

    def prime_case(self, dh):
        cert, key = rsa_cert(self.dir)
        p_int = dh_prime(dh)
        self.assertEqual(p_int.bit_length(), 4096)
        srv = self.s_server("-dhparam", dh, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256", cert=cert, key=key)
        echo = self.echo()
        p = self.proxy("--threads", "1", "--insecure")
        good = GoodClients(p.port, [f"127.0.0.1:{echo.port}", f"localhost:{echo.port}"], every=0.05)
        self._stops.append(good.stop)
        time.sleep(0.3)
        # The DHE connection: its handshake completes without waiting for the test, and the
        # connection stays usable until the verdict is in.
        import ssl
        ctx = ssl.create_default_context(cafile=p.ca)
        with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
            s.sendall(f"CONNECT localhost:{srv.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            self.assertIn(b" 200 ", head)
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                established = time.time()
                evs = p.wait_events(lambda e: of(e, "tls.prime_check"), timeout=120)
                t.sendall(b"GET / HTTP/1.0\r\n\r\n")
                body = b""
                while True:
                    chunk = t.recv(65536)
                    if not chunk:
                        break
                    body += chunk
        self.assertIn(b"200 ok", body)
        time.sleep(0.3)
        good.stop()

        kex = of(evs, "tls.key_exchange", "upstream")
        self.assertEqual(len(kex), 1)
        k = kex[0]
        self.assertEqual(k["group"], "custom")
        self.assertEqual(k["bits"], 4096)
        self.assertEqual(k["p"], format(p_int, "x").rjust(len(k["p"]), "0"))
        self.assertEqual(k["checks"]["safe_prime"], "pending")
        check = of(evs, "tls.prime_check", "upstream")
        self.assertEqual(len(check), 1)
        c = check[0]
        self.assertEqual(c["conn"], k["conn"])
        # Independent verdict: openssl's own primality test of p and (p-1)/2.
        safe = openssl_is_prime(p_int) and openssl_is_prime((p_int - 1) // 2)
        self.assertEqual(c["safe_prime"], safe)
        self.assertEqual(c["checks"]["safe_prime"], safe)
        self.assertEqual(c["bits"], 4096)
        self.assertEqual(c["rating"], "strong" if safe else "weak", c["reasons"])
        if not safe:
            self.assertIn("p is not a safe prime and not a known group", c["reasons"])
        # The handshake was done before the verdict: the connection did not wait for it.
        self.assertLess(established, _ts(c["ts"]))

        # Other clients on the one io thread were served in normal time while the test ran.
        t0, t1 = _ts(k["ts"]), _ts(c["ts"])
        during = [r for r in good.results if t0 <= r[3] <= t1]
        self.assertGreater(t1 - t0, 0.5, "the test was too quick to show anything")
        self.assertGreater(len(during), 3, (t1 - t0, len(good.results)))
        slow = [r for r in good.results if " 200 " not in r[1] or r[2] > GOOD_LIMIT]
        self.assertEqual(slow, [])

        # Cached: the next connection with the same prime has the verdict at once.
        with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
            s.sendall(f"CONNECT localhost:{srv.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"GET / HTTP/1.0\r\n\r\n")
                while t.recv(65536):
                    pass
        evs = p.wait_events(lambda e: len(of(e, "tls.key_exchange", "upstream")) >= 2
                            and len(of(e, "conn.close")) >= 2 + len(good.results))
        k2 = of(evs, "tls.key_exchange", "upstream")[1]
        self.assertEqual(k2["checks"]["safe_prime"], safe)
        self.assertEqual(len(of(evs, "tls.prime_check")), 1)
        summary = [e for e in of(evs, "conn.summary") if e["conn"] == k["conn"]][0]
        self.assertEqual(summary["upstream"]["key_exchange_rating"], c["rating"])
        self.check_events_file(p.events, ["tls.key_exchange", "tls.prime_check"])


def _ts(text):
    from datetime import datetime, timezone
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


if __name__ == "__main__":
    unittest.main()
