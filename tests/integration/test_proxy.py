"""tlstrace between real clients (curl, openssl s_client, Python ssl) and openssl s_server."""
import socket
import ssl
import subprocess
import unittest

from harness import DEADLINE, ProxyTestCase, dead_port, of, read_all, run, send_connect


def connect_via(proxy_addr, target):
    """A TCP socket tunnelled through the explicit proxy with CONNECT."""
    host, port = proxy_addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=DEADLINE)
    head = send_connect(s, target)
    return s, head.decode(errors="replace")


def http_get(tls_sock):
    tls_sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    return read_all(tls_sock).decode(errors="replace")


class ExplicitMode(ProxyTestCase):
    def curl(self, proxy, url, *extra):
        return run(["curl", "-sS", "--max-time", "10", "-x", f"http://{proxy.addr}", "--cacert", proxy.ca,
                    *extra, url])

    def test_curl_tls13_both_legs_traced(self):
        srv = self.s_server()
        p = self.proxy("--upstream-ca", self.pki.ca)
        r = self.curl(p, f"https://localhost:{srv.port}/", "--http1.1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"s_server", r.stdout)
        evs = p.conn_closed()
        for leg in ("client", "upstream"):
            est = of(evs, "tls.established", leg)
            self.assertEqual(len(est), 1, leg)
            self.assertEqual(est[0]["version"], "TLSv1.3")
            self.assertEqual(est[0]["sni"], "localhost")
        trust = of(evs, "tls.trust", "upstream")[0]
        self.assertTrue(trust["verified"])
        self.assertTrue(trust["hostname_match"])
        self.assertEqual(trust["chain"][0]["subject"], "CN=localhost")
        # Every handshake message of both legs, TLS 1.3's encrypted ones included.
        types = lambda leg, d: [e["type"] for e in of(evs, "tls.message", leg) if e["dir"] == d]
        self.assertEqual(types("client", "in")[0], "ClientHello")
        for t in ("ServerHello", "EncryptedExtensions", "Certificate", "CertificateVerify", "Finished"):
            self.assertIn(t, types("upstream", "in"))
            self.assertIn(t, types("client", "out"))
        # Wire order across both legs (messages are decoded after each flight is sent, and the
        # client's ClientHello while the upstream connect is under way: neither may reorder).
        seq = [(e["leg"], e["event"], e.get("type", "")) for e in evs
               if e["event"] in ("tls.message", "tls.trust", "tls.established")
               and e.get("type") != "ChangeCipherSpec"]  # (middlebox compatibility: where it may)
        want = [("client", "tls.message", "ClientHello"), ("upstream", "tls.message", "ClientHello"), ("upstream", "tls.message", "ServerHello"),
                ("upstream", "tls.message", "EncryptedExtensions"), ("upstream", "tls.message", "Certificate"),
                ("upstream", "tls.message", "CertificateVerify"), ("upstream", "tls.message", "Finished"),
                ("upstream", "tls.message", "Finished"), ("upstream", "tls.trust", ""),
                ("upstream", "tls.established", ""), ("client", "tls.message", "ServerHello"),
                ("client", "tls.message", "EncryptedExtensions"), ("client", "tls.message", "Certificate"),
                ("client", "tls.message", "CertificateVerify"), ("client", "tls.message", "Finished"),
                ("client", "tls.message", "Finished")]
        self.assertEqual(seq[:len(want)], want)
        stamps = [e["ts"] for e in evs]
        self.assertEqual(stamps, sorted(stamps))  # each event keeps the time it happened
        ch = of(evs, "tls.message", "client")[0]["body"]
        self.assertEqual(ch["sni"], "localhost")
        self.assertEqual(len(ch["random"]), 64)
        self.assertIn("TLSv1.3", ch["supported_versions"])
        closes = of(evs, "tcp.close")
        self.assertEqual({e["leg"] for e in closes}, {"client", "upstream"})
        cc = of(evs, "conn.close")[0]
        self.assertEqual(cc["outcome"], "ok")
        self.assertGreater(cc["bytes_server_to_client"], 100)
        self.check_events_file(p.events, ["conn.open", "tcp.connect", "tls.message", "tls.trust",
                                          "tls.established", "tcp.close", "conn.close"])
        # The text trace: every line names the connection and the leg.
        with open(p.trace) as f:
            text = f.read()
        self.assertIn("#1 client   <- ClientHello", text)
        self.assertIn("#1 upstream <- ServerHello", text)

    def test_curl_tls12(self):
        srv = self.s_server("-tls1_2")
        p = self.proxy("--upstream-ca", self.pki.ca)
        r = self.curl(p, f"https://localhost:{srv.port}/", "--tls-max", "1.2", "--http1.1")
        self.assertEqual(r.returncode, 0, r.stderr)
        evs = p.conn_closed()
        for leg in ("client", "upstream"):
            self.assertEqual(of(evs, "tls.established", leg)[0]["version"], "TLSv1.2")
        types = [e["type"] for e in of(evs, "tls.message", "upstream") if e["dir"] == "in"]
        self.assertEqual(types[:4], ["ServerHello", "Certificate", "ServerKeyExchange", "ServerHelloDone"])

    def test_python_ssl_through_connect_alpn_mirrored(self):
        for server_alpn, expect in (("h2", "h2"), ("http/1.1", "http/1.1")):
            with self.subTest(server_alpn=server_alpn):
                srv = self.s_server("-alpn", server_alpn)
                p = self.proxy("--upstream-ca", self.pki.ca)
                s, head = connect_via(p.addr, f"localhost:{srv.port}")
                self.assertTrue(head.startswith("HTTP/1.1 200"), head)
                ctx = ssl.create_default_context(cafile=p.ca)
                ctx.set_alpn_protocols(["h2", "http/1.1"])
                with ctx.wrap_socket(s, server_hostname="localhost") as t:
                    self.assertEqual(t.selected_alpn_protocol(), expect)
                evs = p.conn_closed()
                self.assertEqual(of(evs, "tls.established", "upstream")[0]["alpn"], expect)
                self.assertEqual(of(evs, "tls.established", "client")[0]["alpn"], expect)
                up_hello = [e for e in of(evs, "tls.message", "upstream") if e["type"] == "ClientHello"][0]
                self.assertEqual(up_hello["body"]["alpn"], ["h2", "http/1.1"])

    def test_untrusted_upstream_refused_then_relayed_with_insecure(self):
        srv = self.s_server(cert=self.pki.bad_cert, key=self.pki.bad_key)
        p = self.proxy("--upstream-ca", self.pki.ca)
        r = self.curl(p, f"https://localhost:{srv.port}/")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"handshake failure", r.stderr.lower().replace(b"_", b" "))
        evs = p.conn_closed()
        trust = of(evs, "tls.trust", "upstream")[0]
        self.assertFalse(trust["verified"])
        self.assertIn("self-signed", trust["error"])
        self.assertTrue(of(evs, "tls.error", "upstream"))
        self.assertTrue(of(evs, "tls.error", "client"))
        sent = [e for e in of(evs, "tls.alert", "client") if e["dir"] == "out"]
        self.assertEqual(sent[0]["description"], "handshake_failure")

        p2 = self.proxy("--upstream-ca", self.pki.ca, "--insecure")
        r = self.curl(p2, f"https://localhost:{srv.port}/", "--http1.1")
        self.assertEqual(r.returncode, 0, r.stderr)
        evs = p2.conn_closed()
        self.assertFalse(of(evs, "tls.trust", "upstream")[0]["verified"])
        self.assertEqual(of(evs, "conn.close")[0]["outcome"], "ok")

    def test_hostname_mismatch_is_refused(self):
        srv = self.s_server()
        p = self.proxy("--upstream-ca", self.pki.ca)
        s, head = connect_via(p.addr, f"127.0.0.1:{srv.port}")
        ctx = ssl.create_default_context(cafile=p.ca)
        with self.assertRaises(ssl.SSLError):
            ctx.wrap_socket(s, server_hostname="wrong.test")
        s.close()
        evs = p.conn_closed()
        trust = of(evs, "tls.trust", "upstream")[0]
        self.assertFalse(trust["verified"])
        self.assertFalse(trust["hostname_match"])
        self.assertEqual(trust["hostname"], "wrong.test")

    def test_upstream_down_gives_502(self):
        dead = dead_port(self)
        p = self.proxy()
        r = self.curl(p, f"https://localhost:{dead}/", "-v")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"502", r.stderr)
        s, head = connect_via(p.addr, f"127.0.0.1:{dead}")
        s.close()
        self.assertTrue(head.startswith("HTTP/1.1 502 Bad Gateway"), head)
        self.assertIn("refused", head.lower())
        evs = p.conn_closed(2)
        self.assertIn("error", of(evs, "tcp.connect")[0])

    def test_malformed_connect_gives_400(self):
        p = self.proxy()
        host, port = p.addr.rsplit(":", 1)
        for req in (b"CONNECT nowhere HTTP/1.1\r\n\r\n", b"POST / HTTP/1.1\r\nHost: x\r\n\r\n"):
            with socket.create_connection((host, int(port)), timeout=DEADLINE) as s:
                s.sendall(req)
                resp = s.recv(4096).decode()
                self.assertTrue(resp.startswith("HTTP/1.1 400"), resp)
        p.conn_closed(2)

    def test_non_tls_after_connect_is_relayed(self):
        echo = self.echo()
        p = self.proxy()
        s, head = connect_via(p.addr, f"127.0.0.1:{echo.port}")
        self.assertTrue(head.startswith("HTTP/1.1 200"))
        s.sendall(b"hello, plain world\n")
        got = b""
        while len(got) < 19:
            got += s.recv(100)
        self.assertEqual(got, b"hello, plain world\n")
        s.shutdown(socket.SHUT_WR)  # half-close: the echo server sees FIN and closes too
        self.assertEqual(s.recv(100), b"")
        s.close()
        evs = p.conn_closed()
        self.assertTrue(of(evs, "conn.plaintext", "client"))
        self.assertEqual(of(evs, "conn.close")[0]["bytes_client_to_server"], 19)
        client_close = of(evs, "tcp.close", "client")[0]
        self.assertEqual((client_close["by"], client_close["how"]), ("peer", "fin"))

    def test_absolute_form_http_is_relayed(self):
        import http.server
        import threading

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = f"path={self.path}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), H)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        self._stops.append(lambda: (srv.shutdown(), srv.server_close()))
        p = self.proxy()
        r = run(["curl", "-sS", "--max-time", "10", "-x", f"http://{p.addr}",
                 f"http://127.0.0.1:{srv.server_port}/x?y=1"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"path=/x?y=1")
        p.conn_closed()


class ReverseMode(ProxyTestCase):
    def test_s_client_and_python(self):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca)
        for args in (["-tls1_3"], ["-tls1_2"]):
            with self.subTest(args=args):
                r = run(["openssl", "s_client", "-connect", p.addr, "-servername", "localhost",
                         "-CAfile", p.ca, "-verify_return_error", "-ign_eof", *args],
                        input=b"GET / HTTP/1.0\r\n\r\n")
                self.assertIn(b"Verify return code: 0 (ok)", r.stdout)
                self.assertIn(b"HTTP/1.0 200 ok", r.stdout)
        ctx = ssl.create_default_context(cafile=p.ca)
        with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                self.assertIn("HTTP/1.0 200 ok", http_get(t))
        evs = p.conn_closed(3)
        versions = sorted(e["version"] for e in of(evs, "tls.established", "client"))
        self.assertEqual(versions, ["TLSv1.2", "TLSv1.3", "TLSv1.3"])
        self.assertTrue(all(e.get("target") == f"localhost:{srv.port}" for e in of(evs, "conn.open")))

    def test_no_sni_uses_upstream_name(self):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca)
        r = run(["openssl", "s_client", "-connect", p.addr, "-noservername", "-CAfile", p.ca,
                 "-verify_hostname", "localhost", "-verify_return_error", "-ign_eof"],
                input=b"GET / HTTP/1.0\r\n\r\n")
        self.assertIn(b"Verify return code: 0 (ok)", r.stdout)
        evs = p.conn_closed()
        self.assertEqual(of(evs, "tls.trust", "upstream")[0]["hostname"], "localhost")

    def test_upstream_down_gives_alert(self):
        p = self.proxy("-m", "reverse", "-u", f"127.0.0.1:{dead_port(self)}")
        ctx = ssl.create_default_context(cafile=p.ca)
        with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
            with self.assertRaises(ssl.SSLError) as cm:
                ctx.wrap_socket(s, server_hostname="localhost")
        self.assertIn("HANDSHAKE_FAILURE", str(cm.exception).upper())
        evs = p.conn_closed()
        self.assertIn("error", of(evs, "tcp.connect", "upstream")[0])
        self.assertEqual([e["description"] for e in of(evs, "tls.alert", "client")], ["handshake_failure"])


class KeyLog(ProxyTestCase):
    def test_keylog_matches_both_peers_secrets(self):
        server_keys = f"{self.dir}/server.keys"
        srv = self.s_server("-keylogfile", server_keys)
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca)
        client_keys = f"{self.dir}/client.keys"
        ctx = ssl.create_default_context(cafile=p.ca)
        ctx.keylog_filename = client_keys
        for maxv in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            ctx.maximum_version = maxv
            with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
                with ctx.wrap_socket(s, server_hostname="localhost") as t:
                    self.assertIn("HTTP/1.0 200 ok", http_get(t))
        evs = p.conn_closed(2)
        import os
        import stat
        self.assertEqual(stat.S_IMODE(os.stat(p.keylog).st_mode), 0o600)
        def lines(path):
            with open(path) as f:
                return {l.strip() for l in f if l.strip() and not l.startswith("#")}
        proxy_lines, client_lines, server_lines = lines(p.keylog), lines(client_keys), lines(server_keys)
        # The proxy holds exactly the secrets of both its peers: the client's (client leg) and the
        # server's (upstream leg). Those are what Wireshark needs to decrypt each leg.
        self.assertTrue(client_lines <= proxy_lines, client_lines - proxy_lines)
        self.assertTrue(server_lines <= proxy_lines, server_lines - proxy_lines)
        self.assertEqual(proxy_lines, client_lines | server_lines)
        labels = {l.split()[0] for l in proxy_lines}
        self.assertTrue({"CLIENT_RANDOM", "CLIENT_TRAFFIC_SECRET_0", "SERVER_HANDSHAKE_TRAFFIC_SECRET"} <= labels)
        # And every key-log client_random is the random of a ClientHello traced on that leg.
        randoms = {e["leg"]: set() for e in of(evs, "tls.message")}
        for e in of(evs, "tls.message"):
            if e["type"] == "ClientHello":
                randoms[e["leg"]].add(e["body"]["random"])
        for line in client_lines:
            self.assertIn(line.split()[1], randoms["client"])
        for line in server_lines:
            self.assertIn(line.split()[1], randoms["upstream"])


if __name__ == "__main__":
    unittest.main()
