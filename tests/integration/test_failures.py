"""Failed handshakes keep their analysis, and their causes and hints are right (issue 7, items 4
and 6), against real peers: openssl s_server with a 1024-bit DH group made here and with a crafted
g = p-1 group (its own -trace output gives the p, g and Ys it sent), a small Python TLS 1.2 server
that sends Ys = 1 (no real stack can be made to), s_server -Verify 1, s_client -tls1/-tls1_1 and
Python clients below the proxy's minimum version, and s_client/s_server renegotiations."""
import base64
import os
import re
import socket
import ssl
import struct
import subprocess
import threading
import time
import warnings

from harness import DEADLINE, ProxyTestCase, Proc, ThreadedServer, free_port, of, rsa_cert, run, wait_port

# RFC 2409 6.2, the Oakley group 2 (1024-bit MODP) prime.
OAKLEY2 = int("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
              "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0"
              "BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF", 16)


def der_len(n):
    if n < 128:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der_int(v):
    b = v.to_bytes((v.bit_length() + 8) // 8, "big")  # a leading zero keeps it positive
    return b"\x02" + der_len(len(b)) + b


def write_dhparams(path, p, g):
    """PKCS #3 DHParameter PEM (SEQUENCE { prime, base })."""
    body = der_int(p) + der_int(g)
    der = b"\x30" + der_len(len(body)) + body
    with open(path, "w") as f:
        f.write("-----BEGIN DH PARAMETERS-----\n" + base64.encodebytes(der).decode() +
                "-----END DH PARAMETERS-----\n")
    return path


def traced_ske(s_server_output):
    """dh_p, dh_g, dh_Ys of the ServerKeyExchange in s_server -trace output, lowercase hex."""
    m = re.search(r"ServerKeyExchange.*?dh_p \(len=\d+\): ([0-9A-F]+)\s+dh_g \(len=\d+\): ([0-9A-F]+)\s+"
                  r"dh_Ys \(len=\d+\): ([0-9A-F]+)", s_server_output, re.S)
    assert m, "no ServerKeyExchange in the s_server trace"
    return tuple(x.lower() for x in m.groups())


def python_get(port, ctx=None):
    ctx = ctx or ssl._create_unverified_context()
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return t.recv(100)


class YsOneServer(ThreadedServer):
    """A minimal TLS 1.2 server: ServerHello (TLS_DHE_RSA_WITH_AES_128_GCM_SHA256), its certificate,
    a ServerKeyExchange with the RFC 7919 ffdhe2048 group, g = 2 and Ys = 1, signed for real
    (rsa_pkcs1_sha256, by openssl dgst, RFC 5246 7.4.3), ServerHelloDone; then it waits for the
    client to give up. It records what it sent (the independent source of p, g and Ys)."""

    def __init__(self, d, cert, key):
        self.key = key
        with open(cert) as f:
            pem = f.read()
        self.der = base64.b64decode("".join(pem.split("-----")[2].split()))
        r = run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048",
                 "-out", f"{d}/ffdhe2048.pem"])
        assert r.returncode == 0, r.stderr
        asn1 = run(["openssl", "asn1parse", "-in", f"{d}/ffdhe2048.pem"]).stdout.decode()
        ints = re.findall(r"INTEGER\s+:([0-9A-F]+)", asn1)
        self.p, self.g, self.ys = bytes.fromhex(ints[0]), bytes.fromhex(ints[1]), b"\x01"
        self.sent_ske = False
        self.received_alert = None
        super().__init__()

    @staticmethod
    def record(msg_type, body):
        hs = bytes([msg_type]) + len(body).to_bytes(3, "big") + body
        return b"\x16\x03\x03" + struct.pack(">H", len(hs)) + hs

    def read_record(self, c):
        head = b""
        while len(head) < 5:
            chunk = c.recv(5 - len(head))
            if not chunk:
                return None, b""
            head += chunk
        n = struct.unpack(">H", head[3:5])[0]
        body = b""
        while len(body) < n:
            chunk = c.recv(n - len(body))
            if not chunk:
                break
            body += chunk
        return head[0], body

    def handle(self, c):
        with c:
            kind, hello = self.read_record(c)
            if kind != 22 or not hello or hello[0] != 1:
                return  # the harness's port probe, or not a ClientHello
            client_random = hello[6:38]
            server_random = os.urandom(32)
            # renegotiation_info (RFC 5746): OpenSSL will not talk to a server without it.
            ext = b"\xff\x01\x00\x01\x00"
            sh = b"\x03\x03" + server_random + b"\x00" + b"\x00\x9e" + b"\x00" + struct.pack(">H", len(ext)) + ext
            certs = len(self.der).to_bytes(3, "big") + self.der
            certificate = len(certs).to_bytes(3, "big") + certs
            params = b"".join(struct.pack(">H", len(v)) + v for v in (self.p, self.g, self.ys))
            sig = run(["openssl", "dgst", "-sha256", "-sign", self.key],
                      input=client_random + server_random + params).stdout
            ske = params + b"\x04\x01" + struct.pack(">H", len(sig)) + sig
            c.sendall(self.record(2, sh) + self.record(11, certificate) + self.record(12, ske) + self.record(14, b""))
            self.sent_ske = True
            while True:
                kind, body = self.read_record(c)
                if kind is None:
                    return
                if kind == 21 and len(body) == 2:
                    self.received_alert = body[1]
                    return


class CountingServer(ThreadedServer):
    """Counts the TCP connections it accepts (the origin that must see none)."""

    def __init__(self):
        self.accepted = 0
        super().__init__()

    def handle(self, c):
        self.accepted += 1
        c.close()


class ResettingServer(ThreadedServer):
    """Accepts, then resets at once (SO_LINGER 0), in the accept loop itself: the TCP handshake
    completes and the reset follows within microseconds, often before the proxy's event loop has
    heard that its connect completed."""

    def __init__(self):
        self.peers = []  # the proxy's ends, as this server saw them
        super().__init__()

    def accepted_in_loop(self, c, peer):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        self.peers.append("%s:%d" % peer[:2])


class ResetAfterAccept(ProxyTestCase):
    def test_a_target_that_accepts_then_resets_was_connected_every_time(self):
        # Whether the reset comes before or after the proxy hears its connect completed, the
        # connection was made: tcp.connect with our end (the server's word), then the leg's reset.
        srv = ResettingServer()
        self._stops.append(srv.stop)
        p = self.proxy()
        n = 30
        for _ in range(n):
            r = run(["curl", "-sS", "--max-time", "10", "-x", f"http://{p.addr}", "--cacert", p.ca,
                     f"https://127.0.0.1:{srv.port}/"])
            self.assertNotEqual(r.returncode, 0)
        evs = p.conn_closed(n)
        connects = of(evs, "tcp.connect", "upstream")
        self.assertEqual(len(connects), n)
        self.assertEqual([c.get("error") for c in connects], [None] * n, connects)
        self.assertEqual(sorted(c["local"] for c in connects), sorted(srv.peers))
        closes = of(evs, "tcp.close", "upstream")
        self.assertEqual([(c["by"], c["how"]) for c in closes], [("peer", "rst")] * n)
        self.assertEqual(of(evs, "proxy.error"), [])


class FailedHandshakes(ProxyTestCase):
    def reverse(self, port, *args, ca=None):
        trust = ["--upstream-ca", ca] if ca else ["--insecure"]
        return self.proxy("-m", "reverse", "-u", f"localhost:{port}", *trust, *args)

    def traced_server(self, *extra, cert, key):
        """s_server -trace that ends after the harness's port probe and one connection (so its
        output is flushed); returns it and waits for its exit in finish()."""
        return self.s_server("-trace", "-naccept", "2", *extra, cert=cert, key=key, seclevel0=True)

    def server_output(self, srv):
        end = time.time() + DEADLINE
        while srv.proc.p.poll() is None and time.time() < end:
            time.sleep(0.05)
        return srv.proc.output()

    def failed_upstream(self, p):
        evs = p.conn_closed()
        names = [e["event"] for e in evs if e.get("leg") == "upstream" and e["event"] in ("tls.key_exchange", "tls.error")]
        self.assertEqual(names, ["tls.key_exchange", "tls.error"], "analysed before the refusal")
        return evs, of(evs, "tls.key_exchange", "upstream")[0], of(evs, "tls.error", "upstream")[0]

    def test_refused_1024_bit_group_is_still_analysed(self):
        cert, key = rsa_cert(self.dir)
        dh = f"{self.dir}/dh1024.pem"
        self.assertEqual(run(["openssl", "dhparam", "-out", dh, "1024"], timeout=120).returncode, 0)
        srv = self.traced_server("-dhparam", dh, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",
                                 cert=cert, key=key)
        p = self.reverse(srv.port, ca=cert)  # trusted: the certificate is no reason to fail
        with self.assertRaises(ssl.SSLError):
            python_get(p.port)
        evs, k, err = self.failed_upstream(p)
        tp, tg, tys = traced_ske(self.server_output(srv))
        self.assertEqual((k["p"], k["g"], k["server_public"]), (tp, tg, tys))
        # The certificate that arrived is traced too, before the analysis and the error.
        up = [e["event"] for e in evs if e.get("leg") == "upstream"]
        self.assertLess(up.index("tls.trust"), up.index("tls.key_exchange"))
        trust = of(evs, "tls.trust", "upstream")[0]
        self.assertTrue(trust["verified"])
        fp = run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"]).stdout.decode()
        self.assertEqual(trust["chain"][0]["sha256"], fp.split("=")[1].strip().replace(":", "").lower())
        self.assertEqual(k["kex"], "DHE")
        self.assertEqual(k["bits"], 1024)
        self.assertEqual(k["rating"], "weak", k["reasons"])
        self.assertTrue(k["checks"]["safe_prime"])  # openssl dhparam makes safe primes
        self.assertTrue(k["checks"]["g_in_range"])
        self.assertEqual(err["cause"], "dh_key_too_small")
        self.assertIn("1024-bit", err["hint"])
        self.assertEqual(of(evs, "tls.error", "client")[0]["cause"], "dh_key_too_small")
        self.assertEqual(of(evs, "conn.summary")[0]["upstream"]["key_exchange_rating"], "weak")
        self.check_events_file(p.events, ["tls.key_exchange"])

    def test_g_equal_to_p_minus_1_is_named(self):
        cert, key = rsa_cert(self.dir)
        dh = write_dhparams(f"{self.dir}/g_p_minus_1.pem", OAKLEY2, OAKLEY2 - 1)
        srv = self.traced_server("-dhparam", dh, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",
                                 cert=cert, key=key)
        p = self.reverse(srv.port)
        with self.assertRaises(ssl.SSLError):
            python_get(p.port)
        evs, k, err = self.failed_upstream(p)
        tp, tg, tys = traced_ske(self.server_output(srv))
        self.assertEqual((k["p"], k["g"], k["server_public"]), (tp, tg, tys))
        self.assertEqual(int(tg, 16), OAKLEY2 - 1)
        self.assertEqual(k["group"], "oakley1024")
        self.assertFalse(k["checks"]["g_in_range"])
        self.assertEqual(k["rating"], "broken")
        self.assertEqual(err["cause"], "invalid_dh_parameter")
        self.assertIn("g = p-1", err["hint"])
        # With g = p-1 the server's own public value can only be 1 or p-1, also out of range.
        self.assertIn(int(tys, 16), (1, OAKLEY2 - 1))
        self.assertFalse(k["checks"]["server_public_in_range"])

    def test_server_public_value_of_1_is_named(self):
        cert, key = rsa_cert(self.dir)
        srv = YsOneServer(self.dir, cert, key)
        self._stops.append(srv.stop)
        p = self.reverse(srv.port)
        with self.assertRaises(ssl.SSLError):
            python_get(p.port)
        evs, k, err = self.failed_upstream(p)
        self.assertTrue(srv.sent_ske)
        self.assertEqual((k["p"], k["g"], k["server_public"]), (srv.p.hex(), srv.g.hex(), srv.ys.hex()))
        self.assertEqual(k["group"], "ffdhe2048")
        self.assertTrue(k["checks"]["g_in_range"])
        self.assertFalse(k["checks"]["server_public_in_range"])
        self.assertEqual(k["rating"], "broken")
        self.assertEqual(err["cause"], "invalid_dh_parameter")
        self.assertIn("Ys = 1", err["hint"])
        self.assertIsNotNone(srv.received_alert, "the proxy refused the server with an alert")

    def test_tls12_client_certificate_demand(self):
        srv = self.traced_server("-Verify", "1", "-tls1_2", cert=self.pki.cert, key=self.pki.key)
        p = self.reverse(srv.port)
        with self.assertRaises(ssl.SSLError):
            python_get(p.port)
        evs = p.conn_closed()
        out = self.server_output(srv)
        # The server's own account: it asked, got no certificate and refused.
        self.assertIn("CertificateRequest", out)
        self.assertIn("peer did not return a certificate", out)
        err = of(evs, "tls.error", "upstream")[0]
        self.assertEqual(err["alert_received"], "handshake_failure")
        self.assertEqual(err["cause"], "client_certificate_required")
        self.assertIn("client certificate", err["hint"])
        client_err = of(evs, "tls.error", "client")[0]
        self.assertEqual((client_err["cause"], client_err["origin"]), ("client_certificate_required", "upstream"))

    def test_old_client_refused_before_connecting_upstream(self):
        origin = CountingServer()
        self._stops.append(origin.stop)
        p = self.reverse(origin.port)
        cases = [("s_client -tls1", "TLSv1.0", "1.0"), ("s_client -tls1_1", "TLSv1.1", "1.1"),
                 ("python TLSv1.1", "TLSv1.1", "1.1")]
        for n, (client, version, option) in enumerate(cases, 1):
            with self.subTest(client=client):
                if client.startswith("s_client"):
                    r = run(["openssl", "s_client", "-connect", p.addr, client.split()[1],
                             "-cipher", "DEFAULT@SECLEVEL=0"], input=b"")
                    said = (r.stdout + r.stderr).decode(errors="replace")
                    self.assertIn("alert protocol version", said)  # the client's own account
                else:
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
                    ctx.set_ciphers("DEFAULT@SECLEVEL=0")
                    with warnings.catch_warnings():  # deprecated, which is the point
                        warnings.simplefilter("ignore", DeprecationWarning)
                        ctx.minimum_version, ctx.maximum_version = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
                    with self.assertRaisesRegex(ssl.SSLError, "PROTOCOL_VERSION"):
                        python_get(p.port, ctx)
                evs = p.conn_closed(n)
                err = of(evs, "tls.error", "client", conn=n)[0]
                self.assertEqual(err["cause"], "client_version_too_low")
                self.assertEqual(err["stage"], "client_hello")
                self.assertEqual(err["alert"], "protocol_version")
                self.assertIn(f"at most {version}", err["hint"])
                self.assertIn(f"--client-tls-min {option}", err["hint"])
                self.assertEqual(of(evs, "tcp.connect", conn=n), [])
        time.sleep(0.2)
        self.assertEqual(origin.accepted, 0, "the origin saw a connection")
        # The hint's advice works: the same client gets through with it.
        srv = self.s_server()
        p2 = self.reverse(srv.port, "--client-tls-min", "1.0")
        r = run(["openssl", "s_client", "-connect", p2.addr, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0"], input=b"")
        self.assertIn(b"Protocol  : TLSv1", r.stdout)
        est = of(p2.conn_closed(), "tls.established", "client")[0]
        self.assertEqual(est["version"], "TLSv1.0")

    def interactive(self, cmd, name):
        proc = Proc(cmd, f"{self.dir}/{name}.log", stdin=subprocess.PIPE)
        self._stops.append(proc.stop)
        return proc

    def type_into(self, proc, text, wait=0.5):
        proc.p.stdin.write(text)
        proc.p.stdin.flush()
        time.sleep(wait)

    def renegotiation(self, who):
        port = free_port()
        srv = self.interactive(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", self.pki.cert,
                                "-key", self.pki.key, "-tls1_2", "-msg"], "s_server")
        wait_port(port, srv.p)
        p = self.reverse(port)
        cl = self.interactive(["openssl", "s_client", "-connect", p.addr, "-tls1_2", "-msg"], "s_client")
        p.wait_events(lambda evs: len(of(evs, "tls.established")) >= 2)
        self.type_into(cl, b"hello before\n")
        # R on the client's stdin (s_client's renegotiation command), r on the server's.
        self.type_into(cl if who == "client" else srv, b"R\n" if who == "client" else b"r\n", wait=1.0)
        if cl.p.poll() is None:
            self.type_into(cl, b"hello after\n")
        return p, srv, cl

    def test_renegotiation_refused_by_the_proxy_does_not_blame_the_client(self):
        p, srv, cl = self.renegotiation("client")
        evs = p.wait_events(lambda evs: of(evs, "tls.error", "client"))
        said = cl.output()
        self.assertIn("RENEGOTIATING", said)
        self.assertIn("no renegotiation", said)  # s_client got the proxy's no_renegotiation
        alerts = [(a["dir"], a["description"]) for a in of(evs, "tls.alert", "client")]
        self.assertIn(("out", "no_renegotiation"), alerts)
        err = of(evs, "tls.error", "client")[0]
        self.assertEqual(err["cause"], "renegotiation_refused")
        self.assertIn("tlstrace refused it", err["hint"])
        self.assertNotIn("the peer refused", err["hint"])

    def test_accepted_renegotiation_gets_its_own_established(self):
        p, srv, cl = self.renegotiation("server")
        evs = p.wait_events(lambda evs: len(of(evs, "tls.established", "upstream")) >= 2)
        said = srv.output()
        # The server's own account: a HelloRequest went out and a second ClientHello came in.
        self.assertIn("HelloRequest", said)
        self.assertEqual(said.count(", ClientHello"), 2, said)
        est = of(evs, "tls.established", "upstream")
        self.assertNotIn("renegotiation", est[0])
        self.assertTrue(est[1]["renegotiation"])
        self.assertEqual(est[1]["version"], "TLSv1.2")
        self.assertIn("hello after", said)  # data still flows after it
        self.assertEqual(of(evs, "tls.error"), [])
