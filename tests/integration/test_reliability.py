"""Limits, faults and bad input: every failure is a precise event on the right leg, the other leg
is closed cleanly, and every other connection carries on."""
import base64
import ctypes
import os
import socket
import ssl
import struct
import threading
import time

from faults import FaultServer, rst_close
from harness import DEADLINE, ProxyTestCase, expired_self_signed, free_port, of, read_all, run


def raw_connect(p):
    return socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE)


def threads_can_own_fd_tables():
    # The proxy's own start-up probe, from here: a thread tries unshare(CLONE_FILES) (a container's
    # seccomp profile may forbid it; the proxy then keeps one table). The probe's table goes with
    # its thread.
    ok = []
    libc = ctypes.CDLL(None, use_errno=True)
    t = threading.Thread(target=lambda: ok.append(libc.unshare(0x400) == 0))  # CLONE_FILES
    t.start()
    t.join()
    return ok == [True]


# The io threads share one descriptor table in ThreadSanitizer builds (TSan models one per
# process) and where unshare is forbidden; elsewhere each has its own.
SHARED_FD_TABLE = os.environ.get("TLSTRACE_SANITIZER_BUILD") == "thread" or not threads_can_own_fd_tables()


class Reliability(ProxyTestCase):
    def fault(self, mode):
        f = FaultServer(mode, self.pki.cert, self.pki.key)
        self._stops.append(f.stop)
        return f

    def good_request(self, p, srv):
        """A normal request that must still work while (or after) something else went wrong."""
        ctx = ssl.create_default_context(cafile=p.ca)
        with raw_connect(p) as s:
            if p.mode == "explicit":
                s.sendall(f"CONNECT localhost:{srv.port} HTTP/1.1\r\n\r\n".encode())
                self.assertTrue(s.recv(1024).startswith(b"HTTP/1.1 200"))
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"GET / HTTP/1.0\r\n\r\n")
                self.assertIn(b"200 ok", read_all(t))

    def proxy_mode(self, mode, *args, upstream=None, **kw):
        extra = ["-m", "reverse", "-u", f"localhost:{upstream}"] if mode == "reverse" else []
        p = self.proxy(*extra, "--upstream-ca", self.pki.ca, *args, **kw)
        p.mode = mode
        return p

    def test_max_connections_503_in_explicit_mode_close_in_reverse(self):
        srv = self.s_server()
        p = self.proxy_mode("explicit", "--max-connections", "2")
        held = [raw_connect(p) for _ in range(2)]
        p.wait_events(lambda evs: len(of(evs, "conn.open")) == 2)
        with raw_connect(p) as s:
            resp = read_all(s).decode()
        self.assertTrue(resp.startswith("HTTP/1.1 503"), resp)
        self.assertIn("max-connections", resp)
        for h in held:
            h.close()
        p.conn_closed(2)
        self.good_request(p, srv)  # capacity is back
        evs = p.read_events()
        self.assertEqual(len(of(evs, "conn.refused")), 1)

        r = self.proxy_mode("reverse", "--max-connections", "1", upstream=srv.port)
        held = raw_connect(r)
        r.wait_events(lambda evs: len(of(evs, "conn.open")) == 1)
        with raw_connect(r) as s:
            self.assertEqual(read_all(s), b"")
        held.close()
        r.wait_events(lambda evs: of(evs, "conn.refused") and of(evs, "conn.close"))

    def hold_tls(self, r, count, label):
        # `count` live TLS connections through the proxy, each echoing once when opened and once
        # more when all are open (both legs of every one exist at once).
        ctx = ssl.create_default_context(cafile=r.ca)
        held = []
        try:
            for i in range(count):
                s = raw_connect(r)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t = ctx.wrap_socket(s, server_hostname="localhost")
                held.append(t)
                t.sendall(b"%s %d" % (label, i))
                self.assertEqual(t.recv(64), b"%s %d" % (label, i))
            for i, t in enumerate(held):  # all still open and relaying
                t.sendall(b"again %d" % i)
                self.assertEqual(t.recv(64), b"again %d" % i)
        except BaseException:
            for t in held:
                t.close()
            raise
        return held

    def test_connection_limit_fits_the_open_file_limit(self):
        # Two descriptors per proxied connection, in the table of the io thread it runs on (each of
        # the two threads has its own): under a hard limit of 200 a table holds (200 - 64) / 2 = 68
        # connections, and two threads hold 135 (new connections go to the less loaded thread, so
        # one may get one more than half). The proxy lowers --max-connections to that, says so,
        # holds 135 live TLS connections (270 sockets: more than one table allows) and refuses the
        # 136th cleanly instead of failing a connection half-way for want of a socket.
        # (Where the threads share one table: 68.)
        n = 68 if SHARED_FD_TABLE else 135
        echo = self.echo(tls=True)
        r = self.proxy_mode("reverse", "--max-connections", "1000", "--threads", "2", upstream=echo.port,
                            nofile=200)
        self.assertIn(f"--max-connections 1000 lowered to {n}", r.proc.output())
        held = self.hold_tls(r, n, b"ping")
        with raw_connect(r) as s:
            self.assertEqual(read_all(s), b"")
        r.wait_events(lambda evs: len(of(evs, "conn.refused")) == 1)
        for h in held:
            h.close()
        evs = r.conn_closed(n)
        # The clients close without close_notify (Python's close()), and the proxy passes that
        # truncation on as it is: the echo server's OpenSSL 3 answers it with a decode_error alert
        # (SSL_R_UNEXPECTED_EOF_WHILE_READING). Any other error would be a connection failed
        # half-way.
        self.assertTrue(all(c.get("close_notify_in") is False for c in of(evs, "tcp.close", "client")))
        errors = [e for e in of(evs, "tls.error") if (e["leg"], e.get("cause")) != ("upstream", "alert_decode_error")]
        self.assertFalse(errors, errors[:1])
        more = self.hold_tls(r, 2, b"more")  # and connections work again once there is room
        for h in more:
            h.close()
        r.conn_closed(n + 2)

    def test_open_file_limit_raised_to_hold_the_connections(self):
        # A soft limit of 256 would hold ~100 proxied connections; the hard limit allows more, so
        # the proxy raises its soft limit to what one io thread's share of --max-connections needs
        # (2 per connection for 400 / 2 + 1 connections, plus 64) and then holds 300 live TLS
        # connections (600 proxied sockets, more than that limit: each thread has its own table).
        echo = self.echo(tls=True)
        r = self.proxy_mode("reverse", "--max-connections", "400", "--threads", "2", upstream=echo.port,
                            nofile=(256, 4096))
        self.assertIn(f"raised the open-file limit from 256 to {864 if SHARED_FD_TABLE else 466}", r.proc.output())
        held = self.hold_tls(r, 300, b"ping")
        for t in held:
            t.close()
        evs = r.conn_closed(300)
        self.assertEqual(len(of(evs, "conn.open")), 300)
        self.assertFalse(of(evs, "conn.refused"))
        errors = [e for e in of(evs, "tls.error") if (e["leg"], e.get("cause")) != ("upstream", "alert_decode_error")]
        self.assertFalse(errors, errors[:1])  # (the origin's answer to the clients' truncation: see above)

    def test_proxy_authentication(self):
        srv = self.s_server()
        p = self.proxy_mode("explicit", "--proxy-auth", "alice:s3cret")
        for header, why in ((None, "required"), ("Basic " + base64.b64encode(b"alice:nope").decode(), "wrong")):
            with raw_connect(p) as s:
                h = f"Proxy-Authorization: {header}\r\n" if header else ""
                s.sendall(f"CONNECT localhost:{srv.port} HTTP/1.1\r\n{h}\r\n".encode())
                resp = read_all(s).decode()
            self.assertTrue(resp.startswith("HTTP/1.1 407"), resp)
            self.assertIn('Proxy-Authenticate: Basic realm="tlstrace"', resp)
            self.assertIn(why, resp)
        r = run(["curl", "-sS", "--max-time", "10", "-x", f"http://{p.addr}", "--proxy-user", "alice:s3cret",
                 "--cacert", p.ca, f"https://localhost:{srv.port}/"])
        self.assertEqual(r.returncode, 0, r.stderr)
        evs = p.conn_closed(3)
        self.assertEqual([e["status"] for e in of(evs, "proxy.error")], [407, 407])

    def test_upstream_faults_are_precise_and_isolated(self):
        srv = self.s_server()
        cases = [
            ("reset_on_hello", "peer_reset", "rst"),
            ("garbage", None, None),
            ("stall", "timeout", "timeout"),
        ]
        for mode, cause, how in cases:
            with self.subTest(mode=mode):
                f = self.fault(mode)
                p = self.proxy_mode("reverse", "--handshake-timeout", "1", upstream=f.port)
                ctx = ssl.create_default_context(cafile=p.ca)
                t0 = time.time()
                with raw_connect(p) as s:
                    with self.assertRaises((ssl.SSLError, ConnectionResetError)):
                        ctx.wrap_socket(s, server_hostname="localhost")
                self.assertLess(time.time() - t0, 8)
                evs = p.conn_closed()
                up_err = of(evs, "tls.error", "upstream")
                self.assertTrue(up_err, mode)
                if cause:
                    self.assertEqual(up_err[0]["cause"], cause)
                up_close = of(evs, "tcp.close", "upstream")[0]
                if how:
                    self.assertEqual(up_close["how"], how)
                client_err = of(evs, "tls.error", "client")[0]
                self.assertEqual(client_err["origin"], "upstream")
                self.assertEqual(client_err["alert"], "handshake_failure")
                # The client leg ends cleanly from the proxy's side: an alert, then FIN.
                self.assertIn(of(evs, "tcp.close", "client")[0]["how"], ("fin", "timeout"))
                # Another upstream through another proxy instance is unaffected, and so is this one.
                p2 = self.proxy_mode("reverse", upstream=srv.port)
                self.good_request(p2, srv)

    def test_reset_mid_transfer(self):
        f = self.fault("reset_mid_transfer")
        p = self.proxy_mode("reverse", upstream=f.port)
        ctx = ssl.create_default_context(cafile=p.ca)
        with raw_connect(p) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"GET / HTTP/1.0\r\n\r\n")
                got = read_all(t)
        self.assertGreater(len(got), 40000)  # what arrived before the reset was relayed
        evs = p.conn_closed()
        up = of(evs, "tcp.close", "upstream")[0]
        self.assertEqual((up["by"], up["how"]), ("peer", "rst"))
        # The reset is passed on as a reset, not laundered into close_notify and FIN
        # (test_closing.py checks this against a capture).
        client = of(evs, "tcp.close", "client")[0]
        self.assertEqual((client["by"], client["how"]), ("proxy", "rst"))
        self.assertIs(client["close_notify_out"], False)
        self.assertIn("reset", of(evs, "conn.close")[0]["outcome"])

    def test_expired_upstream_certificate(self):
        key, cert = expired_self_signed(self.dir)
        srv = self.s_server(cert=cert, key=key)
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", cert)
        ctx = ssl.create_default_context(cafile=p.ca)
        with raw_connect(p) as s:
            with self.assertRaises(ssl.SSLError):
                ctx.wrap_socket(s, server_hostname="localhost")
        evs = p.conn_closed()
        err = of(evs, "tls.error", "upstream")[0]
        self.assertEqual(err["cause"], "upstream_certificate_untrusted")
        self.assertIn("expired", err["verify_error"])

    def test_client_aborts_at_every_stage(self):
        srv = self.s_server()
        p = self.proxy_mode("reverse", upstream=srv.port)
        with open(os.path.join(os.path.dirname(__file__), "../data/ch_curl.hex")) as f:
            hello = bytes.fromhex(f.read().strip())
        # 1. connect and close; 2. half a ClientHello then close; 3. a full ClientHello, then reset
        # after the first server bytes; 4. a full handshake, then reset.
        s = raw_connect(p)
        s.close()
        s = raw_connect(p)
        s.sendall(hello[:100])
        s.close()
        s = raw_connect(p)
        s.sendall(hello)
        s.recv(10)
        rst_close(s)
        ctx = ssl.create_default_context(cafile=p.ca)
        t = ctx.wrap_socket(raw_connect(p), server_hostname="localhost")
        rst_close(t)
        evs = p.conn_closed(4)
        self.assertEqual(len(of(evs, "conn.open")), 4)
        hows = [e["how"] for e in of(evs, "tcp.close", "client")]
        self.assertEqual(hows.count("rst"), 2, hows)
        self.assertEqual(of(evs, "tls.error", "client", conn=2)[0]["cause"], "peer_closed")
        self.good_request(p, srv)

    def test_bad_input_gets_a_clear_error_and_no_crash(self):
        srv = self.s_server()
        p = self.proxy_mode("explicit")
        r = self.proxy_mode("reverse", upstream=srv.port)
        record = lambda t, body, ver=b"\x03\x01": bytes([t]) + ver + struct.pack(">H", len(body)) + body
        sends = [
            (p, os.urandom(2000), b"HTTP/1.1 400"),
            (p, b"CONNECT example.com HTTP/1.1\r\n\r\n", b"HTTP/1.1 400"),
            (p, b"CONNECT :443 HTTP/1.1\r\n\r\n", b"HTTP/1.1 400"),
            (p, b"CONNECT nonexistent.invalid:443 HTTP/1.1\r\n\r\n", b"HTTP/1.1 502"),
            (p, b"CONNECT a:1 HTTP/1.1\r\nX: " + b"a" * (16 << 20), b"HTTP/1.1 431"),
            (r, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 400"),
            (r, os.urandom(3000), b""),
            (r, record(22, b""), b""),  # zero-length handshake record
            (r, b"\x16\x03\x01\x40\x01" + b"\x01" * 100, b""),  # oversized record (16385 bytes)
            (r, record(22, b"\x01\x00\x00\x10" + b"\x03\x03"), b""),  # truncated ClientHello, then FIN
            (r, bytes.fromhex("802e0103010015000000100000050000040100800000640000620000") + os.urandom(16), b""),  # SSLv2
            (r, record(22, bytes.fromhex("0100002c0303") + b"\x00" * 32 + bytes.fromhex("000002130101000001000000040017000017")), b""),  # duplicate extension
        ]
        for proxy, data, expect in sends:
            with self.subTest(data=data[:24]):
                with raw_connect(proxy) as s:
                    try:
                        s.sendall(data)
                        s.shutdown(socket.SHUT_WR)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    got = read_all(s, 1 << 16)
                if expect:
                    self.assertTrue(got.startswith(expect), got[:80])
        p.conn_closed(5)
        evs = r.conn_closed(7)
        causes = [e.get("cause") for e in of(evs, "tls.error", "client")]
        # The truncated hello followed by FIN is a peer that closed mid-handshake; all else is not TLS.
        self.assertEqual(sorted(causes), ["not_tls"] * 6 + ["peer_closed"])
        self.good_request(r, srv)
        self.good_request(p, srv)


class SecurityDefaults(ProxyTestCase):
    def test_address_classification_and_default_listen(self):
        from harness import TLSTRACE
        r = run([TLSTRACE, "proxy", "--help"])
        self.assertIn(b"127.0.0.1:8080", r.stdout)
        self.assertIn(b"--allow-remote", r.stdout)
        # All addresses need --allow-remote (test_exposure.py); a loopback client is served as always.
        srv = self.s_server()
        p = self.proxy("-l", "0.0.0.0:0", "--allow-remote")
        s = socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE)
        s.sendall(f"CONNECT localhost:{srv.port} HTTP/1.1\r\n\r\n".encode())
        self.assertTrue(s.recv(1024).startswith(b"HTTP/1.1 200"))
        s.close()
        p.conn_closed()


if __name__ == "__main__":
    import unittest
    unittest.main()
