"""STARTTLS through the proxy: `openssl s_client -starttls PROTO` (and Python's smtplib, imaplib,
poplib for refusals, which s_client ignores) to the protocol-faithful servers of starttls_servers.py,
in reverse mode and behind CONNECT. Each check compares the proxy's events with an independent
view of the same connection: what the server logged it received, s_client's own session report,
Python ssl's view of the upstream leg, and tshark decrypting both legs of the pcapng with the key
log embedded in it. The optional psql test (TLSTRACE_TEST_PSQL=1) runs Debian's PostgreSQL."""
import imaplib
import os
import poplib
import pwd
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import DEADLINE, ProxyTestCase, free_port, of, run, send_connect, wait_port, tshark_cmd
from starttls_servers import StartTlsServer

PROTOS = ["smtp", "imap", "pop3", "postgres", "mysql", "ldap"]


class SClient:
    """openssl s_client -starttls PROTO: sends `marker` over TLS once the handshake is done and
    waits (bounded) for the server's answer before ending its input."""

    def __init__(self, proto, ca, connect, extra=()):
        self.p = subprocess.Popen(["openssl", "s_client", "-starttls", proto, "-connect", connect, "-CAfile", ca,
                                   "-servername", "localhost", "-verify_hostname", "localhost",
                                   "-verify_return_error", "-crlf", *extra],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.out = b""
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for chunk in iter(lambda: self.p.stdout.read1(65536), b""):
            self.out += chunk

    def talk(self, marker, timeout=DEADLINE):
        end = time.time() + timeout
        while time.time() < end and b"---\n" not in self.out and self.p.poll() is None:
            time.sleep(0.02)  # s_client prints its session report once the handshake is done
        if self.p.poll() is None:
            self.p.stdin.write(marker + b"\n")
            self.p.stdin.flush()
            while time.time() < end and b"tls-ok: " + marker not in self.out and self.p.poll() is None:
                time.sleep(0.02)
        return self.close()

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.t.join(timeout=5)
        return self.out.decode(errors="replace")


def report(out, key):
    m = re.search(rf"^\s*{key}\s*:\s*(\S+)", out, re.M)
    return m.group(1) if m else None


class StartTls(ProxyTestCase):
    def server(self, proto, refuse=False):
        s = StartTlsServer(proto, self.pki.cert, self.pki.key, refuse=refuse)
        self._stops.append(s.stop)
        return s

    def reverse(self, proto, srv, *extra):
        return self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--starttls", proto,
                          "--upstream-ca", self.pki.ca, *extra)

    def check_through(self, proto, srv, p, out, marker):
        """One STARTTLS connection that went through: each side's own account against the events."""
        self.assertTrue(srv.upgraded.is_set(), f"{proto}: the server never upgraded\n{out}")
        self.assertEqual(srv.tls_lines, [marker + b"\r\n"], out)  # over TLS, through both legs
        self.assertIn("tls-ok: " + marker.decode(), out)
        evs = p.conn_closed()
        steps = of(evs, "conn.starttls")
        self.assertTrue(steps and all(e["proto"] == proto for e in steps), steps)
        # The preamble as the server logged it, message by message, against the steps traced.
        client_said = [b for who, b in srv.preamble if who == "c"]
        if proto in ("smtp", "imap", "pop3"):
            self.assertEqual([e["text"] for e in of(evs, "conn.starttls", "client")],
                             [b.decode().rstrip("\r\n") for b in client_said])
        self.assertEqual(of(evs, "conn.starttls")[-1]["step"], "ssl_request" if proto == "mysql" else "ready")
        # The client leg as s_client saw it; the upstream leg as the server's ssl module saw it.
        est = {e["leg"]: e for e in of(evs, "tls.established")}
        self.assertEqual(set(est), {"client", "upstream"})
        self.assertEqual(est["client"]["version"], report(out, "Protocol"))
        self.assertEqual(est["client"]["cipher"]["name"], report(out, "Cipher"))
        self.assertEqual(est["upstream"]["version"], srv.tls_version)
        self.assertEqual(est["upstream"]["cipher"]["name"], srv.tls_cipher)
        self.assertEqual(of(evs, "tls.error"), [])
        self.assertEqual(of(evs, "conn.plaintext"), [])
        return evs

    def test_reverse_mode_every_protocol(self):
        for proto in PROTOS:
            with self.subTest(proto=proto):
                srv = self.server(proto)
                p = self.reverse(proto, srv)
                marker = f"marker-{proto}".encode()
                out = SClient(proto, p.ca, p.addr).talk(marker)
                self.check_through(proto, srv, p, out, marker)
                self.check_events_file(p.events, require=["conn.starttls", "tls.established"])

    def test_explicit_connect_and_pcap_decrypting_both_legs(self):
        # PostgreSQL: the client speaks first. (s_client -proxy loses a server's banner that
        # arrives with the CONNECT answer: its proxy code frees the buffering BIO that holds it.)
        if not shutil.which("tshark"):
            self.skipTest("tshark not installed")
        srv = self.server("postgres")
        pcap = f"{self.dir}/pg.pcapng"
        p = self.proxy("--starttls", "postgres", "--upstream-ca", self.pki.ca, "--pcap", pcap)
        out = SClient("postgres", p.ca, f"localhost:{srv.port}", ("-proxy", p.addr)).talk(b"marker-explicit")
        evs = self.check_through("postgres", srv, p, out, b"marker-explicit")
        self.assertEqual(of(evs, "proxy.request")[0]["target"], f"localhost:{srv.port}")
        self.assertEqual(p.stop(), 0)
        # tshark follows SSLRequest in its PostgreSQL dissector and decrypts with the key log in
        # the pcapng: the plaintext request, the handshake's Finished and the data, on both legs.
        r = run([*tshark_cmd(), "-r", pcap, "-d", f"tcp.port=={p.port},http", "-d", f"tcp.port=={srv.port},pgsql",
                 "-T", "fields", "-e", "frame.interface_name", "-e", "tcp.payload", "-e", "tls.handshake.type"],
                timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [line.split("\t") for line in r.stdout.decode().splitlines()]
        for leg in ("tlstrace-client-leg", "tlstrace-upstream-leg"):
            mine = [x for x in rows if x[0] == leg]
            self.assertIn("0000000804d2162f", [x[1] for x in mine], leg)  # the SSLRequest, in the clear
            self.assertIn("53", [x[1] for x in mine], leg)                # 'S'
            types = {t for x in mine for t in x[2].split(",")}
            self.assertTrue({"1", "2", "8", "11", "15", "20"} <= types, (leg, types))  # TLS 1.3: decrypted

    def test_explicit_connect_server_speaks_first(self):
        """SMTP behind CONNECT, by hand with Python's ssl: the banner comes right after the 200."""
        srv = self.server("smtp")
        p = self.proxy("--starttls", "smtp", "--upstream-ca", self.pki.ca)
        s = socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE)
        head = send_connect(s, f"localhost:{srv.port}")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        buf = [head.split(b"\r\n\r\n", 1)[1]]

        def until(end):
            while not buf[0].endswith(end):
                chunk = s.recv(4096)
                self.assertTrue(chunk, buf[0])
                buf[0] += chunk
            got, buf[0] = buf[0], b""
            return got
        self.assertEqual(until(b"\r\n"), b"220 localhost ESMTP tlstrace-test\r\n")
        s.sendall(b"EHLO client.example\r\n")
        self.assertTrue(until(b"250 STARTTLS\r\n").startswith(b"250-localhost"))
        s.sendall(b"STARTTLS\r\n")
        self.assertEqual(until(b"\r\n"), b"220 2.0.0 Ready to start TLS\r\n")
        t = ssl.create_default_context(cafile=p.ca).wrap_socket(s, server_hostname="localhost")
        t.sendall(b"MARKER\r\n")
        self.assertEqual(t.recv(4096), b"tls-ok: MARKER\r\n")
        client_view = (t.version(), t.cipher()[0])  # the client's own account of its leg
        t.close()
        evs = p.conn_closed()
        self.assertEqual(srv.tls_lines, [b"MARKER\r\n"])
        self.assertEqual([(e["leg"], e["step"]) for e in of(evs, "conn.starttls")],
                         [("upstream", "banner"), ("client", "ehlo"), ("upstream", "capabilities"),
                          ("client", "starttls"), ("upstream", "ready")])
        est = {e["leg"]: e for e in of(evs, "tls.established")}
        self.assertEqual((est["client"]["version"], est["client"]["cipher"]["name"]), client_view)
        self.assertEqual(est["upstream"]["cipher"]["name"], srv.tls_cipher)

    def test_refusals_reach_the_client_in_the_protocols_own_words(self):
        for proto in ("smtp", "imap", "pop3"):
            with self.subTest(proto=proto):
                srv = self.server(proto, refuse=True)
                p = self.reverse(proto, srv)
                host, port = p.addr.split(":")
                if proto == "smtp":
                    c = smtplib.SMTP(host, int(port), timeout=DEADLINE)
                    c.ehlo("client.example")
                    with self.assertRaises(smtplib.SMTPResponseException) as cm:
                        c.starttls()
                    self.assertEqual(cm.exception.smtp_code, 454)
                    said = cm.exception.smtp_error.decode()
                    self.assertEqual(c.quit()[0], 221)  # and the session goes on
                elif proto == "imap":
                    c = imaplib.IMAP4(host, int(port), timeout=DEADLINE)
                    with self.assertRaises(imaplib.IMAP4.error):
                        c.starttls()
                    said = "TLS not available now"
                    self.assertEqual(c.logout()[0], "BYE")
                else:
                    c = poplib.POP3(host, int(port), timeout=DEADLINE)
                    with self.assertRaises(poplib.error_proto) as cm:
                        c.stls()
                    said = cm.exception.args[0].decode()
                    self.assertTrue(c.quit().startswith(b"+OK"))
                evs = p.conn_closed()
                refused = [e for e in of(evs, "conn.starttls") if e["step"] == "refused"]
                errs = of(evs, "tls.error", "upstream")
                self.assertEqual(len(errs), 1, evs)
                self.assertEqual((errs[0]["stage"], errs[0]["cause"]), ("starttls", "starttls_refused"))
                self.assertIn(said, errs[0]["reason"])
                self.assertEqual(len(refused), 1)
                # What the server sent is what the client got, byte for byte (the server's own log).
                server_said = [b.decode().rstrip("\r\n") for who, b in srv.preamble if who == "s"]
                self.assertIn(refused[0]["text"], server_said)
                self.assertEqual(of(evs, "tls.established"), [])
                self.assertEqual(of(evs, "tcp.close", "client")[0]["how"], "fin")

    def test_binary_refusals(self):
        for proto, words in (("postgres", "N (the server does not accept SSL)"),
                             ("ldap", "unwillingToPerform (53)"),
                             ("mysql", "does not offer CLIENT_SSL")):
            with self.subTest(proto=proto):
                srv = self.server(proto, refuse=True)
                p = self.reverse(proto, srv)
                out = SClient(proto, p.ca, p.addr).close()
                self.assertFalse(srv.upgraded.is_set())
                evs = p.conn_closed()
                errs = of(evs, "tls.error", "upstream")
                self.assertEqual(len(errs), 1, evs)
                self.assertEqual(errs[0]["cause"], "starttls_refused")
                self.assertIn(words, errs[0]["reason"])
                if proto == "ldap":  # s_client reads the same resultCode off the wire
                    self.assertIn("LDAP Result Code: 53", out)

    @unittest.skipUnless(os.environ.get("TLSTRACE_TEST_PSQL"), "set TLSTRACE_TEST_PSQL=1 (starts a PostgreSQL cluster)")
    def test_psql_to_postgresql(self):
        bindir = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
        bindir = f"/usr/lib/postgresql/{bindir}/bin"
        user = pwd.getpwnam("postgres")
        data = tempfile.mkdtemp(prefix="tlstrace-pg-")  # (the test's own dir is root's alone)
        self._stops.append(lambda: shutil.rmtree(data, ignore_errors=True))
        os.chown(data, user.pw_uid, user.pw_gid)
        for f in (self.pki.cert, self.pki.key):
            shutil.copy(f, data)
            os.chown(f"{data}/{os.path.basename(f)}", user.pw_uid, user.pw_gid)
        as_pg = ["runuser", "-u", "postgres", "--"]
        r = run([*as_pg, f"{bindir}/initdb", "-A", "trust", "-U", "postgres", "-D", f"{data}/db"], timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        port = free_port()
        with open(f"{data}/db/postgresql.conf", "a") as f:
            f.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{data}'\n"
                    f"ssl = on\nssl_cert_file = '{data}/server.pem'\nssl_key_file = '{data}/server.key'\n")
        r = run([*as_pg, f"{bindir}/pg_ctl", "-D", f"{data}/db", "-l", f"{data}/log", "-w", "start"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self._stops.append(lambda: run([*as_pg, f"{bindir}/pg_ctl", "-D", f"{data}/db", "-m", "fast", "stop"],
                                       timeout=60))
        wait_port(port)
        p = self.proxy("-m", "reverse", "-u", f"localhost:{port}", "--starttls", "postgres",
                       "--upstream-ca", self.pki.ca)
        dsn = (f"host=localhost port={p.port} user=postgres dbname=postgres sslmode=verify-full "
               f"sslrootcert={p.ca} connect_timeout=10")
        r = run(["psql", dsn, "-At", "-c", "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()"],
                timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        ssl_on, version = r.stdout.decode().strip().split("|")
        evs = p.conn_closed()
        self.assertEqual(ssl_on, "t")  # the server's own view of the upstream leg
        self.assertEqual(of(evs, "tls.established", "upstream")[0]["version"], version)
        self.assertEqual([e["step"] for e in of(evs, "conn.starttls")], ["ssl_request", "ready"])


if __name__ == "__main__":
    unittest.main()
