"""Server-speaks-first protocols (SSH, SMTP, FTP banners) through CONNECT: the banner reaches the
client at once, then plain TCP both ways; a TLS client after it on the same proxy is intercepted as
usual. The byte counts are compared with what the banner server and the client really wrote."""
import socket
import ssl
import time

from harness import DEADLINE, ProxyTestCase, of, read_all
from hostile import BANNER, BannerServer, connect, recv_exactly


class ServerSpeaksFirst(ProxyTestCase):
    def banner_server(self):
        b = BannerServer()
        self._stops.append(b.stop)
        return b

    def test_banner_then_echo_then_tls_intercepted(self):
        srv = self.banner_server()
        tls_srv = self.s_server()
        p = self.proxy("--upstream-ca", self.pki.ca)  # the default handshake timeout (10 s)

        t0 = time.time()
        s, head, rest = connect(p.port, f"127.0.0.1:{srv.port}")
        self.assertTrue(head.startswith("HTTP/1.1 200"), head)
        got = recv_exactly(s, len(BANNER), rest)  # the client has sent nothing yet
        banner_s = time.time() - t0
        self.assertEqual(got, BANNER)
        self.assertLess(banner_s, 3, "the banner waited for the client (or for the handshake timeout)")
        line = b"SSH-2.0-client\r\n" + bytes(range(256)) * 40  # every byte value, 10 KiB
        s.sendall(line)
        self.assertEqual(recv_exactly(s, len(line)), line)
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(read_all(s), b"")  # the server's FIN, passed on
        s.close()
        evs = p.conn_closed()
        c1 = of(evs, "conn.open")[0]["conn"]
        plain = of(evs, "conn.plaintext", conn=c1)
        self.assertEqual([e["leg"] for e in plain], ["upstream"])
        self.assertEqual(plain[0]["first_bytes"], BANNER.hex())
        close = of(evs, "conn.close", conn=c1)[0]
        # What the banner server says it wrote and read.
        self.assertEqual(close["bytes_server_to_client"], srv.sent)
        self.assertEqual(close["bytes_client_to_server"], srv.got)
        self.assertEqual(srv.got, len(line))
        self.assertEqual(close["outcome"], "ok")
        self.assertFalse(of(evs, "tls.error", conn=c1))

        # A TLS client on the same proxy: intercepted as usual (the forged certificate is issued by
        # the proxy's CA, which is all this client trusts).
        ctx = ssl.create_default_context(cafile=p.ca)
        s2, head2, rest2 = connect(p.port, f"localhost:{tls_srv.port}")
        self.assertTrue(head2.startswith("HTTP/1.1 200"), head2)
        self.assertEqual(rest2, b"")
        with ctx.wrap_socket(s2, server_hostname="localhost") as t:
            issuer = dict(x[0] for x in t.getpeercert()["issuer"])
            t.sendall(b"GET / HTTP/1.0\r\n\r\n")
            body = read_all(t)
        self.assertIn(b"s_server", body)
        evs = p.conn_closed(2)
        c2 = of(evs, "conn.open")[1]["conn"]
        self.assertEqual(len(of(evs, "tls.established", conn=c2)), 2)
        self.assertFalse(of(evs, "conn.plaintext", conn=c2))
        ca_subject = dict(x[0] for x in ssl._ssl._test_decode_cert(p.ca)["subject"])
        self.assertEqual(issuer, ca_subject)

    def test_reverse_mode_is_tls_only_and_does_not_hang(self):
        # Reverse mode stands in for a TLS server and connects once the ClientHello is in (the
        # benchmark's path, unchanged): a banner server behind it is not TLS, and a TLS client
        # gets a prompt failure, never the handshake timeout.
        srv = self.banner_server()
        p = self.proxy("-m", "reverse", "-u", f"127.0.0.1:{srv.port}")
        ctx = ssl.create_default_context(cafile=p.ca)
        t0 = time.time()
        with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
            with self.assertRaises((ssl.SSLError, OSError)):
                with ctx.wrap_socket(s, server_hostname="localhost"):
                    pass
        self.assertLess(time.time() - t0, 5)
        evs = p.conn_closed()
        self.assertTrue(of(evs, "tls.error", "upstream"))
        self.assertFalse(of(evs, "conn.plaintext"))
