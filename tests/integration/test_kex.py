"""Key exchange, derived keys and diagnosis through the proxy, against openssl s_server set up for
DHE (custom and RFC 7919 groups), ECDHE on several curves, TLS 1.3 HelloRetryRequest and
resumption."""
import json
import socket
import ssl

from harness import DEADLINE, ProxyTestCase, of, read_all, rsa_cert, run


def pkcs3_params(d, bits):
    """DH parameters (RFC 2631/PKCS #3 PEM) with a random prime that is not a safe prime, g = 2."""
    import base64
    r = run(["openssl", "prime", "-generate", "-bits", str(bits), "-hex"], timeout=120)
    assert r.returncode == 0, r.stderr
    p = int(r.stdout.strip(), 16)

    def der_int(v):
        b = v.to_bytes((v.bit_length() + 8) // 8, "big")  # leading zero keeps it positive
        return b"\x02" + der_len(len(b)) + b

    def der_len(n):
        if n < 128:
            return bytes([n])
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return bytes([0x80 | len(b)]) + b

    body = der_int(p) + der_int(2)
    der = b"\x30" + der_len(len(body)) + body
    path = f"{d}/dh{bits}.pem"
    with open(path, "w") as f:
        f.write("-----BEGIN DH PARAMETERS-----\n" + base64.encodebytes(der).decode() + "-----END DH PARAMETERS-----\n")
    return path


def get(p, ctx=None, session=None, alpn=None):
    ctx = ctx or ssl.create_default_context(cafile=p.ca)
    with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
        with ctx.wrap_socket(s, server_hostname="localhost", session=session) as t:
            t.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return read_all(t), t.session, t.session_reused


class KeyExchange(ProxyTestCase):
    def reverse(self, srv, *args):
        return self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--insecure", *args)

    def kex(self, p, leg="upstream", n=1):
        evs = p.conn_closed(n)
        return evs, of(evs, "tls.key_exchange", leg)

    def test_dhe_rfc7919_and_custom_groups(self):
        cert, key = rsa_cert(self.dir)
        ff = f"{self.dir}/ffdhe3072.pem"
        self.assertEqual(run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
                              "dh_param:ffdhe3072", "-out", ff]).returncode, 0)
        # A random prime: fast to make, but not a safe prime.
        dsa = pkcs3_params(self.dir, 2048)
        for dh, group, rating, safe in ((ff, "ffdhe3072", "strong", True), (dsa, "custom", "weak", False)):
            with self.subTest(group=group):
                srv = self.s_server("-dhparam", dh, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256",
                                    cert=cert, key=key)
                p = self.reverse(srv)
                body, _, _ = get(p)
                self.assertIn(b"200 ok", body)
                evs, k = self.kex(p)
                self.assertEqual(len(k), 1)
                k = k[0]
                self.assertEqual(k["kex"], "DHE")
                self.assertEqual(k["group"], group)
                self.assertEqual(k["rating"], rating, k["reasons"])
                self.assertEqual(k["checks"]["safe_prime"], safe)
                self.assertEqual(k["checks"]["known_group"], group != "custom")
                self.assertTrue(k["checks"]["server_public_in_range"])
                self.assertTrue(k["checks"]["client_public_in_range"])
                self.assertGreater(len(k["p"]), 500)
                ske = [e for e in of(evs, "tls.message", "upstream") if e["type"] == "ServerKeyExchange"][0]
                self.assertEqual(ske["body"]["p"], k["p"])
                self.assertEqual(ske["body"]["public"], k["server_public"])
                self.check_events_file(p.events, ["tls.key_exchange"])

    def test_small_dh_is_refused_with_its_cause(self):
        cert, key = rsa_cert(self.dir)
        # 1024 bits: below Debian's default security level 2 (which wants 2048), so refused.
        dh = pkcs3_params(self.dir, 1024)
        srv = self.s_server("-dhparam", dh, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",
                            cert=cert, key=key, seclevel0=True)
        p = self.reverse(srv)
        with self.assertRaises(ssl.SSLError):
            get(p)
        evs = p.conn_closed()
        err = of(evs, "tls.error", "upstream")[0]
        self.assertEqual(err["cause"], "dh_key_too_small")
        self.assertIn("SECLEVEL", err["hint"])
        self.assertEqual(err["message"], "ServerKeyExchange")
        # Allowed by the user, the same server is traced and rated broken.
        p2 = self.reverse(srv, "--upstream-ciphers", "DEFAULT:@SECLEVEL=0")
        body, _, _ = get(p2)
        self.assertIn(b"200 ok", body)
        _, k = self.kex(p2)
        self.assertEqual(k[0]["rating"], "weak")
        self.assertEqual(k[0]["bits"], 1024)
        self.assertFalse(k[0]["checks"]["safe_prime"])

    def test_ecdhe_curves(self):
        for curve, name, bits in (("P-256", "secp256r1", 256), ("P-384", "secp384r1", 384),
                                  ("P-521", "secp521r1", 521), ("X25519", "x25519", 255)):
            for extra in (["-tls1_2"], ["-tls1_3"]):
                with self.subTest(curve=curve, version=extra[0]):
                    srv = self.s_server("-groups", curve, *extra)
                    p = self.reverse(srv)
                    get(p)
                    evs, k = self.kex(p)
                    k = k[0]
                    self.assertEqual(k["kex"], "ECDHE")
                    self.assertEqual(k["group"], name)
                    self.assertEqual(k["bits"], bits)
                    self.assertEqual(k["rating"], "strong")
                    if name != "x25519":
                        self.assertTrue(k["checks"]["server_point_on_curve"])
                        self.assertTrue(k["checks"]["client_point_on_curve"])
                        self.assertTrue(k["checks"]["server_point_form_uncompressed"])
                    est = of(evs, "tls.established", "upstream")[0]
                    self.assertEqual(est["group"], name)

    def test_tls13_hello_retry_request(self):
        srv = self.s_server("-groups", "P-384", "-tls1_3")
        p = self.reverse(srv)
        get(p)
        evs, k = self.kex(p)
        types = [e["type"] for e in of(evs, "tls.message", "upstream") if e["type"] != "ChangeCipherSpec"]
        self.assertEqual(types[:4], ["ClientHello", "HelloRetryRequest", "ClientHello", "ServerHello"])
        hrr = of(evs, "tls.message", "upstream")[1]["body"]
        self.assertEqual(hrr["key_share"]["group"], "secp384r1")
        self.assertEqual(k[0]["hello_retry_request"], "secp384r1")
        self.assertEqual(k[0]["group"], "secp384r1")
        summary = of(evs, "conn.summary")[0]
        self.assertEqual(summary["upstream"]["hello_retry_request"], "secp384r1")

    def test_resumption_with_tickets_on_the_client_leg(self):
        srv = self.s_server()
        p = self.reverse(srv)
        ctx = ssl.create_default_context(cafile=p.ca)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # a ticket usable at once (TLS 1.3 tickets arrive late)
        _, session, reused = get(p, ctx)
        self.assertFalse(reused)
        _, _, reused = get(p, ctx, session=session)
        self.assertTrue(reused)
        evs = p.conn_closed(2)
        # A TLS 1.2 resumption exchanges no key: only the full handshake has a tls.key_exchange.
        (first,) = of(evs, "tls.key_exchange", "client")
        self.assertFalse(first["resumed"])
        self.assertEqual(first["conn"], 1)
        # Python's view of the ticket the proxy sent (SSLSession, from OpenSSL's client side).
        self.assertTrue(session.has_ticket)
        self.assertEqual(first["ticket_lifetimes"], [session.ticket_lifetime_hint])
        est = of(evs, "tls.established", "client", conn=2)[0]
        self.assertTrue(est["resumed"])
        self.assertEqual(est["resumption"]["mechanism"], "ticket")
        self.assertEqual(est["resumption"]["lifetime"], session.ticket_lifetime_hint)
        self.assertEqual(est["sni"], "localhost")  # server_hostname above

    def test_static_rsa_is_rated_weak(self):
        cert, key = rsa_cert(self.dir)
        srv = self.s_server("-tls1_2", "-cipher", "AES128-GCM-SHA256", cert=cert, key=key)
        p = self.reverse(srv)
        get(p)
        _, k = self.kex(p)
        self.assertEqual(k[0]["kex"], "RSA")
        self.assertEqual(k[0]["rating"], "weak")
        self.assertIn("no forward secrecy", " ".join(k[0]["reasons"]))
        self.assertEqual(k[0]["bits"], 2048)


class SecretsAndDiagnosis(ProxyTestCase):
    def test_secrets_only_with_log_secrets(self):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--insecure", "--trace", "all")
        get(p)
        evs = p.conn_closed()
        self.assertTrue(of(evs, "tls.secret"))
        self.assertFalse(any("secret" in e for e in of(evs, "tls.secret")))
        self.assertFalse(of(evs, "tls.keys"))
        with open(p.keylog) as f:
            secrets = {l.split()[2] for l in f if l.strip()}
        with open(p.events) as f:
            events_text = f.read()
        with open(p.trace) as f:
            trace_text = f.read()
        for s in secrets:
            self.assertNotIn(s, events_text)
            self.assertNotIn(s, trace_text)

        p2 = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--insecure", "--trace", "all",
                        "--log-secrets")
        for maxv in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            ctx = ssl.create_default_context(cafile=p2.ca)
            ctx.maximum_version = maxv
            get(p2, ctx)
        evs = p2.conn_closed(2)
        keys = of(evs, "tls.keys", conn=1)
        got = {(e["leg"], e["direction"], e["epoch"]) for e in keys}
        for leg in ("client", "upstream"):
            for d in ("client_write", "server_write"):
                for epoch in ("handshake", "application"):
                    self.assertIn((leg, d, epoch), got)
        self.assertTrue(all(len(e["iv"]) == 24 for e in keys))
        # The client leg of the second connection is TLS 1.2 (its key block); the upstream leg is
        # TLS 1.3 again, as the proxy offers the server its own versions.
        tls12 = of(evs, "tls.keys", "client", conn=2)
        self.assertEqual({(e["direction"], e["epoch"]) for e in tls12},
                         {("client_write", "application"), ("server_write", "application")})
        self.assertTrue(all(len(e["iv"]) == 8 for e in tls12))  # the 4-byte GCM salt
        self.assertEqual(of(evs, "tls.established", "upstream", conn=2)[0]["version"], "TLSv1.3")
        self.assertTrue(all(e.get("secret") for e in of(evs, "tls.secret")))
        self.check_events_file(p2.events, ["tls.keys", "tls.secret"])

    def test_client_rejecting_the_forged_certificate(self):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--insecure")
        ctx = ssl.create_default_context()  # does not trust the tlstrace CA
        with self.assertRaises(ssl.SSLCertVerificationError):
            get(p, ctx)
        evs = p.conn_closed()
        err = of(evs, "tls.error", "client")[0]
        self.assertEqual(err["cause"], "client_rejected_certificate")
        self.assertEqual(err["alert_received"], "unknown_ca")
        self.assertIn("install the tlstrace CA", err["hint"])

    def test_untrusted_and_mismatch_causes(self):
        srv = self.s_server(cert=self.pki.bad_cert, key=self.pki.bad_key)
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca)
        with self.assertRaises(ssl.SSLError):
            get(p)
        evs = p.conn_closed()
        err = of(evs, "tls.error", "upstream")[0]
        self.assertEqual(err["cause"], "upstream_certificate_untrusted")
        self.assertEqual(err["verify_depth"], 0)
        self.assertIn("self-signed", err["verify_error"])
        self.assertIn("--upstream-ca", err["hint"])
        client_err = of(evs, "tls.error", "client")[0]
        self.assertEqual((client_err["cause"], client_err["origin"]), ("upstream_certificate_untrusted", "upstream"))
        self.assertEqual(client_err["alert"], "handshake_failure")

    def test_version_mismatch_and_proxy_induced_downgrade(self):
        srv = self.s_server("-tls1_3")
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--insecure", "--upstream-tls-max", "1.2")
        with self.assertRaises(ssl.SSLError):
            get(p)
        evs = p.conn_closed()
        self.assertEqual(of(evs, "tls.error", "upstream")[0]["cause"], "version_mismatch")
        summary = of(evs, "conn.summary")[0]
        self.assertIn("TLSv1.3", summary["not_forwarded"]["versions"])

        srv2 = self.s_server()
        p2 = self.proxy("-m", "reverse", "-u", f"localhost:{srv2.port}", "--insecure", "--upstream-tls-max", "1.2")
        get(p2)
        evs = p2.conn_closed()
        summary = of(evs, "conn.summary")[0]
        self.assertEqual(summary["client"]["version"], "TLSv1.3")
        self.assertEqual(summary["upstream"]["version"], "TLSv1.2")
        self.assertTrue(any("proxy-induced" in d for d in summary["downgrade"]), summary["downgrade"])
        with open(p2.trace) as f:
            self.assertIn("== conn.summary", f.read())

    def test_summaries_of_alike_and_unlike_connections(self):
        # Connections with equal handshakes share one copy of the summary's handshake part; each
        # summary must still tell its own connection's story, in any order of alike and unlike.
        srv = self.s_server()
        # One io thread: the shared copies are per thread.
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--insecure", "--threads", "1")
        tls12 = ssl.create_default_context(cafile=p.ca)
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        versions = ["TLSv1.3", "TLSv1.2", "TLSv1.3", "TLSv1.2"]
        for i, v in enumerate(versions):
            get(p, tls12 if v == "TLSv1.2" else None)
            p.conn_closed(i + 1)
        evs = p.conn_closed(len(versions))
        summaries = sorted(of(evs, "conn.summary"), key=lambda e: e["conn"])
        self.assertEqual([s["client"]["version"] for s in summaries], versions)
        self.assertEqual([s["upstream"]["version"] for s in summaries], ["TLSv1.3"] * 4)
        for s in summaries:
            self.assertEqual(s["client"]["offered_versions"][0], s["client"]["version"])
        handshake = [{k: v for k, v in s["client"].items() if k not in ("timings", "alerts")} for s in summaries]
        self.assertEqual(handshake[0], handshake[2])
        self.assertNotEqual(handshake[0], handshake[1])
        self.assertEqual(len({s["client"]["timings"]["handshake_ms"] for s in summaries}), 4)


class MirrorAndFormats(ProxyTestCase):
    def test_mirror_client_offers_upstream_what_the_client_offered(self):
        srv = self.s_server()
        for mirror in (False, True):
            with self.subTest(mirror=mirror):
                args = ["--mirror-client"] if mirror else []
                p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--insecure", *args)
                ctx = ssl.create_default_context(cafile=p.ca)
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305")
                get(p, ctx)
                evs = p.conn_closed()
                up_hello = [e for e in of(evs, "tls.message", "upstream") if e["type"] == "ClientHello"][0]["body"]
                suites = {c["name"] for c in up_hello["cipher_suites"]}
                summary = of(evs, "conn.summary")[0]
                if mirror:
                    self.assertEqual(suites, {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                                              "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                                              "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"})
                    self.assertNotIn("TLSv1.3", up_hello.get("supported_versions", []))
                    self.assertEqual(of(evs, "tls.established", "upstream")[0]["version"], "TLSv1.2")
                    m = of(evs, "tls.mirror", "upstream")[0]
                    self.assertEqual(m["mirrored"]["versions"], "TLSv1.2..TLSv1.2")
                    self.assertTrue(any("order" in x["item"] for x in m["not_mirrored"]))
                    self.assertEqual(summary["not_forwarded"]["cipher_suites"], [])
                else:
                    self.assertGreater(len(suites), 10)
                    self.assertFalse(of(evs, "tls.mirror"))
                    # The client could not get TLS 1.3, but the upstream leg did: visible, not silent.
                    self.assertEqual(of(evs, "tls.established", "upstream")[0]["version"], "TLSv1.3")

    def test_jsse_and_openssl_shaped_traces(self):
        srv = self.s_server()
        for fmt, marks in (("jsse", ["javax.net.ssl|DEBUG|#1|client|", "|Consuming ClientHello handshake message (",
                                     "|Produced ServerHello handshake message (", '"cipher suites"']),
                           ("openssl", ["[#1 client] Received Message", "[#1 upstream] Sent Message",
                                        "ClientHello, Length=", "{0x13, 0x01} TLS_AES_128_GCM_SHA256"])):
            with self.subTest(format=fmt):
                p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--insecure", "--format", fmt)
                get(p)
                p.conn_closed()
                with open(p.trace) as f:
                    text = f.read()
                for m in marks:
                    self.assertIn(m, text)


if __name__ == "__main__":
    import unittest
    unittest.main()
