"""SOCKS5 mode (--mode socks5): curl's own SOCKS5 client (--socks5-hostname: a domain name;
--socks5: an IPv4 and an IPv6 address) and a Python client speaking RFC 1928/1929 on plain sockets.
The verdicts come from outside tlstrace: the exact reply bytes RFC 1928 section 6 and RFC 1929
section 2 prescribe, written here from the RFCs; openssl s_server's own -trace of the same
handshakes (version, suite, group), curl's -v account of its handshake, what the servers served,
and tshark decrypting both legs of the proxy's pcapng with the key log embedded in it and with the
key-log file alone."""
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import unittest

from harness import DEADLINE, ProxyTestCase, Proc, dead_port, free_port, of, run, tshark_cmd
from test_probe import server_hellos

# RFC 1928 section 6: VER 5, REP, RSV 0, ATYP 1, BND.ADDR 0.0.0.0, BND.PORT 0 (a refusal names no
# bound address; a success names the proxy's own end of its connection to the target).
def rep(code):
    return bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0])


SUCCEEDED, NOT_ALLOWED, REFUSED, CMD_UNSUPPORTED, ATYP_UNSUPPORTED = rep(0), rep(2), rep(5), rep(7), rep(8)
NO_AUTH, USER_PASS, NO_ACCEPTABLE = b"\x05\x00", b"\x05\x02", b"\x05\xff"  # method selection (section 3)
AUTH_OK, AUTH_FAILED = b"\x01\x00", b"\x01\x01"  # RFC 1929 section 2 (any non-zero status is failure)


def request(cmd, host, port):
    """RFC 1928 section 4: VER, CMD, RSV, ATYP and DST.ADDR (IPv4, IPv6 or a domain name), DST.PORT."""
    try:
        addr = b"\x01" + socket.inet_pton(socket.AF_INET, host)
    except OSError:
        try:
            addr = b"\x04" + socket.inet_pton(socket.AF_INET6, host)
        except OSError:
            addr = b"\x03" + bytes([len(host)]) + host.encode()
    return bytes([5, cmd, 0]) + addr + port.to_bytes(2, "big")


def user_pass(user, password):
    """RFC 1929 section 2: VER 1, ULEN, UNAME, PLEN, PASSWD."""
    return bytes([1, len(user)]) + user.encode() + bytes([len(password)]) + password.encode()


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def until_close(s):
    """Everything the proxy sends before it closes; a timeout (no close) fails the test."""
    data = b""
    while True:
        chunk = s.recv(4096)  # socket.timeout propagates
        if not chunk:
            return data
        data += chunk


def server_group(trace_text):
    """The key-share group of each ServerHello in an s_server -trace log, by its code point."""
    names = {23: "secp256r1", 24: "secp384r1", 29: "x25519", 30: "x448"}
    out = []
    for block in trace_text.split("ServerHello, Length=")[1:]:
        m = re.search(r"NamedGroup: [^\n]*\((\d+)\)", block.split("\nSent Record")[0])
        out.append(names.get(int(m.group(1))) if m else None)
    return out


def loopback_v6():
    try:
        with socket.socket(socket.AF_INET6) as t:
            t.bind(("::1", 0))
        return True
    except OSError:
        return False


class Socks5Mode(ProxyTestCase):
    def socks(self, p, timeout=DEADLINE):
        return socket.create_connection(("127.0.0.1", p.port), timeout=timeout)

    def tunnel(self, p, host, port, auth=None):
        """A CONNECT through the proxy, step by step as a client waits for each answer."""
        s = self.socks(p)
        s.sendall(b"\x05\x01\x02" if auth else b"\x05\x01\x00")
        self.assertEqual(recv_exact(s, 2), USER_PASS if auth else NO_AUTH)
        if auth:
            s.sendall(user_pass(*auth))
            self.assertEqual(recv_exact(s, 2), AUTH_OK)
        s.sendall(request(1, host, port))
        # VER 5, REP 0, RSV 0, then BND.ADDR and BND.PORT: the proxy's own end of its connection
        # to the target (section 6).
        head = recv_exact(s, 4)
        self.assertEqual(head[:3], SUCCEEDED[:3])
        self.assertIn(head[3], (1, 4))
        addr = recv_exact(s, 4 if head[3] == 1 else 16)
        bport = int.from_bytes(recv_exact(s, 2), "big")
        self.bound = (socket.inet_ntop(socket.AF_INET if head[3] == 1 else socket.AF_INET6, addr), bport)
        return s

    def traced_server(self, bind="127.0.0.1"):
        """s_server -www -trace with its stdout unbuffered (its trace of a handshake is in the log
        before the next connection comes), on IPv4 or IPv6 loopback."""
        env = dict(os.environ, LD_PRELOAD="/usr/libexec/coreutils/libstdbuf.so", _STDBUF_O="0")
        fam = socket.AF_INET6 if ":" in bind else socket.AF_INET
        for _ in range(5):
            with socket.socket(fam) as t:
                t.bind((bind, 0))
                port = t.getsockname()[1]
            shown = f"[{bind}]" if fam == socket.AF_INET6 else bind
            proc = Proc(["openssl", "s_server", "-accept", f"{shown}:{port}", "-cert", self.pki.cert, "-key",
                         self.pki.key, "-www", "-trace", *(["-6"] if fam == socket.AF_INET6 else [])],
                        f"{self.dir}/s_server-{port}.log", env=env)
            end = time.time() + DEADLINE
            while time.time() < end and proc.p.poll() is None:
                try:
                    socket.create_connection((bind, port), timeout=0.5).close()
                    self._stops.append(proc.stop)
                    return proc, port
                except OSError:
                    time.sleep(0.05)
            proc.stop()
        raise RuntimeError("s_server did not start")

    def wait_hellos(self, srv, n):
        end = time.time() + DEADLINE
        while time.time() < end and len(server_hellos(srv.output())) < n:
            time.sleep(0.05)
        return server_hellos(srv.output()), server_group(srv.output())

    def test_curl_hostname_ipv4_ipv6_match_the_servers_trace_and_decrypt(self):
        srv, port = self.traced_server()
        has_v6 = loopback_v6()
        pcap = f"{self.dir}/socks.pcapng"
        p = self.proxy("--mode", "socks5", "--upstream-ca", self.pki.ca, "--pcap", pcap)
        curl = ["curl", "-sS", "-v", "--max-time", "10", "--cacert", p.ca, "--http1.1"]
        runs = [  # (curl's SOCKS option, --resolve, path, the target the proxy must be asked for)
            ("--socks5-hostname", [], "/hostname", f"localhost:{port}"),
            ("--socks5", ["--resolve", f"localhost:{port}:127.0.0.1"], "/ipv4", f"127.0.0.1:{port}"),
        ]
        curl_says = []
        for opt, resolve, path, target in runs:
            r = run([*curl, opt, p.addr, *resolve, f"https://localhost:{port}{path}"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(b"s_server", r.stdout)  # the server's own page
            curl_says.append(re.search(rb"SSL connection using (\S+) / (\S+)", r.stderr).groups())
        hellos, groups = self.wait_hellos(srv, 2)
        v6 = None
        if has_v6:
            srv6, port6 = self.traced_server("::1")
            r = run([*curl, "--socks5", p.addr, "--resolve", f"localhost:{port6}:[::1]",
                     f"https://localhost:{port6}/ipv6"])
            self.assertEqual(r.returncode, 0, r.stderr)
            curl_says.append(re.search(rb"SSL connection using (\S+) / (\S+)", r.stderr).groups())
            runs.append(("--socks5", [], "/ipv6", f"[::1]:{port6}"))
            h6, g6 = self.wait_hellos(srv6, 1)
            hellos, groups = hellos + h6, groups + g6
        else:
            print("note: no ::1 on lo; the IPv6 CONNECT is not tested", file=sys.stderr)
        self.assertEqual(len(hellos), len(runs), "one ServerHello per connection in s_server's trace")
        evs = p.conn_closed(len(runs))
        self.assertEqual([o["mode"] for o in of(evs, "conn.open")], ["socks5"] * len(runs))
        reqs = of(evs, "proxy.request")
        self.assertEqual([(q["method"], q["target"]) for q in reqs], [("SOCKS5 CONNECT", t) for *_, t in runs])
        for i, (conn, hello, group) in enumerate(zip(sorted({e["conn"] for e in reqs}), hellos, groups)):
            with self.subTest(run=runs[i][2]):
                up = of(evs, "tls.established", "upstream", conn)[0]
                # The upstream leg as the server itself negotiated it.
                self.assertEqual(up["version"], hello["version"])
                self.assertEqual(up["cipher"]["name"], hello["cipher"])
                self.assertEqual(up["group"], group)
                self.assertEqual(up["sni"], "localhost")
                # The client leg as curl negotiated it (OpenSSL names: TLSv1.3 / TLS_AES_256_GCM_SHA384).
                cl = of(evs, "tls.established", "client", conn)[0]
                self.assertEqual(cl["version"].encode(), curl_says[i][0])
                self.assertEqual(cl["cipher"]["name"].encode(), curl_says[i][1])
                self.assertTrue(of(evs, "tls.trust", "upstream", conn)[0]["verified"])
                self.assertEqual(of(evs, "conn.close", conn=conn)[0]["outcome"], "ok")
        self.check_events_file(p.events, ["conn.open", "tcp.connect", "tls.message", "tls.established",
                                          "tcp.close", "conn.close"])
        self.assertEqual(p.stop(), 0)
        # tshark decrypts both legs with the secrets embedded in the capture (the client leg's TLS
        # found by tshark's own heuristics after the SOCKS5 dialogue, as after an HTTP CONNECT).
        paths = [path for _, _, path, _ in runs]
        r = run([*tshark_cmd(), "-r", pcap, "-Y", "http.request", "-T", "fields", "-e", "frame.interface_name",
                 "-e", "http.request.uri"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        seen = {tuple(line.split("\t")) for line in r.stdout.decode().splitlines() if line.strip()}
        for path in paths:
            self.assertIn(("tlstrace-client-leg", path), seen)
            self.assertIn(("tlstrace-upstream-leg", path), seen)
        # And the key-log file decrypts it alone, the embedded secrets discarded.
        stripped = f"{self.dir}/stripped.pcapng"
        r = run(["editcap", "--discard-all-secrets", pcap, stripped], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run([*tshark_cmd(), "-r", stripped, "-o", f"tls.keylog_file:{p.keylog}",
                 "-Y", "http.request", "-T", "fields", "-e", "http.request.uri"], timeout=60)
        self.assertEqual(sorted(r.stdout.decode().split()), sorted(paths * 2))

    def test_python_client_username_password(self):
        tls = self.echo(tls=True)
        p = self.proxy("--mode", "socks5", "--proxy-auth", "alice:s3cret", "--upstream-ca", self.pki.ca)
        ctx = ssl.create_default_context(cafile=p.ca)
        # A good client, held open while the bad ones come and go.
        held = ctx.wrap_socket(self.tunnel(p, "localhost", tls.port, auth=("alice", "s3cret")),
                               server_hostname="localhost")
        bad = [  # (what the client sends at once, the exact answer before the close, the cause)
            (b"\x05\x02\x00\x02" + user_pass("alice", "wrong"), USER_PASS + AUTH_FAILED, "socks_auth_failed"),
            (b"\x05\x01\x02" + user_pass("mallory", "s3cret"), USER_PASS + AUTH_FAILED, "socks_auth_failed"),
            (b"\x05\x01\x00", NO_ACCEPTABLE, "socks_no_method"),  # no-auth only, a password is required
        ]
        for send, want, _ in bad:
            with self.subTest(send=send), self.socks(p) as s:
                s.sendall(send)
                self.assertEqual(until_close(s), want)
        held.sendall(b"still here")
        self.assertEqual(recv_exact(held, 10), b"still here")
        held.close()
        # curl's own RFC 1929 client, with the right password and with a wrong one.
        srv = self.s_server()
        url = f"https://localhost:{srv.port}/"
        for user, ok in (("alice:s3cret", True), ("alice:nope", False)):
            r = run(["curl", "-sS", "--max-time", "10", "--cacert", p.ca, "--socks5-hostname", p.addr,
                     "--proxy-user", user, url])
            self.assertEqual(r.returncode == 0, ok, r.stderr)
            if ok:
                self.assertIn(b"s_server", r.stdout)
        bad.append((None, None, "socks_auth_failed"))
        evs = p.conn_closed(2 + len(bad))  # the held one, curl's good one, and the refused ones
        refused = of(evs, "conn.refused")
        self.assertEqual([e["cause"] for e in refused], [c for *_, c in bad])
        self.assertTrue(all(e["client"].startswith("127.0.0.1:") for e in refused))
        for path in (p.events, p.trace):
            with open(path) as f:
                self.assertNotIn("s3cret", f.read())
        self.assertEqual(of(evs, "tls.established", "client")[0]["sni"], "localhost")
        self.assertEqual(len(of(evs, "tcp.connect")), 2)  # the refused ones never reached a server

    def test_bad_requests_get_rfc_1928_replies_and_a_good_client_goes_on(self):
        echo = self.echo()  # plain TCP: relayed as it is, traced as plain
        dead = dead_port(self)
        p = self.proxy("--mode", "socks5")
        held = self.tunnel(p, "127.0.0.1", echo.port)
        held.sendall(b"ping\n")
        self.assertEqual(recv_exact(held, 5), b"ping\n")
        # The bound address in the reply is the proxy's socket towards the target, as the kernel
        # lists the one connection to the echo server.
        ss = subprocess.run(["ss", "-tnH", "state", "established", "dst", f"127.0.0.1:{echo.port}"],
                            capture_output=True, text=True, timeout=10).stdout.split()
        self.assertEqual(ss[-2:], [f"{self.bound[0]}:{self.bound[1]}", f"127.0.0.1:{echo.port}"])
        bad = [  # (sent at once, the exact bytes before the close, the conn.refused cause)
            (b"\x05\x01\x00" + request(2, "127.0.0.1", echo.port), NO_AUTH + CMD_UNSUPPORTED, "socks_command"),
            (b"\x05\x01\x00" + request(3, "127.0.0.1", echo.port), NO_AUTH + CMD_UNSUPPORTED, "socks_command"),
            (b"\x05\x01\x00\x05\x01\x00\x09\x7f\x00\x00\x01\x00\x50", NO_AUTH + ATYP_UNSUPPORTED,
             "socks_address_type"),
            (b"\x05\x01\x02", NO_ACCEPTABLE, "socks_no_method"),  # username/password only, none configured
            (b"\x05\x01\x00" + request(1, "127.0.0.1", dead), NO_AUTH + REFUSED, "connection_refused"),
            (b"\x05\x01\x00" + request(1, "localhost", dead), NO_AUTH + REFUSED, "connection_refused"),
            (b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00", b"\x00\x5b\x00\x00\x00\x00\x00\x00", "socks_version"),
            (b"\x05\x01\x00\x05\x01\x00\x03\x00\x00\x50", NO_AUTH + rep(1), "socks_malformed"),  # empty name
        ]
        for send, want, _ in bad:
            with self.subTest(send=send), self.socks(p) as s:
                s.sendall(send)
                self.assertEqual(until_close(s), want)
        held.sendall(b"pong\n")
        self.assertEqual(recv_exact(held, 5), b"pong\n")
        held.shutdown(socket.SHUT_WR)
        self.assertEqual(held.recv(10), b"")
        held.close()
        evs = p.conn_closed(1 + len(bad))
        self.assertEqual([e["cause"] for e in of(evs, "conn.refused")], [c for *_, c in bad])
        # The good one: plain TCP relayed and traced as such, both directions counted.
        first = of(evs, "conn.open")[0]["conn"]
        self.assertEqual(of(evs, "conn.plaintext", "client", first)[0]["first_bytes"], b"ping\n".hex())
        close = of(evs, "conn.close", conn=first)[0]
        self.assertEqual((close["bytes_client_to_server"], close["bytes_server_to_client"]), (10, 10))
        # The refused targets were tried (the kernel said no), the malformed requests never were.
        failed = [e for e in of(evs, "tcp.connect") if "error" in e]
        self.assertEqual(sorted(e["peer"] for e in failed), sorted([f"127.0.0.1:{dead}", f"localhost:{dead}"]))
        self.check_events_file(p.events, ["conn.open", "tcp.connect", "tcp.close", "conn.close"])


def why_no_netns():
    if os.geteuid() != 0:
        return "needs root for unshare -n and nsenter"
    if not shutil.which("unshare") or not shutil.which("nsenter") or not shutil.which("ip"):
        return "unshare, nsenter or ip (util-linux, iproute2) not installed"
    r = run(["unshare", "-n", "ip", "link", "set", "lo", "up"])
    if r.returncode != 0:
        return "unshare -n failed: " + r.stderr.decode().strip()
    return None


# The proxy in a network namespace of its own whose loopback interface also carries 10.1.2.3: a
# client bound to that address is a non-loopback client, nothing outside the namespace involved.
NS_SETUP = 'ip link set lo up && ip addr add 10.1.2.3/24 dev lo && exec "$0" "$@"'
CLIENT = """
import socket, sys
s = socket.socket()
s.settimeout(10)
s.bind(("10.1.2.3", 0))
s.connect((sys.argv[1], int(sys.argv[2])))
s.sendall(bytes.fromhex(sys.argv[3]))
data = b""
while True:
    try:
        chunk = s.recv(4096)
    except ConnectionResetError:  # closed at accept with our greeting unread: a reset
        break
    if not chunk:
        break
    data += chunk
print(data.hex())
"""


class Socks5Exposure(ProxyTestCase):
    def setUp(self):
        why = why_no_netns()
        if why:
            self.skipTest(why)
        super().setUp()

    def client(self, p, listen_ip, send):
        r = run(["nsenter", f"--net=/proc/{p.proc.p.pid}/ns/net", sys.executable, "-c", CLIENT, listen_ip,
                 str(p.port), send.hex()])
        self.assertEqual(r.returncode, 0, r.stderr)
        return bytes.fromhex(r.stdout.decode().strip())

    def test_remote_clients_follow_the_explicit_mode_rules(self):
        # Loopback-only by default: a client from 10.1.2.3 is turned away at accept time.
        p = self.proxy("--mode", "socks5", prefix=["unshare", "-n", "sh", "-c", NS_SETUP])
        self.assertEqual(self.client(p, "127.0.0.1", b"\x05\x01\x00"), b"")
        evs = p.wait_events(lambda e: of(e, "conn.refused"))
        self.assertTrue(of(evs, "conn.refused")[0]["client"].startswith("10.1.2.3:"))
        self.assertEqual(of(evs, "conn.open"), [])
        # With --allow-remote: the proxy's own loopback services are no target for it (X'02').
        q = self.proxy("--mode", "socks5", "-l", "0.0.0.0:0", "--allow-remote",
                       prefix=["unshare", "-n", "sh", "-c", NS_SETUP])
        self.assertIn("--allow-remote without --proxy-auth", q.proc.output())
        for target in ("127.0.0.1", "localhost", "10.1.2.3"):
            with self.subTest(target=target):
                got = self.client(q, "10.1.2.3", b"\x05\x01\x00" + request(1, target, 9))
                self.assertEqual(got, NO_AUTH + NOT_ALLOWED)
        evs = q.conn_closed(3)
        refused = of(evs, "conn.refused")
        self.assertEqual([e["cause"] for e in refused], ["not_allowed"] * 3)
        self.assertTrue(all("--allow-private-targets" in e["reason"] for e in refused))
        self.assertEqual(of(evs, "tcp.connect"), [])  # nothing was tried


if __name__ == "__main__":
    unittest.main()
