"""The exposure rules with real non-loopback clients, run by test_exposure.py inside a network (and
mount) namespace of its own (`unshare -rnm`): there the loopback interface carries 10.1.2.3,
100.64.1.1 (CGNAT), 169.254.7.7 (link-local) and fd00::1 (ULA), a veth pair leads to a second
namespace with an HTTP origin at 10.9.0.2 (a server that is not the proxy's host), and /etc/hosts
is a private copy naming evil.test (127.0.0.1), mixed.test (127.0.0.1 and 10.9.0.2) and wide.test
(10.1.2.3). Each verdict is checked against the peers' own view: the client's HTTP status, the
bytes the origin served, and whether the internal service saw a connection at all."""
import os
import secrets
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import DEADLINE, TLSTRACE, ProxyTestCase, Proc, of, read_all, run, send_connect

ADDRS = ["10.1.2.3/24", "100.64.1.1/32", "169.254.7.7/16"]
HOSTS = ("127.0.0.1 localhost\n::1 localhost\n127.0.0.1 evil.test\n127.0.0.1 mixed.test\n"
         "10.9.0.2 mixed.test\n10.1.2.3 wide.test\n")
REMOTE = "10.9.0.2"
NS = {}  # what setUpModule started: the second namespace's holder and its origin


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True, timeout=DEADLINE)


def setUpModule():
    if os.environ.get("TLSTRACE_EXPOSURE_NETNS") != "1":
        raise unittest.SkipTest("run by test_exposure.py inside unshare -rnm (it changes addresses and /etc/hosts)")
    sh("ip link set lo up")
    for a in ADDRS:
        sh(f"ip addr add {a} dev lo")
    sh("ip -6 addr add fd00::1/128 dev lo")
    d = tempfile.mkdtemp(prefix="tlstrace-ns-")
    with open(f"{d}/hosts", "w") as f:
        f.write(HOSTS)
    sh(f"mount --bind {d}/hosts /etc/hosts")
    # The second namespace: held by a sleep (ended by its PID), joined with nsenter.
    sh("ip link add veth0 type veth peer name veth1 && ip addr add 10.9.0.1/24 dev veth0 && ip link set veth0 up")
    holder = subprocess.Popen(["unshare", "-n", "sleep", "600"], start_new_session=True)
    NS["holder"] = holder
    time.sleep(0.2)
    sh(f"ip link set veth1 netns {holder.pid}")
    enter = ["nsenter", f"--net=/proc/{holder.pid}/ns/net"]
    subprocess.run([*enter, "sh", "-c", f"ip link set lo up && ip addr add {REMOTE}/24 dev veth1 && "
                    "ip link set veth1 up"], check=True, timeout=DEADLINE)
    NS["marker"] = "remote-origin-" + secrets.token_hex(8)
    os.makedirs(f"{d}/www")
    with open(f"{d}/www/marker.txt", "w") as f:
        f.write(NS["marker"])
    NS["port"] = 18000 + secrets.randbelow(20000)  # a fresh namespace: nothing else listens there
    NS["origin"] = Proc([*enter, "python3", "-m", "http.server", "--bind", REMOTE, str(NS["port"]),
                         "--directory", f"{d}/www"], f"{d}/remote-origin.log")
    end = time.time() + DEADLINE
    while time.time() < end:
        try:
            socket.create_connection((REMOTE, NS["port"]), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the origin in the second namespace did not start: " + NS["origin"].output())


def tearDownModule():
    if "origin" in NS:
        NS["origin"].stop()
    if "holder" in NS:
        NS["holder"].kill()
        NS["holder"].wait(timeout=DEADLINE)


class Internal:
    """An internal HTTP service of the proxy's host on every address (dual-stack [::]), which
    counts the connections it sees: a refused target must leave the count unchanged."""

    def __init__(self):
        self.marker = "internal-service-" + secrets.token_hex(8)
        self.sock = socket.socket(socket.AF_INET6)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.sock.bind(("::", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.running = True
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        while self.running:
            try:
                c, peer = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(peer)
            with c:
                c.settimeout(DEADLINE)
                try:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = c.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                    body = self.marker.encode()
                    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                except OSError:
                    pass

    def stop(self):
        self.running = False
        self.t.join(timeout=5)
        self.sock.close()


def connect_from(src, dst, port):
    s = socket.socket(socket.AF_INET6 if ":" in src else socket.AF_INET)
    s.settimeout(DEADLINE)
    s.bind((src, 0))
    s.connect((dst, port))
    return s


def tunnel(src, dst, port, target, path="/marker.txt"):
    """CONNECT `target` from source address `src`; on 200 an HTTP GET through the tunnel.
    Returns (status line, everything after the proxy's answer head or the refusal body)."""
    with connect_from(src, dst, port) as s:
        head = send_connect(s, target)
        status, _, rest = head.partition(b"\r\n\r\n")
        status = status.split(b"\r\n")[0].decode()
        if status.startswith("HTTP/1.1 200"):
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        return status, (rest + read_all(s)).decode(errors="replace")


class Exposure(ProxyTestCase):
    def internal(self):
        srv = Internal()
        self._stops.append(srv.stop)
        return srv

    def test_default_serves_loopback_clients_only(self):
        """10.x, 100.64.x and fd00:: clients reaching a loopback listener (as through a port forward
        or a DNAT rule) are refused with a 403 and conn.refused; a 127.0.0.1 client is served."""
        srv = self.internal()
        p4 = self.proxy()
        p6 = self.proxy("-l", "[::1]:0")
        for src, dst, p in (("10.1.2.3", "127.0.0.1", p4), ("100.64.1.1", "127.0.0.1", p4), ("fd00::1", "::1", p6)):
            status, body = tunnel(src, dst, p.port, f"127.0.0.1:{srv.port}")
            self.assertTrue(status.startswith("HTTP/1.1 403 "), (src, status))
            self.assertIn(f"client {src} is not on loopback", body)
        # curl's own view, from a source address of its choosing.
        r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "10.1.2.3", "-x",
                 f"http://127.0.0.1:{p4.port}", f"http://127.0.0.1:{srv.port}/"])
        self.assertEqual(r.stdout, b"403", r.stderr)
        self.assertEqual(srv.accepted, [], "a refused client reached the internal service")
        status, body = tunnel("127.0.0.1", "127.0.0.1", p4.port, f"127.0.0.1:{srv.port}")
        self.assertTrue(status.startswith("HTTP/1.1 200"), status)
        self.assertIn(srv.marker, body)
        evs = p4.wait_events(lambda evs: len(of(evs, "conn.refused")) == 3 and of(evs, "conn.close"))
        refused = of(evs, "conn.refused")
        self.assertEqual(sorted(e["client"].rsplit(":", 1)[0] for e in refused), ["10.1.2.3", "10.1.2.3", "100.64.1.1"])
        self.assertTrue(all("--allow-remote" in e["reason"] for e in refused))
        self.assertEqual(len(of(evs, "conn.open")), 1)  # only the loopback client's connection
        evs6 = p6.wait_events(lambda evs: of(evs, "conn.refused"))
        self.assertTrue(of(evs6, "conn.refused")[0]["client"].startswith("[fd00::1]:"))
        with open(p4.trace) as f:  # the text trace shows them too
            self.assertEqual(f.read().count("conn.refused"), 3)

    def test_listen_beyond_loopback_needs_allow_remote(self):
        for listen in ("0.0.0.0:0", "[::]:0", "10.1.2.3:0", "[fd00::1]:0", "wide.test:0"):
            r = run([TLSTRACE, "proxy", "-l", listen], env=dict(os.environ, TLSTRACE_HOME=f"{self.dir}/home"))
            self.assertEqual(r.returncode, 2, (listen, r.stderr))
            self.assertIn(b"is not a loopback address", r.stderr)
            self.assertIn(b"--allow-remote", r.stderr)
        r = run([TLSTRACE, "proxy", "-l", "wide.test:0"], env=dict(os.environ, TLSTRACE_HOME=f"{self.dir}/home"))
        self.assertIn(b"wide.test (10.1.2.3)", r.stderr)  # the name and what it resolved to

    def test_allow_remote_serves_them_but_not_to_the_proxys_host(self):
        srv = self.internal()
        p = self.proxy("-l", "[::]:0", "--allow-remote")
        self.assertIn("--allow-remote without --proxy-auth", p.proc.output())
        # Non-loopback clients are served: a server beyond the host answers through the proxy.
        for src in ("10.1.2.3", "100.64.1.1", "fd00::1"):
            status, body = tunnel(src, src, p.port, f"{REMOTE}:{NS['port']}")
            self.assertTrue(status.startswith("HTTP/1.1 200"), (src, status))
            self.assertIn(NS["marker"], body)
        # ...but not the host's own services, by literal, by name (resolved), or by own address.
        targets = [
            (f"127.0.0.1:{srv.port}", "127.0.0.1 is loopback"),
            (f"localhost:{srv.port}", " is loopback"),
            (f"evil.test:{srv.port}", "127.0.0.1 is loopback"),
            (f"[::1]:{srv.port}", "::1 is loopback"),
            (f"[::ffff:127.0.0.1]:{srv.port}", "127.0.0.1 is loopback"),
            (f"0.0.0.0:{srv.port}", "0.0.0.0 is unspecified"),
            (f"169.254.7.7:{srv.port}", "169.254.7.7 is link-local"),
            (f"10.1.2.3:{srv.port}", "10.1.2.3 is the proxy's own address"),
            (f"100.64.1.1:{srv.port}", "100.64.1.1 is the proxy's own address"),
            (f"[fd00::1]:{srv.port}", "fd00::1 is the proxy's own address"),
        ]
        for target, why in targets:
            status, body = tunnel("10.1.2.3", "10.1.2.3", p.port, target)
            self.assertTrue(status.startswith("HTTP/1.1 403 "), (target, status))
            self.assertIn(why, body)
            self.assertIn("--allow-private-targets", body)
        r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "10.1.2.3", "-x",
                 f"http://10.1.2.3:{p.port}", f"http://evil.test:{srv.port}/"])  # absolute-form
        self.assertEqual(r.stdout, b"403", r.stderr)
        self.assertEqual(srv.accepted, [], "a refused target reached the internal service")
        # A name with a loopback and a remote address: only the remote one is tried.
        status, body = tunnel("10.1.2.3", "10.1.2.3", p.port, f"mixed.test:{NS['port']}")
        self.assertTrue(status.startswith("HTTP/1.1 200"), status)
        self.assertIn(NS["marker"], body)
        # A loopback client is not affected.
        status, body = tunnel("127.0.0.1", "127.0.0.1", p.port, f"localhost:{srv.port}")
        self.assertTrue(status.startswith("HTTP/1.1 200"), status)
        self.assertIn(srv.marker, body)
        n = 3 + len(targets) + 1 + 1 + 1
        evs = p.conn_closed(n)
        refused = of(evs, "conn.refused")
        self.assertEqual(len(refused), len(targets) + 1)
        self.assertTrue(all(e["client"].startswith("10.1.2.3:") or e["client"].startswith("[::ffff:10.1.2.3]:")
                            for e in refused), refused)
        self.assertEqual([e["status"] for e in of(evs, "proxy.error")], [403] * (len(targets) + 1))
        mixed = [e for e in of(evs, "tcp.connect") if e.get("target", "").startswith("mixed.test:")]
        self.assertEqual(mixed[0]["peer"], f"{REMOTE}:{NS['port']}")
        self.assertIn("FAILED refused", p.proc.output())  # the console's connection lines

    def test_allow_private_targets_lets_them_through(self):
        srv = self.internal()
        p = self.proxy("-l", "[::]:0", "--allow-remote", "--allow-private-targets")
        targets = [f"127.0.0.1:{srv.port}", f"evil.test:{srv.port}", f"[::1]:{srv.port}",
                   f"169.254.7.7:{srv.port}", f"10.1.2.3:{srv.port}", f"[fd00::1]:{srv.port}"]
        for target in targets:
            status, body = tunnel("10.1.2.3", "10.1.2.3", p.port, target)
            self.assertTrue(status.startswith("HTTP/1.1 200"), (target, status))
            self.assertIn(srv.marker, body)
        self.assertEqual(len(srv.accepted), len(targets))
        evs = p.conn_closed(len(targets))
        self.assertEqual(of(evs, "conn.refused"), [])

    def test_reverse_mode_target_is_the_operators(self):
        """In reverse mode the client does not choose the target: a loopback --upstream is served to
        an allowed remote client."""
        s = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{s.port}", "--upstream-ca", self.pki.ca,
                       "-l", "[::]:0", "--allow-remote")
        self.assertNotIn("--allow-remote without --proxy-auth", p.proc.output())  # no relay to choose
        r = run(["curl", "-sS", "--interface", "10.1.2.3", "--cacert", p.ca, "--resolve",
                 f"localhost:{p.port}:10.1.2.3", f"https://localhost:{p.port}/"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"Cipher", r.stdout)  # s_server -www's status page
        evs = p.conn_closed()
        self.assertEqual(of(evs, "conn.refused"), [])


if __name__ == "__main__":
    unittest.main()
