"""Connection lifecycle: timeouts, resets, shutdown with open connections, per-leg TLS options."""
import os
import signal
import socket
import ssl
import struct
import time

from harness import DEADLINE, ProxyTestCase, of, run


class Lifecycle(ProxyTestCase):
    def test_handshake_timeout(self):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--handshake-timeout", "0.5")
        with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
            t0 = time.time()
            self.assertEqual(s.recv(100), b"")  # the proxy closes the silent client
            self.assertLess(time.time() - t0, 5)
        evs = p.conn_closed()
        close = of(evs, "tcp.close", "client")[0]
        self.assertEqual((close["by"], close["how"]), ("proxy", "timeout"))
        self.assertEqual(of(evs, "tls.error", "client")[0]["cause"], "timeout")
        self.assertEqual(of(evs, "conn.close")[0]["outcome"], "handshake timeout")

    def test_idle_timeout_closes_both_legs_with_close_notify(self):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca,
                       "--idle-timeout", "0.7")
        ctx = ssl.create_default_context(cafile=p.ca)
        with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t0 = time.time()
                self.assertEqual(t.recv(100), b"")  # close_notify from the proxy after ~0.7 s
                # (not at the handshake timeout's default 10 s, which was armed first)
                self.assertGreater(time.time() - t0, 0.5)
                self.assertLess(time.time() - t0, 5)
        evs = p.conn_closed()
        for leg in ("client", "upstream"):
            self.assertEqual(of(evs, "tcp.close", leg)[0]["how"], "timeout")
            self.assertIn("close_notify", [a["description"] for a in of(evs, "tls.alert", leg) if a["dir"] == "out"])

    def test_client_reset_is_traced_and_passed_on_as_a_reset(self):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca)
        ctx = ssl.create_default_context(cafile=p.ca)
        s = socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE)
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        t.close()  # linger 0: RST
        evs = p.conn_closed()
        client = of(evs, "tcp.close", "client")[0]
        self.assertEqual((client["by"], client["how"]), ("peer", "rst"))
        upstream = of(evs, "tcp.close", "upstream")[0]
        self.assertEqual((upstream["by"], upstream["how"]), ("proxy", "rst"))  # the reset passed on
        self.assertIn("reset", of(evs, "conn.close")[0]["outcome"])

    def test_sigterm_with_open_connection_flushes_and_exits_0(self):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca)
        ctx = ssl.create_default_context(cafile=p.ca)
        s = socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE)
        t = ctx.wrap_socket(s, server_hostname="localhost")
        p.wait_events(lambda evs: len(of(evs, "tls.established", "client")) == 1)
        t0 = time.time()
        rc = p.stop()
        self.assertEqual(rc, 0)
        self.assertLess(time.time() - t0, 8)
        self.assertEqual(t.recv(100), b"")  # told with close_notify
        t.close()
        evs = p.read_events()
        self.assertEqual(of(evs, "conn.close")[0]["outcome"], "proxy shutting down")
        with open(p.events, "rb") as f:
            self.assertTrue(f.read().endswith(b"\n"))

    def test_per_leg_versions_and_groups(self):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca,
                       "--client-tls-max", "1.2", "--upstream-groups", "P-384")
        r = run(["openssl", "s_client", "-connect", p.addr, "-servername", "localhost", "-CAfile", p.ca,
                 "-verify_return_error", "-ign_eof"], input=b"GET / HTTP/1.0\r\n\r\n")
        self.assertIn(b"HTTP/1.0 200 ok", r.stdout)
        evs = p.conn_closed()
        self.assertEqual(of(evs, "tls.established", "client")[0]["version"], "TLSv1.2")
        up = of(evs, "tls.established", "upstream")[0]
        self.assertEqual(up["version"], "TLSv1.3")
        self.assertEqual(up["group"], "secp384r1")
        up_hello = [e for e in of(evs, "tls.message", "upstream") if e["type"] == "ClientHello"][0]
        self.assertEqual(up_hello["body"]["supported_groups"], ["secp384r1"])

    def test_dhparam_towards_clients(self):
        dh = f"{self.dir}/dh.pem"
        r = run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "dh_param:ffdhe3072",
                 "-out", dh])
        self.assertEqual(r.returncode, 0, r.stderr)
        srv = self.s_server()
        # DHE suites authenticate with RSA, so the forged leaf must be RSA for a DHE client.
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca,
                       "--dhparam", dh, "--leaf-key", "rsa")
        r = run(["openssl", "s_client", "-connect", p.addr, "-servername", "localhost", "-CAfile", p.ca,
                 "-cipher", "DHE-RSA-AES128-GCM-SHA256", "-tls1_2", "-verify_return_error", "-ign_eof"],
                input=b"GET / HTTP/1.0\r\n\r\n")
        self.assertIn(b"HTTP/1.0 200 ok", r.stdout)
        evs = p.conn_closed()
        est = of(evs, "tls.established", "client")[0]
        self.assertEqual(est["cipher"]["name"], "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256")
        k = of(evs, "tls.key_exchange", "client")[0]
        self.assertEqual((k["kex"], k["group"], k["bits"], k["rating"]), ("DHE", "ffdhe3072", 3072, "strong"))
        leaf = [e for e in of(evs, "tls.message", "client") if e["type"] == "Certificate"][0]["body"]["chain"][0]
        self.assertEqual(leaf["key"]["type"], "RSA")
        # With the default ECDSA leaf the same client has no suite in common, and the trace says so.
        p2 = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca, "--dhparam", dh)
        run(["openssl", "s_client", "-connect", p2.addr, "-servername", "localhost",
             "-cipher", "DHE-RSA-AES128-GCM-SHA256", "-tls1_2"], input=b"")
        evs = p2.conn_closed()
        self.assertEqual(of(evs, "tls.error", "client")[0]["cause"], "no_shared_cipher")

    def test_bulk_both_ways_arrives_whole_with_any_trace(self):
        # Writes of every size around the relay's thresholds (a record of 16 KiB, the 4 KiB below which
        # records are gathered, several records per socket read), each echoed back by the origin:
        # the default trace passes large records on as they are decrypted, --trace all gathers them.
        echo = self.echo(tls=True)
        sizes = [1, 100, 4095, 4096, 4097, 16383, 16384, 16385, 40000, 200000] * 6
        blob = os.urandom(sum(sizes))
        for trace in ("default", "all"):
            p = self.proxy("-m", "reverse", "-u", f"localhost:{echo.port}", "--upstream-ca", self.pki.ca,
                           *(["--trace", "all"] if trace == "all" else []))
            ctx = ssl.create_default_context(cafile=p.ca)
            got = bytearray()
            with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
                with ctx.wrap_socket(s, server_hostname="localhost") as t:
                    off = 0
                    for n in sizes:  # one write, then its echo: bounded buffering on every hop
                        t.sendall(blob[off:off + n])
                        off += n
                        while len(got) < off:
                            chunk = t.recv(1 << 20)
                            self.assertTrue(chunk, f"{trace}: connection ended at {len(got)} of {off} bytes")
                            got += chunk
            self.assertEqual(bytes(got), blob, trace)
            evs = p.conn_closed()
            close = of(evs, "conn.close")[0]
            self.assertEqual((close["bytes_client_to_server"], close["bytes_server_to_client"]),
                             (len(blob), len(blob)), trace)
            if trace == "all":
                for leg in ("client", "upstream"):
                    self.assertEqual(sum(e["bytes"] for e in of(evs, "data", leg)), len(blob), leg)


if __name__ == "__main__":
    import unittest
    unittest.main()
