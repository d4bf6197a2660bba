"""--passthrough and --auto-passthrough against real peers. The independent sources: curl verifying
the server's certificate against the server's own CA (it can only succeed when the client saw the
real certificate, not our forged one), and openssl s_client -trace's own decoding of the same
connection's ServerHello, Certificate and ServerKeyExchange, compared with our tls.message and
tls.key_exchange events."""
import re
import subprocess

from harness import DEADLINE, ProxyTestCase, of, run


class Passthrough(ProxyTestCase):
    def curl(self, p, url, *extra):
        return run(["curl", "-sS", "--max-time", "10", "-x", f"http://{p.addr}", *extra, url])

    def test_passthrough_shows_the_real_certificate_and_traces_the_hello(self):
        srv = self.s_server()
        p = self.proxy("--passthrough", "localhost")
        r = self.curl(p, f"https://localhost:{srv.port}/", "--cacert", self.pki.ca)
        self.assertEqual(r.returncode, 0, r.stderr)  # the real chain verified: no forged leaf
        self.assertIn(b"s_server", r.stdout)
        # Not matching: intercepted as usual (the real CA does not verify our forged leaf).
        r = self.curl(p, f"https://127.0.0.1:{srv.port}/", "--cacert", self.pki.ca)
        self.assertNotEqual(r.returncode, 0)
        evs = p.conn_closed(2)
        passed = of(evs, "conn.passthrough")
        self.assertEqual([(e["host"], e["rule"]) for e in passed], [("localhost", "localhost")])
        conn = passed[0]["conn"]
        types = [(m["dir"], m["type"]) for m in of(evs, "tls.message", conn=conn)]
        self.assertEqual(types[:2], [("in", "ClientHello"), ("out", "ServerHello")])
        self.assertEqual(of(evs, "tls.established", conn=conn), [])
        self.assertEqual(len(of(evs, "tls.key_exchange", conn=conn)), 1)

    def test_tls12_passthrough_matches_s_client_trace(self):
        srv = self.s_server()
        p = self.proxy("--passthrough", str(srv.port))  # a port rule
        r = run(["openssl", "s_client", "-proxy", p.addr, "-connect", f"localhost:{srv.port}", "-tls1_2",
                 "-trace", "-CAfile", self.pki.ca, "-verify_return_error", "-servername", "localhost"],
                input=b"", timeout=DEADLINE)
        out = r.stdout.decode(errors="replace")
        self.assertIn("Verify return code: 0 (ok)", out)  # s_client verified the real server chain
        evs = p.conn_closed(1)
        msgs = {m["type"]: m for m in of(evs, "tls.message") if m["dir"] == "out"}
        for t in ("ServerHello", "Certificate", "ServerKeyExchange", "ServerHelloDone"):
            self.assertIn(t, msgs)
        self.assertIn("ClientKeyExchange", [m["type"] for m in of(evs, "tls.message") if m["dir"] == "in"])
        # s_client's own decoding: the cipher suite, the curve and the server's public key.
        suite = re.search(r"ServerHello.*?cipher_suite \{0x([0-9A-F]{2}), 0x([0-9A-F]{2})\}", out, re.S)
        self.assertIsNotNone(suite, out)
        body = msgs["ServerHello"]["body"]
        self.assertEqual(body["cipher_suite"]["id"], int(suite.group(1) + suite.group(2), 16))
        ske = out[out.index("ServerKeyExchange"):]
        point = re.search(r"point \(len=(\d+)\): ([0-9A-F]+)", ske)
        self.assertIsNotNone(point, ske[:2000])
        kex = of(evs, "tls.key_exchange")
        self.assertEqual(len(kex), 1)
        self.assertEqual(kex[0]["kex"], "ECDHE")
        self.assertEqual(kex[0]["server_public"], point.group(2).lower())
        # The certificate summary names the same leaf s_client saw.
        chain = msgs["Certificate"]["body"]
        self.assertIn("CN=localhost", str(chain))
        self.assertIn("subject=CN = localhost", out)

    def test_auto_passthrough_after_two_rejections(self):
        srv = self.s_server()
        p = self.proxy("--auto-passthrough", "--upstream-ca", self.pki.ca, log=False)
        url = f"https://localhost:{srv.port}/"
        for _ in range(2):  # curl without our CA: it rejects the forged leaf (unknown_ca)
            r = self.curl(p, url, "--cacert", self.pki.ca)
            self.assertNotEqual(r.returncode, 0)
        evs = p.wait_events(lambda e: of(e, "passthrough.auto"))
        auto = of(evs, "passthrough.auto")
        self.assertEqual([(a["client"], a["host"], a["rejections"]) for a in auto], [("127.0.0.1", "localhost", 2)])
        r = self.curl(p, url, "--cacert", self.pki.ca)  # the third try sees the real certificate
        self.assertEqual(r.returncode, 0, r.stderr)
        evs = p.conn_closed(3)
        self.assertEqual([e["rule"] for e in of(evs, "conn.passthrough")], ["auto"])
        alerts = [a["description"] for a in of(evs, "tls.alert", leg="client") if a["dir"] == "in"]
        self.assertEqual(alerts.count("unknown_ca"), 2)  # curl's own word on why it refused
        self.assertIn("PASSTHROUGH localhost for 127.0.0.1", p.proc.output())
