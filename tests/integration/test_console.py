"""The console (issue [7]): one line per finished connection on stderr, an exit summary on
SIGINT/SIGTERM, -q and -v. Each line's fields are checked against what the peers themselves
printed (openssl s_client's and s_server's session lines, curl's and Python's errors), the counts
against the connections each test made."""
import os
import re
import signal
import ssl
import socket
import subprocess

from harness import (DEADLINE, TLSTRACE, ProxyTestCase, Proc, dead_port, free_port, read_all, run, wait_port)
from test_kex import pkcs3_params, rsa_cert

REQUEST = b"GET / HTTP/1.0\r\n\r\n"
# HH:MM:SS.mmm #ID CLIENT -> TARGET [sni NAME] | ...
LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) #(\d+) (\S+) -> (\S+)(?: sni (\S+))? \| (.*)$")
SESSION = re.compile(r"^New, (TLSv1\.[0-3]), Cipher is (\S+)$", re.M)


def iana(openssl_name):
    """The standard (IANA) name of an OpenSSL cipher name, as `openssl ciphers -stdname` maps it."""
    r = run(["openssl", "ciphers", "-stdname", "-V", "ALL:@SECLEVEL=0"])
    for row in r.stdout.decode().splitlines():
        parts = [p.strip() for p in row.split(" - ")]
        if len(parts) >= 3 and parts[2].split()[0] == openssl_name:
            return parts[1]
    raise AssertionError(f"openssl does not know {openssl_name}")


def conn_lines(out):
    return [m for m in (LINE.match(line) for line in out.splitlines()) if m]


def s_client(p, *extra, cafile=None):
    """s_client through the proxy, sending REQUEST once connected; returns (rc, stdout, stderr)."""
    r = subprocess.run(["openssl", "s_client", "-connect", p.addr, "-servername", "localhost", "-ign_eof",
                        "-CAfile", cafile or p.ca, *extra], input=REQUEST, capture_output=True, timeout=DEADLINE)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


class Console(ProxyTestCase):
    def reverse(self, port, *args, **kw):
        return self.proxy("-m", "reverse", "-u", f"localhost:{port}", *args, log=False, **kw)

    def finish(self, p, n, sig=signal.SIGTERM):
        """Waits for n closed connections, stops the proxy with sig, returns its stderr."""
        p.conn_closed(n)
        self.assertEqual(p.proc.stop(sig), 0, p.proc.output())
        return p.proc.output()

    def assert_summary(self, out, connections, ok, failures=None, weak=0):
        n = "connection" if connections == 1 else "connections"
        self.assertIn(f"tlstrace: {connections} {n}: {ok} ok, {connections - ok} failed\n", out)
        if failures:
            self.assertIn("tlstrace: failures: " + ", ".join(f"{c} {k}" for c, k in sorted(failures.items())) + "\n",
                          out)
        else:
            self.assertNotIn("tlstrace: failures:", out)
        self.assertIn(f"tlstrace: weak key exchanges: {weak}\n", out)

    def test_success_line_matches_s_client_and_s_server(self):
        srv = self.s_server()
        p = self.reverse(srv.port, "--upstream-ca", self.pki.ca)
        rc, out, err = s_client(p, "-tls1_3")
        self.assertEqual(rc, 0, err)
        self.assertIn("Verify return code: 0 (ok)", out)
        # The first session line is s_client's (client leg), the second the page s_server -www wrote
        # about its own session (upstream leg).
        (c_ver, c_cipher), (u_ver, u_cipher) = SESSION.findall(out)[:2]
        stderr = self.finish(p, 1, signal.SIGINT)
        lines = conn_lines(stderr)
        self.assertEqual(len(lines), 1, stderr)
        _, conn, client, target, sni, rest = lines[0].groups()
        self.assertEqual((conn, target, sni), ("1", f"localhost:{srv.port}", "localhost"))
        self.assertTrue(client.startswith("127.0.0.1:"))
        fields = rest.split(" | ")
        self.assertEqual(fields[0].split()[:3], ["client", c_ver, iana(c_cipher)])
        self.assertEqual(fields[1].split()[:3], ["upstream", u_ver, iana(u_cipher)])
        self.assertEqual(fields[2], "kex strong")
        self.assertEqual(fields[3], "cert verified")
        self.assertEqual(fields[4], "ok")
        self.assertTrue(fields[5].startswith(f"{len(REQUEST)} B up, "), fields)
        self.assertRegex(fields[6], r"^[0-9.]+ m?s$")
        # The full trace is not on stderr by default.
        self.assertNotIn("ClientHello", stderr)
        self.assertFalse(os.path.exists(p.trace))
        self.assert_summary(stderr, 1, 1)
        self.assertIn(f"tlstrace: CA certificate: {p.ca}\n", stderr)
        self.assertIn(f"tlstrace: events: {p.events}\n", stderr)
        self.assertIn(f"tlstrace: key log: {p.keylog}\n", stderr)

    def test_upstream_down_in_both_modes(self):
        closed = dead_port(self)
        p = self.reverse(closed)
        rc, _, err = s_client(p)
        self.assertNotEqual(rc, 0)
        self.assertIn("handshake failure", err.lower().replace("_", " "))
        e = self.proxy(log=False)
        r = run(["curl", "-sS", "-x", f"http://{e.addr}", "--cacert", e.ca, f"https://localhost:{closed}/"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"502", r.stderr)  # curl: CONNECT tunnel failed, response 502
        for proxy, target in ((p, f"localhost:{closed}"), (e, f"localhost:{closed}")):
            stderr = self.finish(proxy, 1)
            lines = conn_lines(stderr)
            self.assertEqual(len(lines), 1, stderr)
            self.assertEqual(lines[0].group(4), target)
            self.assertIn(" | FAILED upstream_unreachable | 0 B up, 0 B down | ", lines[0].group(0))
            self.assertIn("Connection refused", lines[0].group(0))
            self.assert_summary(stderr, 1, 0, {"upstream_unreachable": 1})

    def test_client_rejecting_the_forged_certificate_names_the_ca_file(self):
        srv = self.s_server()
        ca_dir = f"{self.dir}/my-ca"
        p = self.reverse(srv.port, "--upstream-ca", self.pki.ca, "--ca-dir", ca_dir)
        ca = f"{ca_dir}/ca.pem"
        self.assertTrue(os.path.exists(ca))
        # curl with the system trust store only: exit 60, "SSL certificate problem".
        r = run(["curl", "-sS", "--resolve", f"localhost:{p.port}:127.0.0.1", f"https://localhost:{p.port}/"])
        self.assertEqual(r.returncode, 60, r.stderr)
        # Python with its default verification.
        with self.assertRaises(ssl.SSLCertVerificationError):
            with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
                ssl.create_default_context().wrap_socket(s, server_hostname="localhost")
        stderr = self.finish(p, 2)
        lines = conn_lines(stderr)
        self.assertEqual(len(lines), 2, stderr)
        for m in lines:
            self.assertIn(" | FAILED client_rejected_certificate | ", m.group(0))
            self.assertIn(f"make it trust the CA {ca} (curl --cacert {ca};", m.group(0))
        self.assert_summary(stderr, 2, 0, {"client_rejected_certificate": 2})

    def test_untrusted_upstream_certificate(self):
        # The self-signed server certificate, checked by s_client itself against the system store.
        srv = self.s_server(cert=self.pki.bad_cert, key=self.pki.bad_key)
        direct = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-servername",
                                 "localhost", "-verify_return_error"], input=b"", capture_output=True,
                                timeout=DEADLINE)
        verdict = re.search(r"verify error:num=\d+:(.*)", direct.stdout.decode() + direct.stderr.decode())
        self.assertIsNotNone(verdict, direct.stderr)
        p = self.reverse(srv.port)
        rc, _, err = s_client(p)
        self.assertNotEqual(rc, 0)
        stderr = self.finish(p, 1)
        lines = conn_lines(stderr)
        self.assertEqual(len(lines), 1, stderr)
        self.assertIn(f" | cert UNTRUSTED ({verdict.group(1).strip()}) | FAILED upstream_certificate_untrusted | ",
                      lines[0].group(0))
        self.assertIn(" | hint: the server's certificate does not verify", lines[0].group(0))
        self.assert_summary(stderr, 1, 0, {"upstream_certificate_untrusted": 1})

    def test_weak_dh_server(self):
        cert, key = rsa_cert(self.dir)
        dh = pkcs3_params(self.dir, 1024)
        srv = self.s_server("-dhparam", dh, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",
                            cert=cert, key=key, seclevel0=True)
        p = self.reverse(srv.port, "--insecure", "--upstream-ciphers", "DEFAULT:@SECLEVEL=0")
        rc, out, err = s_client(p, "-tls1_2")
        self.assertEqual(rc, 0, err)
        (c_ver, c_cipher), (u_ver, u_cipher) = SESSION.findall(out)[:2]
        stderr = self.finish(p, 1)
        lines = conn_lines(stderr)
        self.assertEqual(len(lines), 1, stderr)
        fields = lines[0].group(6).split(" | ")
        self.assertEqual(fields[0].split()[:3], ["client", c_ver, iana(c_cipher)])
        self.assertEqual(fields[1], f"upstream {u_ver} {iana(u_cipher)} DHE 1024-bit")  # 1024: our dhparam
        self.assertTrue(fields[2].startswith("kex client strong, upstream WEAK ("), fields)
        self.assertEqual(fields[3], "cert UNTRUSTED (self-signed certificate)")  # relayed under --insecure
        self.assertEqual(fields[4], "ok")
        self.assert_summary(stderr, 1, 1, weak=1)
        self.assertIn(f"tlstrace:   #1 localhost:{srv.port}: kex client strong, upstream WEAK (", stderr)

    def test_quiet_verbose_and_log(self):
        srv = self.s_server()
        # -q: nothing on stderr at all for a good connection (not even the start lines). A small
        # --max-connections: with the machine's open-file limit below the default's needs, the proxy
        # rightly warns (warnings stay under -q), which is not what this checks.
        port = free_port()
        events = f"{self.dir}/quiet.jsonl"
        env = dict(os.environ, TLSTRACE_HOME=f"{self.dir}/home")
        q = Proc([TLSTRACE, "proxy", "-q", "-l", f"127.0.0.1:{port}", "-m", "reverse", "-u", f"localhost:{srv.port}",
                  "--upstream-ca", self.pki.ca, "--events", events, "--max-connections", "100"], f"{self.dir}/quiet.stderr",
                 env=env)
        self._stops.append(q.stop)
        wait_port(port, q.p)
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
            ctx = ssl.create_default_context(cafile=f"{self.dir}/home/ca.pem")
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(REQUEST)
                self.assertIn(b"200 ok", read_all(t))
        self.assertEqual(q.stop(), 0)
        with open(events) as f:
            # wait_port's probe is a connection too (it closes without a byte).
            self.assertEqual(sum('"conn.close"' in line for line in f), 2)
        self.assertEqual(q.output(), "")
        # -v with --log: the full trace on stderr as well as in the file, with the connection line.
        v = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca, "-v")
        rc, _, err = s_client(v)
        self.assertEqual(rc, 0, err)
        stderr = self.finish(v, 1)
        with open(v.trace) as f:
            trace = [line.rstrip("\n") for line in f if line.strip()]
        self.assertTrue(any("ClientHello" in line for line in trace))
        self.assertEqual([line for line in trace if line not in stderr.splitlines()], [])
        self.assertEqual(len(conn_lines(stderr)), 1)
        self.assert_summary(stderr, 1, 1)
        self.assertIn(f"tlstrace: trace: {v.trace}\n", stderr)
        # Both at once is a usage error.
        r = run([TLSTRACE, "proxy", "-q", "-v", "-l", "127.0.0.1:0"], env=env)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"-q/--quiet and -v/--verbose exclude each other", r.stderr)
