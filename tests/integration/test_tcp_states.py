"""--tcp-states: the kernel's TCP state transitions of each leg (tcp.state, source ebpf) for real
peers through the proxy, and tcp.close's time_wait. The independent source is the kernel's own
socket table: `ss -tan state time-wait` for the same 4-tuples (which end holds TIME_WAIT), a
capture on lo (dumpcap, read by tshark) for which end sent the RSTs, and the expected sequences are RFC 9293's state diagram for who closed first, decided by the test's peers."""
import os
import socket
import ssl
import struct
import subprocess
import threading
import time
import unittest

from harness import TLSTRACE, ProxyTestCase, ThreadedServer, EchoServer, of, run
from test_closing import Capture

RST_LINGER = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST

# RFC 9293 3.3.2, the end of a connection as the proxy's socket lives it, by whose FIN came first:
# the proxy's (the active close), the peer's (the passive close), or both crossing on the wire (a
# simultaneous close: CLOSING, and both ends hold TIME_WAIT).
ACTIVE = ["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
SIMULTANEOUS = ["FIN_WAIT1", "CLOSING", "TIME_WAIT"]
PASSIVE = ["CLOSE_WAIT", "LAST_ACK", "CLOSE"]


def time_wait_tuples():
    """{(local, peer)} of every socket in TIME_WAIT, as the kernel lists them."""
    out = subprocess.run(["ss", "-tanH", "state", "time-wait"], capture_output=True, text=True, timeout=10).stdout
    pairs = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4:
            pairs.add((f[-2], f[-1]))
    return pairs


def ebpf_available():
    """Whether this kernel and these privileges let the proxy load its program (the proxy says)."""
    return os.path.exists("/sys/kernel/btf/vmlinux") and os.geteuid() == 0


def client_ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


class ResetAfterEcho(ThreadedServer):
    """TLS: answers the first read, then aborts the connection (SO_LINGER 0: an RST)."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        super().__init__()

    def handle(self, c):
        c = self.ctx.wrap_socket(c, server_side=True)
        c.sendall(c.recv(1024))
        time.sleep(0.3)  # the echo is relayed before the RST (a reset discards what is unread)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
        c.close()


class HttpThenClose(ThreadedServer):
    """TLS: answers one HTTP/1.0 request, then shuts its side down (a FIN, before the client's)."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        super().__init__()

    whole = False  # close the socket whole instead of shutting down only its sending side

    def handle(self, c):
        c = self.ctx.wrap_socket(c, server_side=True)
        c.recv(4096)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        if self.whole:
            c.close()
            return
        # Half-close (FIN), then read the proxy's close_notify to the end: a socket closed whole
        # would answer that close_notify with an RST (the proxy's side would then end
        # CLOSE_WAIT -> CLOSE with reset, as the kernel reports it).
        socket.socket.shutdown(c, socket.SHUT_WR)
        try:
            while c.recv(1024):
                pass
        except (OSError, ssl.SSLError):
            pass
        c.close()


@unittest.skipUnless(ebpf_available(), "needs root and a kernel with BTF (/sys/kernel/btf/vmlinux)")
class TcpStates(ProxyTestCase):
    extra = ()

    def start(self, upstream_port):
        p = self.proxy("-m", "reverse", "--upstream", f"127.0.0.1:{upstream_port}", "--insecure", "--tcp-states",
                       *self.extra)
        if "--tcp-states: off" in p.proc.output():
            if "built without eBPF" in p.proc.output():
                self.skipTest("this tlstrace was built without eBPF")
            self.fail("the kernel refused the program on a machine that allows it: " + p.proc.output())
        return p

    def capture(self, ports):
        cap = Capture(f"{self.dir}/lo.pcapng", ports)
        self._stops.append(cap.stop)
        if not cap.ok:
            self.skipTest("cannot capture on lo here: " + cap.why)
        return cap

    def senders(self, cap, flag):
        """{(src port, dst port)} of the captured segments with FIN (flag 2) or RST (flag 3)."""
        cap.stop()
        return {(pk[0], pk[1]) for pk in cap.packets() if pk[flag]}

    def states(self, p, leg, until):
        """The leg's transitions once the last one is `until` (a state or a tuple of them; bounded
        wait)."""
        return self.from_source(p, leg, until, "ebpf")

    def from_source(self, p, leg, until, source):
        until = (until,) if isinstance(until, str) else until
        evs = p.wait_events(lambda evs: any(e["to"] in until and e["source"] == source
                                            for e in of(evs, "tcp.state", leg)))
        ts = [e for e in of(evs, "tcp.state", leg) if e["source"] == source]
        return [ts[0]["from"]] + [e["to"] for e in ts], ts

    def echo_once(self, port, close):
        c = client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
        c.sendall(b"ping")
        self.assertEqual(c.recv(10), b"ping")
        me = c.getsockname()
        close(c)
        return f"{me[0]}:{me[1]}"

    def test_client_closes_first(self):
        up = EchoServer(self.pki.cert, self.pki.key)
        self._stops.append(up.stop)
        p = self.start(up.port)
        cap = self.capture([p.port, up.port])
        client = self.echo_once(p.port, lambda c: c.close())
        seq, client_ts = self.states(p, "client", "CLOSE")
        self.assertEqual(seq, ["LISTEN", "SYN_RECV", "ESTABLISHED"] + PASSIVE)
        self.assertEqual(client_ts[0]["peer"], client)
        # Upstream, the proxy passes the close on (close_notify, then its FIN) and the echo server
        # closes as soon as it reads that close_notify: its FIN can reach the proxy's socket before
        # the proxy's own FIN leaves (a busy machine delays the proxy between the two). The capture
        # says whose FIN came first; the kernel's transitions must follow from it.
        seq, up_ts = self.states(p, "upstream", ("TIME_WAIT", "CLOSE"))
        uport = int(up_ts[0]["local"].rsplit(":", 1)[1])
        cap.stop()
        first = cap.first_close(up.port, lambda src: src == up.port)
        self.assertEqual(first[1], "fin")
        if seq[-3:] == SIMULTANEOUS:
            expected = SIMULTANEOUS
        else:
            expected = ACTIVE if first[0] == "proxy" else PASSIVE
            if seq[-1] != expected[-1]:  # its last transition may still be on its way
                seq, up_ts = self.states(p, "upstream", expected[-1])
        self.assertEqual(seq, ["CLOSE", "SYN_SENT", "ESTABLISHED"] + expected)
        # The kernel's socket table: the client (it closed first) holds TIME_WAIT, the proxy's
        # client-leg socket does not; upstream, the side whose FIN came first holds it.
        tw = time_wait_tuples()
        self.assertIn((client, p.addr), tw)
        self.assertNotIn((p.addr, client), tw)
        proxy_tw = (up_ts[0]["local"], up_ts[0]["peer"]) in tw
        self.assertEqual(proxy_tw, expected != PASSIVE)
        if expected != ACTIVE:
            self.assertIn((f"127.0.0.1:{up.port}", f"127.0.0.1:{uport}"), tw)
        evs = p.conn_closed()
        self.assertEqual(of(evs, "tcp.close", "client")[0]["time_wait"], "peer")
        if expected != SIMULTANEOUS:  # (crossing FINs: either may be first on the wire)
            self.assertEqual(of(evs, "tcp.close", "upstream")[0]["by"], first[0])
            self.assertEqual(of(evs, "tcp.close", "upstream")[0]["time_wait"], first[0])
        # The text trace and convert draw the same line.
        line = "proxy\u21c4server  " + f"{expected[-2]} \u2192 {expected[-1]}"
        p.stop()
        with open(p.trace, encoding="utf-8") as f:
            self.assertIn(line, f.read())
        r = run([TLSTRACE, "convert", p.events, "--to", "text"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(line, r.stdout.decode())
        self.assertIn("client\u21c4proxy  CLOSE_WAIT \u2192 LAST_ACK", r.stdout.decode())

    def test_server_closes_first(self):
        # The server answers one HTTP/1.0 request and closes its socket (its FIN first); curl
        # reads to the end and closes after the proxy passed the FIN on.
        up = HttpThenClose(self.pki.cert, self.pki.key)
        self._stops.append(up.stop)
        p = self.start(up.port)
        r = run(["curl", "-sk", "-o", "/dev/null", "-w", "%{local_port}", "--http1.0", f"https://{p.addr}/"])
        self.assertEqual(r.returncode, 0, r.stderr)
        client = f"127.0.0.1:{r.stdout.decode()}"
        seq, up_ts = self.states(p, "upstream", "CLOSE")
        self.assertEqual(seq, ["CLOSE", "SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSE"])
        # On the client leg either side may close first: the proxy passes the server's FIN on, but
        # curl closes as soon as it has the whole response, and a slow proxy (a sanitizer build)
        # gets curl's FIN first. The kernel's TIME_WAIT list says which happened.
        p.wait_events(lambda evs: any(e["to"] in ("TIME_WAIT", "CLOSE") for e in of(evs, "tcp.state", "client")))
        tw = time_wait_tuples()
        proxy_first = (p.addr, client) in tw
        seq, client_ts = self.states(p, "client", "TIME_WAIT" if proxy_first else "CLOSE")
        # (both FINs crossing: CLOSING, and both ends hold TIME_WAIT)
        self.assertIn(seq[3:], [ACTIVE, SIMULTANEOUS] if proxy_first else [PASSIVE])
        self.assertEqual(seq[:3], ["LISTEN", "SYN_RECV", "ESTABLISHED"])
        self.assertEqual(client_ts[0]["peer"], client)
        if seq[3:] != ACTIVE:
            self.assertIn((client, p.addr), tw)  # curl holds it
        self.assertIn((f"127.0.0.1:{up.port}", up_ts[0]["local"]), tw)  # the server closed first
        self.assertNotIn((up_ts[0]["local"], up_ts[0]["peer"]), tw)
        evs = p.conn_closed()
        self.assertEqual(of(evs, "tcp.close", "upstream")[0]["time_wait"], "peer")
        self.assertEqual(of(evs, "tcp.close", "client")[0]["time_wait"], "proxy" if proxy_first else "peer")

    def test_server_closes_whole_socket(self):
        # The server closes its socket whole after its FIN: the proxy's close_notify that follows
        # reaches a closed socket, whose kernel answers with an RST. No TIME_WAIT on either side
        # of that leg, and the proxy's socket ends CLOSE_WAIT -> CLOSE with reset.
        up = HttpThenClose(self.pki.cert, self.pki.key)
        up.whole = True
        self._stops.append(up.stop)
        p = self.start(up.port)
        cap = self.capture([p.port, up.port])
        r = run(["curl", "-sk", "-o", "/dev/null", "--http1.0", f"https://{p.addr}/"])
        self.assertEqual(r.returncode, 0, r.stderr)
        seq, up_ts = self.states(p, "upstream", "CLOSE")
        self.assertEqual(seq, ["CLOSE", "SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "CLOSE"])
        self.assertTrue(up_ts[-1]["reset"])
        uport = int(up_ts[0]["local"].rsplit(":", 1)[1])
        self.assertIn((up.port, uport), self.senders(cap, 3))  # the server's RST, on the wire
        self.assertIn((up.port, uport), self.senders(cap, 2))  # after its FIN
        tw = time_wait_tuples()
        self.assertNotIn((f"127.0.0.1:{up.port}", up_ts[0]["local"]), tw)
        self.assertNotIn((up_ts[0]["local"], up_ts[0]["peer"]), tw)

    def test_client_resets(self):
        up = EchoServer(self.pki.cert, self.pki.key)
        self._stops.append(up.stop)
        p = self.start(up.port)
        cap = self.capture([p.port, up.port])

        def abort(c):
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
            c.close()
        client = self.echo_once(p.port, abort)
        seq, client_ts = self.states(p, "client", "CLOSE")
        self.assertEqual(seq, ["LISTEN", "SYN_RECV", "ESTABLISHED", "CLOSE"])
        self.assertTrue(client_ts[-1]["reset"])
        # The proxy passes the RST on: no TIME_WAIT for either socket of the proxy.
        seq, up_ts = self.states(p, "upstream", "CLOSE")
        self.assertEqual(seq, ["CLOSE", "SYN_SENT", "ESTABLISHED", "CLOSE"])
        tw = time_wait_tuples()
        for pair in [(client, p.addr), (p.addr, client), (up_ts[0]["local"], up_ts[0]["peer"])]:
            self.assertNotIn(pair, tw)
        # On the wire: the client's RST ended the client leg; the proxy's own RST (no FIN of
        # its) ended the upstream leg.
        cport, uport = int(client.rsplit(":", 1)[1]), int(up_ts[0]["local"].rsplit(":", 1)[1])
        rsts, fins = self.senders(cap, 3), self.senders(cap, 2)
        self.assertIn((cport, p.port), rsts)
        self.assertIn((uport, up.port), rsts)
        self.assertNotIn((uport, up.port), fins)
        evs = p.conn_closed()
        self.assertEqual(of(evs, "tcp.close", "client")[0]["how"], "rst")
        self.assertNotIn("time_wait", of(evs, "tcp.close", "client")[0])

    def test_server_resets(self):
        up = ResetAfterEcho(self.pki.cert, self.pki.key)
        self._stops.append(up.stop)
        p = self.start(up.port)
        cap = self.capture([p.port, up.port])

        def wait_for_end(c):  # the server's RST, passed on, ends it
            try:
                c.recv(10)
            except OSError:
                pass
            c.close()
        self.echo_once(p.port, wait_for_end)
        seq, up_ts = self.states(p, "upstream", "CLOSE")
        self.assertEqual(seq, ["CLOSE", "SYN_SENT", "ESTABLISHED", "CLOSE"])
        self.assertTrue(up_ts[-1]["reset"])
        self.assertNotIn((up_ts[0]["local"], up_ts[0]["peer"]), time_wait_tuples())
        # On the wire: the server's RST, before any FIN of the proxy's upstream socket.
        uport = int(up_ts[0]["local"].rsplit(":", 1)[1])
        self.assertIn((up.port, uport), self.senders(cap, 3))
        self.assertNotIn((uport, up.port), self.senders(cap, 2))
        evs = p.conn_closed()
        self.assertEqual(of(evs, "tcp.close", "upstream")[0]["how"], "rst")


    def test_many_connections_each_leg_gets_only_its_own_socket(self):
        # Connections in waves of concurrent clients, each closed or reset, on one proxy: sockets
        # of the peers change state in the proxy's context on loopback, and the kernel reuses a
        # freed socket's address for the next one. Each leg's transitions must be one life of its
        # own socket: one start, a chain where each transition leaves the state the one before
        # entered, and the 4-tuple that tcp.connect (upstream) and conn.open (client) gave.
        up = EchoServer(self.pki.cert, self.pki.key)
        self._stops.append(up.stop)
        p = self.start(up.port)
        waves, per_wave = 4, 15

        def one(i):
            def abort(c):
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
                c.close()
            self.echo_once(p.port, abort if i % 3 == 0 else (lambda c: c.close()))
        for w in range(waves):
            threads = [threading.Thread(target=one, args=(w * per_wave + i,)) for i in range(per_wave)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
        n = waves * per_wave
        ended = ("TIME_WAIT", "CLOSE")
        evs = p.wait_events(lambda evs: sum(1 for e in evs if e["event"] == "conn.close") >= n and all(
            any(e["to"] in ended for e in of(evs, "tcp.state", leg, conn=c["conn"]))
            for c in of(evs, "conn.open") for leg in ("client", "upstream")))
        starts = {"client": ("LISTEN", "SYN_RECV"), "upstream": ("CLOSE", "SYN_SENT")}
        for c in of(evs, "conn.open"):
            conn = c["conn"]
            ends = {"client": (c["listen"], c["client"])}
            tc = of(evs, "tcp.connect", "upstream", conn=conn)[0]
            ends["upstream"] = (tc["local"], tc["peer"])
            for leg in ("client", "upstream"):
                ts = [e for e in of(evs, "tcp.state", leg, conn=conn) if e["source"] == "ebpf"]
                where = f"conn {conn} {leg}: " + " ".join(f"{e['from']}->{e['to']}" for e in ts)
                self.assertEqual((ts[0]["from"], ts[0]["to"]), starts[leg], where)
                for a, b in zip(ts, ts[1:]):
                    self.assertEqual(b["from"], a["to"], where)
                    self.assertNotIn(b["to"], ("SYN_SENT", "SYN_RECV", "LISTEN"), where)
                self.assertIn(ts[-1]["to"], ended, where)
                for e in ts:
                    self.assertEqual((e["local"], e["peer"]), ends[leg], where)
                self.check_close_agrees(evs, conn, leg, ts)

    def check_close_agrees(self, evs, conn, leg, ts):
        """tcp.close's `by` and `how` against the kernel's transitions of the leg's socket: the
        first one out of ESTABLISHED says whose end came first (FIN_WAIT1: the proxy's FIN;
        CLOSE_WAIT: the peer's FIN; CLOSE: a reset, the proxy's when it aborted, else the peer's)."""
        close = of(evs, "tcp.close", leg, conn=conn)[0]
        first = next(e for e in ts if e["from"] == "ESTABLISHED")
        where = f"conn {conn} {leg}: {close} against " + " ".join(f"{e['from']}->{e['to']}" for e in ts)
        if first["to"] == "FIN_WAIT1":
            self.assertEqual((close["by"], close["how"]), ("proxy", "fin"), where)
        elif first["to"] == "CLOSE_WAIT":
            self.assertEqual((close["by"], close["how"]), ("peer", "fin"), where)
        else:
            self.assertEqual(first["to"], "CLOSE", where)
            self.assertEqual(close["how"], "rst", where)
            self.assertEqual(close["by"], "peer" if first.get("reset") else "proxy", where)

    def test_peer_closing_whole_at_the_same_moment_as_the_proxy(self):
        # A server that closes its socket whole right after its response, and curl, which sends
        # close_notify and closes whole as soon as it has the response: on both legs the peer's
        # FIN (or its RST) and the proxy's close cross, and tcp.close must name the side the
        # kernel saw first.
        up = HttpThenClose(self.pki.cert, self.pki.key)
        up.whole = True
        self._stops.append(up.stop)
        p = self.start(up.port)
        n = 20
        for _ in range(n):
            r = run(["curl", "-sk", "-o", "/dev/null", "--http1.0", f"https://{p.addr}/"])
            self.assertEqual(r.returncode, 0, r.stderr)
        ended = ("TIME_WAIT", "CLOSE")
        evs = p.wait_events(lambda evs: sum(1 for e in evs if e["event"] == "conn.close") >= n and all(
            any(e["to"] in ended for e in of(evs, "tcp.state", leg, conn=c["conn"]))
            for c in of(evs, "conn.open") for leg in ("client", "upstream")))
        for c in of(evs, "conn.open"):
            for leg in ("client", "upstream"):
                ts = [e for e in of(evs, "tcp.state", leg, conn=c["conn"]) if e["source"] == "ebpf"]
                self.check_close_agrees(evs, c["conn"], leg, ts)


class TcpStatesBothSources(TcpStates):
    """The same scenarios with --capture and --tcp-states-source both: the states derived from the
    captured segments (source capture) must be the kernel's own (source ebpf) for the same legs."""
    extra = ("--capture", "--tcp-states-source", "both")

    def states(self, p, leg, until):
        seq, ts = super().states(p, leg, until)
        cseq, cts = self.from_source(p, leg, until, "capture")
        self.assertEqual(cseq, seq, f"{leg}: capture-derived states differ from the kernel's")
        ends = [(e["local"], e["peer"], e.get("reset")) for e in ts]
        self.assertEqual([(e["local"], e["peer"], e.get("reset")) for e in cts], ends)
        return seq, ts


if __name__ == "__main__":
    unittest.main()
