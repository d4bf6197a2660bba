"""How connections end, checked against independent sources: a packet capture of loopback (who sent
the first FIN or RST on each leg, and which) and the TLS peers' own reading of the end of their
stream (Python `ssl` with suppress_ragged_eofs=False: b"" after close_notify, SSLEOFError after a
FIN without close_notify, ConnectionResetError after an RST). The proxy's tcp.close (by, how,
close_notify_in, close_notify_out) must say the same."""
import os
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
import unittest

from harness import DEADLINE, ProxyTestCase, of, tshark_cmd


def raw_connect(p):
    return socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE)


def rst_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def close_notify_then_fin(t):
    """Send close_notify without waiting for the peer's, then FIN."""
    t.settimeout(0.3)
    try:
        t.unwrap()  # writes close_notify, then waits (briefly) for the peer's
    except (OSError, ValueError):
        pass
    t.close()


TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8  # tcpi_state (linux/tcp.h)


def tcp_state(sock):
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[0]


def observe_end(t):
    """Reads until the stream ends; how it ended, as this TLS peer sees it. Python's ssl reports an
    RST and a FIN without close_notify alike (SSLEOFError, OpenSSL 3's SSL_read_ex): the kernel's
    TCP state tells them apart (CLOSE after an RST, CLOSE_WAIT after the peer's FIN)."""
    try:
        for _ in range(10000):
            if not t.recv(65536):
                return "close_notify"
        return "more"
    except ssl.SSLEOFError:
        state = tcp_state(t)
        return {TCP_CLOSE: "rst", TCP_CLOSE_WAIT: "fin_without_close_notify"}.get(state, f"eof in state {state}")
    except ConnectionResetError:
        return "rst"
    except ssl.SSLError as e:
        return "tls_error:" + str(e)
    except socket.timeout:
        return "timeout"


class Capture:
    """dumpcap on lo, filtered on the test's ports; stopped by its PID."""

    def __init__(self, path, ports):
        self.path = path
        flt = " or ".join(f"tcp port {p}" for p in ports)
        self.p = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", flt, "-w", path],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        # dumpcap says "Capturing on ..." once the filter is installed.
        line = b""
        end = time.time() + 10
        os.set_blocking(self.p.stderr.fileno(), False)
        while time.time() < end and b"Capturing on" not in line and self.p.poll() is None:
            try:
                line += self.p.stderr.read() or b""
            except (BlockingIOError, TypeError):
                pass
            time.sleep(0.05)
        self.ok = b"Capturing on" in line and self.p.poll() is None
        self.why = line.decode(errors="replace")

    def stop(self):
        if self.p.poll() is None:
            time.sleep(0.3)  # the last packets reach the file
            os.kill(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait(timeout=10)

    def packets(self, numbers=False):
        """(src port, dst port, FIN, RST) per TCP segment; with numbers, also tshark's relative
        seq, ack and payload length."""
        fields = ["tcp.srcport", "tcp.dstport", "tcp.flags.fin", "tcp.flags.reset", "tcp.seq", "tcp.ack", "tcp.len"]
        r = subprocess.run([*tshark_cmd(), "-r", self.path, "-T", "fields", *(x for f in fields for x in ("-e", f))],
                           capture_output=True, timeout=DEADLINE, text=True)
        out = []
        for line in r.stdout.splitlines():
            f = line.split("\t")
            if len(f) == 7 and f[0]:
                flag = lambda v: v in ("1", "True")
                p = (int(f[0]), int(f[1]), flag(f[2]), flag(f[3]))
                out.append(p + (int(f[4] or 0), int(f[5] or 0), int(f[6] or 0)) if numbers else p)
        return out

    def first_close(self, leg_port, peer_is_src):
        """(by, how) of the first FIN or RST on the leg whose well-known port is leg_port;
        peer_is_src(src_port) says whether the sender was the proxy's peer on that leg."""
        for src, dst, fin, rst in self.packets():
            if leg_port not in (src, dst) or not (fin or rst):
                continue
            return ("peer" if peer_is_src(src) else "proxy", "rst" if rst else "fin")
        return None

    def close_answers(self, leg_port, peer_is_src):
        """The (by, how) a trace may give for the leg: the first FIN or RST, or, when the two FINs
        crossed (the second one's ACK does not cover the first FIN: its sender had not received
        it, RFC 9293 3.6's simultaneous close), either side's."""
        first = None
        for src, dst, fin, rst, seq, ack, ln in self.packets(numbers=True):
            if leg_port not in (src, dst) or not (fin or rst):
                continue
            who = "peer" if peer_is_src(src) else "proxy"
            if first is None:
                first = (who, "rst" if rst else "fin", src, seq + ln + 1)
                if rst:
                    break
            elif src != first[2] and fin and not rst:
                # Relative numbers: each side's ack counts from the other side's ISN, as its seq does.
                return {first[:2], (who, "fin")} if ack < first[3] else {first[:2]}
        return {first[:2]} if first else {None}


class BioPeer:
    """A TLS server over a raw socket and memory BIOs, for observing the end of the stream exactly:
    the raw socket says FIN (b"") or RST (ConnectionResetError), the TLS object whether close_notify
    came first. Nothing is sent after the handshake unless asked: OpenSSL 3 answers an unexpected
    EOF with a decode_error alert of its own, which would reset the proxy's closed socket and blur
    what this peer observed."""

    def __init__(self, ctx, sock):
        self.sock = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=True)
        for _ in range(100):
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self.inc.write(self.sock.recv(65536))
        self._flush()

    def _flush(self):
        if self.out.pending:
            self.sock.sendall(self.out.read())

    def recv(self):
        while True:
            try:
                return self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._flush()  # session tickets
                self.inc.write(self.sock.recv(65536))

    def send(self, data):
        self.obj.write(data)
        self._flush()

    def _close_notify_in(self):
        """Decrypts what is buffered: did close_notify come?"""
        try:
            while self.obj.read(65536):
                pass
            return True  # b"": SSL_ERROR_ZERO_RETURN, close_notify received (_ssl.c)
        except ssl.SSLZeroReturnError:
            return True
        except ssl.SSLError:  # SSLWantReadError among them: nothing more buffered
            pass
        return False

    def observe_end(self):
        notify = self._close_notify_in()  # it may have come with the last data
        end = time.time() + DEADLINE
        while time.time() < end:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return "rst"
            if not chunk:
                return "close_notify" if notify else "fin_without_close_notify"
            self.inc.write(chunk)
            notify = self._close_notify_in() or notify
        return "timeout"


class Origin:
    """A one-connection TLS origin in a thread; `behave(t)` does its part, `seen` keeps what it observed."""

    def __init__(self, cert, key, behave):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(DEADLINE)
        self.port = self.sock.getsockname()[1]
        self.seen = None
        self.behave = behave
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        c.settimeout(DEADLINE)
        try:
            if getattr(self.behave, "bio", False):
                self.seen = self.behave(BioPeer(self.ctx, c))
                c.close()
                return
            t = self.ctx.wrap_socket(c, server_side=True, suppress_ragged_eofs=False)
            self.seen = self.behave(t)
            t.close()
        except OSError as e:
            self.seen = "error:" + str(e)
            c.close()

    def join(self):
        self.t.join(timeout=DEADLINE)
        self.sock.close()


PAGE = b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 20000


def serve_then(end):
    def behave(t):
        t.recv(65536)
        t.sendall(PAGE)
        time.sleep(0.3)  # the proxy reads the page before the end (an RST drops what is unread)
        end(t)
        return "done"
    return behave


def wait_then_observe(peer):
    peer.recv()
    peer.send(b"ok")
    return peer.observe_end()


wait_then_observe.bio = True


class Closing(ProxyTestCase):
    def setUp(self):
        super().setUp()
        if not shutil_which("dumpcap") or not shutil_which("tshark"):
            self.skipTest("dumpcap/tshark not installed")

    def start(self, origin_behave):
        """An origin behaving as told, the proxy in front of it, and a capture of both on lo."""
        origin = Origin(self.pki.cert, self.pki.key, origin_behave)
        self._stops.append(origin.join)
        p = self.proxy("-m", "reverse", "-u", f"localhost:{origin.port}", "--upstream-ca", self.pki.ca)
        cap = Capture(f"{self.dir}/lo.pcapng", [p.port, origin.port])
        self._stops.append(cap.stop)
        if not cap.ok:
            self.skipTest("cannot capture on lo here: " + cap.why)
        return origin, p, cap

    def run_case(self, origin_behave, client_act):
        origin, p, cap = self.start(origin_behave)
        ctx = ssl.create_default_context(cafile=p.ca)
        s = raw_connect(p)
        t = ctx.wrap_socket(s, server_hostname="localhost", suppress_ragged_eofs=False)
        client_seen = client_act(t)
        evs = p.conn_closed()
        origin.join()
        cap.stop()
        closes = {leg: of(evs, "tcp.close", leg)[0] for leg in ("client", "upstream")}
        # Client leg: the peer is the client (its port is not the proxy's); upstream leg: the origin.
        wire = {"client": cap.close_answers(p.port, lambda src: src != p.port),
                "upstream": cap.close_answers(origin.port, lambda src: src == origin.port)}
        for leg in ("client", "upstream"):
            self.assertIn((closes[leg]["by"], closes[leg]["how"]), wire[leg], f"{leg}: {closes[leg]} vs capture")
        return closes, client_seen, origin.seen

    # The origin ends the connection.

    def test_origin_close_notify_and_fin(self):
        closes, client_seen, _ = self.run_case(serve_then(close_notify_then_fin), self.request_and_observe)
        self.assertEqual(client_seen, "close_notify")
        self.assertIs(closes["upstream"]["close_notify_in"], True)
        self.assertIs(closes["client"]["close_notify_out"], client_seen == "close_notify")

    def test_origin_fin_without_close_notify(self):
        closes, client_seen, _ = self.run_case(serve_then(lambda t: t.close()), self.request_and_observe)
        self.assertEqual(client_seen, "fin_without_close_notify")
        self.assertIs(closes["upstream"]["close_notify_in"], False)
        self.assertIs(closes["client"]["close_notify_out"], False)

    def test_origin_rst_mid_response(self):
        closes, client_seen, _ = self.run_case(serve_then(rst_close), self.request_and_observe)
        self.assertEqual(client_seen, "rst")
        self.assertEqual(closes["client"]["how"], "rst")
        self.assertIs(closes["upstream"]["close_notify_in"], False)
        self.assertIs(closes["client"]["close_notify_out"], False)

    def request_and_observe(self, t):
        t.sendall(b"GET / HTTP/1.0\r\n\r\n")
        seen = observe_end(t)
        t.close()
        return seen

    # The client ends the connection; the origin reports what reached it.

    def client_then(self, end):
        def act(t):
            t.sendall(b"hi")
            t.recv(2)
            end(t)
            return "done"
        return act

    def test_client_close_notify_and_fin(self):
        closes, _, origin_seen = self.run_case(wait_then_observe, self.client_then(close_notify_then_fin))
        self.assertEqual(origin_seen, "close_notify")
        self.assertIs(closes["client"]["close_notify_in"], True)
        self.assertIs(closes["upstream"]["close_notify_out"], True)

    def test_client_fin_without_close_notify(self):
        closes, _, origin_seen = self.run_case(wait_then_observe, self.client_then(lambda t: t.close()))
        self.assertEqual(origin_seen, "fin_without_close_notify")
        self.assertIs(closes["client"]["close_notify_in"], False)
        self.assertIs(closes["upstream"]["close_notify_out"], False)

    def test_client_rst(self):
        closes, _, origin_seen = self.run_case(wait_then_observe, self.client_then(rst_close))
        self.assertEqual(origin_seen, "rst")
        self.assertEqual(closes["upstream"]["how"], "rst")
        self.assertIs(closes["client"]["close_notify_in"], False)

    # A fatal alert, then FIN: the client damages a record the proxy sent it, so its own OpenSSL
    # answers with a fatal bad_record_mac alert and the client closes.

    def test_client_fatal_alert_then_fin(self):
        def read_then_observe(peer):  # nothing sent back: no reply can reach the proxy after its close
            peer.recv()
            return peer.observe_end()

        read_then_observe.bio = True

        def alert_client(p):
            ctx = ssl.create_default_context(cafile=p.ca)
            s = raw_connect(p)
            inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
            for _ in range(100):
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if out.pending:
                        s.sendall(out.read())
                    inc.write(s.recv(65536))
            if out.pending:
                s.sendall(out.read())
            obj.write(b"hi")
            s.sendall(out.read())
            s.settimeout(DEADLINE)
            rec = b""
            # What the proxy sends next (its session tickets): damage the last byte of each read.
            end = time.time() + DEADLINE
            while time.time() < end:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rec += chunk
                inc.write(chunk[:-1] + bytes([chunk[-1] ^ 1]))
                try:
                    obj.read(100)
                except ssl.SSLWantReadError:
                    continue
                except ssl.SSLError as e:
                    s.sendall(out.read())  # the fatal alert
                    s.close()  # then FIN
                    return str(e)
            return "no error"

        origin, p, cap = self.start(read_then_observe)
        client_seen = alert_client(p)
        self.assertIn("BAD_RECORD_MAC", client_seen.upper().replace(" ", "_"))
        evs = p.conn_closed()
        origin.join()
        cap.stop()
        client = of(evs, "tcp.close", "client")[0]
        self.assertEqual((client["by"], client["how"]),
                         cap.first_close(p.port, lambda src: src != p.port))
        self.assertEqual((client["by"], client["how"]), ("peer", "fin"))
        alerts = [a for a in of(evs, "tls.alert", "client") if a["dir"] == "in"]
        self.assertEqual(alerts[-1]["description"], "bad_record_mac")
        # The origin sees the truncation the proxy passes on, not a clean close.
        self.assertEqual(origin.seen, "fin_without_close_notify",
                         [x for x in cap.packets() if origin.port in x[:2]])
        up = of(evs, "tcp.close", "upstream")[0]
        self.assertIs(up["close_notify_out"], False)
        self.assertEqual((up["by"], up["how"]), cap.first_close(origin.port, lambda src: src == origin.port))


def shutil_which(name):
    import shutil
    return shutil.which(name)


if __name__ == "__main__":
    unittest.main()
