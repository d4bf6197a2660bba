"""Names and small CLI promises, each checked against the peers' own account of the same connection:
the TLS 1.0 spelling (s_client -trace), key shares before and after a HelloRetryRequest (both peers'
-trace), an upgrade that is not a downgrade (curl -v and s_server's page), the hostname failure
--insecure must not hide (curl and s_client directly vs through the proxy), the key log (NSS's
labels; tshark decrypting past a KeyUpdate), `convert --to keylog` without secrets, `-l PORT`, a
bind failure and the usage exit status."""
import errno
import os
import re
import socket
import subprocess
import time
import unittest

from harness import DEADLINE, TLSTRACE, Proc, ProxyTestCase, free_port, of, run, wait_port, tshark_cmd

# RFC 8446 4.2.7 / RFC 8422 5.1.1 code points, for reading the peers' numeric output.
GROUPS = {23: "secp256r1", 24: "secp384r1", 25: "secp521r1", 29: "x25519", 30: "x448"}
NSS_LABELS = {"CLIENT_RANDOM", "CLIENT_EARLY_TRAFFIC_SECRET", "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
              "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0",
              "EARLY_EXPORTER_SECRET", "EXPORTER_SECRET"}


def hello_shares(trace_text, direction):
    """Key share groups of each ClientHello in an `openssl -trace` log, in order. direction: "Sent" or
    "Received" (the records the ClientHellos are in)."""
    out = []
    # Each record starts with "Sent Record" / "Received Record"; a ClientHello's key_share lists
    # "NamedGroup: name (id)" entries.
    for rec in re.split(r"\n(?=(?:Sent|Received) Record)", trace_text):
        if not rec.startswith(direction + " Record") or "ClientHello, Length=" not in rec:
            continue
        ks = rec.split("extension_type=key_share(51)", 1)
        if len(ks) < 2:
            continue
        section = re.split(r"extension_type=", ks[1], maxsplit=1)[0]
        out.append([GROUPS.get(int(n), n) for n in re.findall(r"NamedGroup: [^\n]*\((\d+)\)", section)])
    return out


class Spelling(ProxyTestCase):
    def seclevel0_env(self):
        conf = f"{self.dir}/seclevel0-client.cnf"
        with open(conf, "w") as f:
            f.write("openssl_conf = c\n[c]\nssl_conf = s\n[s]\nsystem_default = d\n"
                    "[d]\nCipherString = DEFAULT:@SECLEVEL=0\nMinProtocol = TLSv1\n")
        return dict(os.environ, OPENSSL_CONF=conf)

    def test_tls10_is_spelled_tlsv1_0_everywhere(self):
        srv = self.s_server("-tls1", seclevel0=True)
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca,
                       "--client-tls-min", "1.0", "--upstream-tls-min", "1.0")
        r = run(["openssl", "s_client", "-connect", p.addr, "-servername", "localhost", "-CAfile", p.ca,
                 "-tls1", "-trace"], input=b"Q\n", env=self.seclevel0_env())
        out = r.stdout.decode(errors="replace")
        # The client's own account: the ServerHello it received names TLS 1.0.
        self.assertIn("server_version=0x301 (TLS 1.0)", out, out[-3000:])
        evs = p.conn_closed()
        for leg in ("client", "upstream"):
            self.assertEqual(of(evs, "tls.established", leg)[0]["version"], "TLSv1.0")
            self.assertEqual(of(evs, "conn.summary")[0][leg]["version"], "TLSv1.0")
        with open(p.trace) as f:
            text = f.read()
        self.assertIn("version: TLSv1.0", text)
        self.assertNotRegex(text, r"TLSv1(?![.\d])")

    def test_key_shares_before_and_after_hrr(self):
        # The server takes P-256 only; both peers offer x25519 first, so each leg gets a
        # HelloRetryRequest (the client leg because the proxy accepts P-256 only there too).
        srv = self.s_server("-groups", "P-256", "-trace")
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca,
                       "--client-groups", "P-256", "--upstream-groups", "X25519:P-256")
        r = run(["openssl", "s_client", "-connect", p.addr, "-servername", "localhost", "-CAfile", p.ca,
                 "-groups", "X25519:P-256", "-trace"], input=b"Q\n")
        client_says = hello_shares(r.stdout.decode(errors="replace"), "Sent")
        self.assertEqual(len(client_says), 2, r.stdout.decode(errors="replace")[-3000:])
        # OpenSSL 3.0's trace prints the HelloRetryRequest as a ServerHello whose key_share is only
        # the group (RFC 8446 4.2.8: length 2).
        self.assertRegex(r.stdout.decode(errors="replace"),
                         r"ServerHello, Length=\d+\n(?:.*\n)*?\s+extension_type=key_share\(51\), length=2\n"
                         r"\s+NamedGroup: secp256r1")
        evs = p.conn_closed()
        server_says = hello_shares(srv.proc.output(), "Received")
        self.assertEqual(len(server_says), 2, srv.proc.output()[-3000:])
        summary = of(evs, "conn.summary")[0]
        for leg, peer in (("client", client_says), ("upstream", server_says)):
            self.assertEqual(summary[leg]["offered_key_shares"], peer[0], leg)
            self.assertEqual(summary[leg]["offered_key_shares_after_hrr"], peer[1], leg)
            self.assertEqual(summary[leg]["hello_retry_request"], "secp256r1")
        self.assertEqual(client_says, [["x25519"], ["secp256r1"]])  # what the scenario is about

    def test_no_hrr_no_after_hrr_field(self):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca)
        r = run(["openssl", "s_client", "-connect", p.addr, "-servername", "localhost", "-CAfile", p.ca,
                 "-trace"], input=b"Q\n")
        client_says = hello_shares(r.stdout.decode(errors="replace"), "Sent")
        summary = of(p.conn_closed(), "conn.summary")[0]
        self.assertEqual([summary["client"]["offered_key_shares"]], client_says)
        self.assertNotIn("offered_key_shares_after_hrr", summary["client"])

    def test_tls12_client_tls13_upstream_is_no_downgrade(self):
        srv = self.s_server()
        p = self.proxy("--upstream-ca", self.pki.ca)
        r = run(["curl", "-sS", "-v", "--max-time", "10", "--http1.1", "--tlsv1.2", "--tls-max", "1.2",
                 "-x", f"http://{p.addr}", "--cacert", p.ca, f"https://localhost:{srv.port}/"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"SSL connection using TLSv1.2", r.stderr)  # curl's leg
        self.assertIn(b"TLSv1.3", r.stdout)  # s_server's page: the proxy's session with it
        summary = of(p.conn_closed(), "conn.summary")[0]
        self.assertEqual((summary["client"]["version"], summary["upstream"]["version"]), ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(summary["downgrade"], [])

    def other_name_cert(self):
        """A certificate from the upstream CA for other.test only (not localhost, not 127.0.0.1)."""
        d, ext = self.dir, f"{self.dir}/other.ext"
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:other.test\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        for args in (["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                      f"{d}/other.key", "-out", f"{d}/other.csr", "-subj", "/CN=other.test"],
                     ["x509", "-req", "-in", f"{d}/other.csr", "-CA", self.pki.ca, "-CAkey", self.pki.ca_key,
                      "-CAcreateserial", "-out", f"{d}/other.pem", "-days", "2", "-extfile", ext]):
            r = run(["openssl", *args])
            self.assertEqual(r.returncode, 0, r.stderr)
        return f"{d}/other.pem", f"{d}/other.key"

    def test_insecure_keeps_the_hostname_failure(self):
        cert, key = self.other_name_cert()
        srv = self.s_server(cert=cert, key=key)
        p = self.proxy("--insecure")
        url = f"https://localhost:{srv.port}/"
        direct = run(["curl", "-sS", "--max-time", "10", "--cacert", self.pki.ca, url])
        proxied = run(["curl", "-sS", "--max-time", "10", "-x", f"http://{p.addr}", "--cacert", p.ca, url])
        self.assertEqual(direct.returncode, 60, direct.stderr)
        self.assertEqual(proxied.returncode, direct.returncode, proxied.stderr)
        self.assertIn(b"localhost", direct.stderr)
        self.assertEqual(proxied.stderr.split(b"curl: ")[-1], direct.stderr.split(b"curl: ")[-1])
        # OpenSSL's own verdict on the forged leaf: the same hostname mismatch as on the real one,
        # and the leaf carries exactly the real certificate's names.
        verdicts, sans = [], []
        for extra, ca in (([], self.pki.ca), (["-proxy", p.addr], p.ca)):
            r = run(["openssl", "s_client", "-connect", f"localhost:{srv.port}", *extra, "-servername", "localhost",
                     "-CAfile", ca, "-verify_hostname", "localhost", "-showcerts"], input=b"Q\n")
            out = r.stdout.decode(errors="replace")
            verdicts.append(re.search(r"Verify return code: (\d+ \([^)]*\))", out).group(1))
            leaf = out[out.index("-----BEGIN CERTIFICATE-----"):out.index("-----END CERTIFICATE-----") + 25]
            x = run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=leaf.encode())
            sans.append(x.stdout.decode().split("\n", 1)[1].strip())
        self.assertEqual(verdicts[0], "62 (hostname mismatch)")
        self.assertEqual(verdicts[1], verdicts[0])
        self.assertEqual(sans[1], sans[0])
        self.assertEqual(sans[0], "DNS:other.test")

    def test_keylog_nss_labels_and_keyupdate_decrypts(self):
        port = free_port()
        srv = Proc(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", self.pki.cert, "-key",
                    self.pki.key, "-tls1_3"], f"{self.dir}/s_server-echo.log", stdin=subprocess.PIPE)
        self._stops.append(srv.stop)
        wait_port(port, srv.p)
        pcap = f"{self.dir}/ku.pcapng"
        p = self.proxy("-m", "reverse", "-u", f"localhost:{port}", "--upstream-ca", self.pki.ca, "--pcap", pcap,
                       "--trace", "all", "--log-secrets")
        cli = Proc(["openssl", "s_client", "-connect", p.addr, "-servername", "localhost", "-CAfile", p.ca,
                    "-tls1_3"], f"{self.dir}/s_client-ku.log", stdin=subprocess.PIPE)
        self._stops.append(cli.stop)

        def wait_for(proc, text):
            end = time.time() + DEADLINE
            while time.time() < end and text not in proc.output():
                time.sleep(0.05)
            self.assertIn(text, proc.output())

        wait_for(cli, "Verify return code: 0")
        cli.p.stdin.write(b"before-keyupdate\n")
        cli.p.stdin.flush()
        wait_for(srv, "before-keyupdate")
        cli.p.stdin.write(b"K\n")  # s_client: send a KeyUpdate (update_requested)
        cli.p.stdin.flush()
        wait_for(cli, "KEYUPDATE")
        cli.p.stdin.write(b"after-keyupdate\n")
        cli.p.stdin.flush()
        wait_for(srv, "after-keyupdate")
        cli.p.stdin.close()
        evs = p.wait_events(lambda e: any(x["event"] == "conn.close" for x in e))
        # The KeyUpdate generation is in the events...
        self.assertTrue(any(k["epoch"] == "1" and k["direction"] == "client_write"
                            for k in of(evs, "tls.keys", "client")))
        # ... and the key log holds NSS's labels only.
        with open(p.keylog) as f:
            lines = [l.split() for l in f if l.strip()]
        self.assertTrue(lines)
        for parts in lines:
            self.assertIn(parts[0], NSS_LABELS)
            self.assertEqual(len(parts), 3)
            self.assertEqual(len(parts[1]), 64)
        # tshark, given the capture without its own secrets and the key log, decrypts the client
        # leg past the KeyUpdate (it derives the next generation itself).
        stripped = f"{self.dir}/ku-nosecrets.pcapng"
        r = run(["editcap", "--discard-all-secrets", pcap, stripped])
        self.assertEqual(r.returncode, 0, r.stderr)

        def follow(*opts):
            r = run([*tshark_cmd(), "-r", stripped, *opts, "-q", "-z", "follow,tls,ascii,0"], timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout

        self.assertNotIn(b"after-keyupdate", follow())  # nothing without the key log
        debug = f"{self.dir}/tshark-tls-debug.txt"
        decrypted = follow("-o", f"tls.keylog_file:{p.keylog}", "-o", f"tls.debug_file:{debug}")
        self.assertIn(b"before-keyupdate", decrypted)
        self.assertIn(b"after-keyupdate", decrypted)
        # Wireshark's own account of the key log: every line it read is one it recognised
        # ("checking keylog line: ..." followed by "matched ...").
        with open(debug, errors="replace") as f:
            dbg = f.read().splitlines()
        checked = {l.split(": ", 1)[1].strip(): dbg[i + 1] for i, l in enumerate(dbg[:-1])
                   if l.startswith("  checking keylog line: ")}
        self.assertEqual(set(checked), {" ".join(parts) for parts in lines})
        for line, verdict in checked.items():
            self.assertTrue(verdict.startswith("    matched "), (line, verdict))

    def test_convert_keylog_without_secret_events(self):
        srv = self.s_server()
        p = self.proxy("--upstream-ca", self.pki.ca)  # default categories: no tls.secret at all
        r = run(["curl", "-sS", "--max-time", "10", "-x", f"http://{p.addr}", "--cacert", p.ca,
                 f"https://localhost:{srv.port}/"])
        self.assertEqual(r.returncode, 0, r.stderr)
        p.conn_closed()
        r = run([TLSTRACE, "convert", p.events, "--to", "keylog"])
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, b"")
        self.assertIn(b"no tls.secret events", r.stderr)
        self.assertIn(b"--trace keys --log-secrets", r.stderr)


class Cli(ProxyTestCase):
    def test_bare_port_listens_on_loopback(self):
        port = free_port()
        p = self.proxy("-l", str(port))
        self.assertEqual(p.addr, f"127.0.0.1:{port}")
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE):
            pass

    def test_bind_failure_names_address_and_errno(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        port = busy.getsockname()[1]
        env = dict(os.environ, TLSTRACE_HOME=f"{self.dir}/home")
        r = run([TLSTRACE, "proxy", "-l", f"127.0.0.1:{port}"], env=env)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertIn(f"cannot listen on 127.0.0.1:{port}: {os.strerror(errno.EADDRINUSE)}", err)
        self.assertNotIn("boost", err.lower())
        self.assertNotIn(".hpp", err)

    def test_usage_errors_exit_2(self):
        for args in (["proxy", "--no-such-option"], ["proxy", "-l", "127.0.0.1:notaport"], ["nosuchcommand"],
                     ["proxy", "--trace", "nonsense"]):
            r = run([TLSTRACE, *args], env=dict(os.environ, TLSTRACE_HOME=f"{self.dir}/home"))
            self.assertEqual(r.returncode, 2, (args, r.stderr))
        self.assertEqual(run([TLSTRACE, "--version"]).returncode, 0)
        self.assertEqual(run([TLSTRACE, "proxy", "--help"]).returncode, 0)


if __name__ == "__main__":
    unittest.main()
