"""The TCP facts of real impaired paths: three network namespaces the test creates and deletes
(client ⇄ proxy ⇄ server, one veth pair per leg), tlstrace in the middle one, and tshark capturing
both of the proxy's veths in the same test. This kernel has no netem, so tests/integration/
impair.py delays, drops and reorders packets from an NFQUEUE (iptables' NFQUEUE target) in the far
namespace of a leg: the capture on the proxy's side of the veth then sees the proxy's segments as
its kernel sent them and the peer's as its kernel received them, the same view TCP_INFO has.

Every asserted field is compared with what tshark makes of that capture:
- delay: tcp.info's rtt at establishment against tshark's tcp.analysis.ack_rtt of the handshake,
  and at close against the range of its data→ACK samples;
- loss: tcp.info's total_retrans at close against the frames tshark flags as retransmissions;
- reordering: tcp.info's rcv_ooopack against the frames tshark flags tcp.analysis.out_of_order;
- a SYN-backlog overflow of a stalled listener: tcp.listen's overflow and drop counts against the
  SYNs that drew no SYN/ACK (and their retransmissions by the client);
- resets by either side: tcp.close's by and how against the first FIN or RST of each leg."""
import datetime
import json
import os
import signal
import sys
import time
import unittest

import netns
from harness import DEADLINE, Proc, ProxyTestCase, of, run, tshark_cmd

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT, PROXY_C, PROXY_S, SERVER = "10.78.1.2", "10.78.1.1", "10.78.2.1", "10.78.2.2"
SERVER_PORT = 7000
# Both clocks are the host's: the kernel stamps a segment when TCP hands it to IP and an ACK when
# TCP takes it in, the capture at the veth a few microseconds further out. The gap is the proxy
# namespace's own stack (no impairment there): 10 to 30 µs in runs here, also with a load of 12; 3 ms
# leaves room for a softirq or a socket backlog delayed on a loaded 2-core CI machine, and is
# still far below the delays the tests add (so a reading that ignored them could not pass).
RTT_TOLERANCE_MS = 3.0

# The peers, run inside the namespaces (python3 -c PEERS MODE ...).
PEERS = r"""
import json, socket, struct, sys, threading, time
mode = sys.argv[1]

def linger0(s):  # close() then sends an RST (RFC 9293 3.6: abort)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

if mode == "server":  # echo; a connection whose first bytes are RST is reset on them
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((sys.argv[2], int(sys.argv[3])))
    ls.listen(16)
    print("listening", flush=True)
    def serve(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.settimeout(30)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                if d.startswith(b"RST"):
                    linger0(c)
                    break
                c.sendall(d)
        except OSError:
            pass
        c.close()
    end = time.time() + 60
    while time.time() < end:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()

elif mode == "client":  # through the proxy's CONNECT to the server, then one of the actions
    host, port, target, action, n = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
    s = socket.create_connection((host, port), timeout=20)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = {"port": s.getsockname()[1]}
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        if not d:
            break
        head += d
    out["status"] = head.split(b"\r\n")[0].decode()
    def exactly(k):
        got = b""
        while len(got) < k:
            d = s.recv(k - len(got))
            if not d:
                break
            got += d
        return got
    if action == "pingpong":  # n rounds, each one message and its echo: one segment each way
        for i in range(n):
            msg = (b"%03d" % i) * 30
            s.sendall(msg)
            assert exactly(len(msg)) == msg
        s.close()
    elif action == "burst":  # n writes 1 ms apart (each leaves before the next), then the echoes
        msgs = [(b"%03d" % i) * 100 for i in range(n)]
        for m in msgs:
            s.sendall(m)
            time.sleep(0.001)
        assert exactly(sum(map(len, msgs))) == b"".join(msgs)
        s.close()
    elif action == "reset":  # the client resets after one exchange
        s.sendall(b"hello")
        assert exactly(5) == b"hello"
        linger0(s)
        s.close()
    elif action == "server-reset":  # the server resets: the client waits for what comes
        s.sendall(b"RST now")
        try:
            out["read"] = repr(s.recv(100))
        except OSError as e:
            out["read"] = type(e).__name__
        s.close()
    print(json.dumps(out), flush=True)

elif mode == "backlog":  # fill the accept queue of a stalled listener, then a burst of SYNs
    host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    held = [socket.create_connection((host, port), timeout=5) for _ in range(2)]
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, port))
        socks.append(s)
    print(json.dumps({"filled": [h.getsockname()[1] for h in held],
                      "burst": [s.getsockname()[1] for s in socks]}), flush=True)
    time.sleep(30)  # holds the sockets until the test ends this process by its PID
"""

SENTINEL = "import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', (sys.argv[1], 9))"
FIELDS = ["frame.number", "frame.time_epoch", "frame.interface_name", "ip.src", "tcp.srcport", "ip.dst",
          "tcp.dstport", "tcp.stream", "tcp.flags", "tcp.seq", "tcp.len", "tcp.analysis.ack_rtt",
          "tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
          "tcp.analysis.spurious_retransmission", "tcp.analysis.out_of_order"]
SYN, RST, FIN, ACK = 0x02, 0x04, 0x01, 0x10


def epoch(event):
    """An event's ts as seconds since the epoch: the same clock as the capture's frame times."""
    return datetime.datetime.strptime(event["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def nfqueue_missing(ns):
    # The NFQUEUE target (CONFIG_NETFILTER_XT_TARGET_NFQUEUE) is what impair.py needs.
    r = run(["ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-p", "tcp", "-j", "NFQUEUE", "--queue-num", "9"])
    return None if r.returncode == 0 else "iptables cannot add an NFQUEUE rule: " + r.stderr.decode().strip()


def why_not():
    return netns.why_no_netns((("iptables", "iptables"), ("tshark", "tshark")), nfqueue_missing)


class Legs(netns.ThreeNamespaces):
    """Namespaces c, p, s: c's veth `cp` ⇄ p's `pc` (the client leg), p's `ps` ⇄ s's `sp` (the
    upstream leg). Nothing is routed: the proxy ends TCP on both legs."""

    def __init__(self):
        super().__init__((CLIENT, PROXY_C, PROXY_S, SERVER), ("pc", "cp", "ps", "sp"))
        self.p = self.m


class ImpairedPaths(ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        why = why_not()
        if why:
            raise unittest.SkipTest(why)
        super().setUpClass()

    def setUp(self):
        super().setUp()
        self.ns = Legs()
        self._stops.append(self.ns.delete)  # runs last (the stops run in reverse)
        self.server = Proc(Legs.exec(self.ns.s, sys.executable, "-c", PEERS, "server", SERVER, str(SERVER_PORT)),
                           f"{self.dir}/server.log")
        self._stops.append(self.server.stop)
        self.wait_output(self.server, lambda out: "listening" in out, "the server")

    def wait_output(self, proc, pred, what):
        end = time.time() + DEADLINE
        while not pred(proc.output()):
            if proc.p.poll() is not None or time.time() > end:
                self.fail(f"{what} did not get ready: " + proc.output()[-500:])
            time.sleep(0.02)
        return proc.output()

    def impair(self, ns, chain, dev, *args, queue=0):
        """impair.py in namespace `ns` on the TCP packets of `dev` (INPUT: arriving there, OUTPUT:
        leaving), bound before the rule that queues them exists (an unbound queue drops)."""
        imp = Proc(Legs.exec(ns, sys.executable, f"{HERE}/impair.py", "--queue", str(queue), *args),
                   f"{self.dir}/impair-{ns[-1]}-{chain}.log")
        self._stops.append(imp.stop)
        self.wait_output(imp, lambda out: "ready" in out, "impair.py")
        flag = "-i" if chain == "INPUT" else "-o"
        Legs.sh(Legs.exec(ns, "iptables", "-A", chain, flag, dev, "-p", "tcp", "-j", "NFQUEUE",
                          "--queue-num", str(queue)))
        return imp

    def proxy_in_ns(self, *args):
        return self.proxy("-l", "0.0.0.0:0", "--allow-remote", *args, prefix=Legs.exec(self.ns.p))

    def capture(self):
        """tshark on both of the proxy's veths, live once a UDP datagram sent over each shows in its
        packet list (dumpcap starts capturing a little after it says so)."""
        path = f"{self.dir}/legs.pcapng"
        cap = Proc(Legs.exec(self.ns.p, "tshark", "-i", "pc", "-i", "ps", "-n", "-l", "-P", "-a", "duration:40",
                             "-w", path), f"{self.dir}/tshark.log")
        self._stops.append(cap.stop)
        end = time.time() + DEADLINE
        while not all(f"{src} → {dst}" in cap.output() for src, dst in ((CLIENT, PROXY_C), (SERVER, PROXY_S))):
            if cap.p.poll() is not None or time.time() > end:
                self.fail("tshark does not capture on the veths: " + cap.output()[-500:])
            for ns, dst in ((self.ns.c, PROXY_C), (self.ns.s, PROXY_S)):
                run(Legs.exec(ns, sys.executable, "-c", SENTINEL, dst))
            time.sleep(0.1)
        return cap, path

    def packets(self, cap, path, settle=0.3):
        """Ends tshark once its packet list stood still for `settle` s (bounded), and reads the file."""
        end, last = time.time() + DEADLINE, None
        while time.time() < end:
            out = cap.output()
            if out == last:
                break
            last = out
            time.sleep(settle)
        cap.stop(signal.SIGINT)
        r = run([*tshark_cmd(), "-r", path, "-n", "-Y", "tcp", "-T", "fields", "-E", "separator=|",
                 *sum((["-e", f] for f in FIELDS), [])], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        rows = []
        for line in r.stdout.decode().splitlines():
            row = dict(zip(FIELDS, line.split("|")))
            row["flags"] = int(row["tcp.flags"], 16)
            row["t"] = float(row["frame.time_epoch"])
            rows.append(row)
        return rows

    def client(self, port, action, n=0):
        r = run(Legs.exec(self.ns.c, sys.executable, "-c", PEERS, "client", PROXY_C, str(port),
                          f"{SERVER}:{SERVER_PORT}", action, str(n)), timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        out = json.loads(r.stdout.decode().splitlines()[-1])
        self.assertIn(" 200 ", out["status"] + " ")
        return out

    @staticmethod
    def leg_rows(rows, dev, port_a, port_b):
        return [r for r in rows if r["frame.interface_name"] == dev
                and {r["tcp.srcport"], r["tcp.dstport"]} == {str(port_a), str(port_b)}]

    def conn_of(self, evs, client_port):
        """The conn id and the proxy's upstream port of the connection from `client_port`."""
        conn = [o for o in of(evs, "conn.open") if o["client"] == f"{CLIENT}:{client_port}"][0]["conn"]
        up = of(evs, "tcp.connect", "upstream", conn=conn)[0]["local"]
        self.assertEqual(up.rsplit(":", 1)[0], PROXY_S)
        return conn, int(up.rsplit(":", 1)[1])

    @staticmethod
    def ladder(lr):
        """The rows as a compact text, for a failure's message."""
        flags = ("tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
                 "tcp.analysis.spurious_retransmission", "tcp.analysis.out_of_order")
        return "\n" + "\n".join(f"{r['t']:.6f} {r['tcp.srcport']}>{r['tcp.dstport']} {r['tcp.flags']} "
                                 f"seq={r['tcp.seq']} len={r['tcp.len']} " +
                                 " ".join(f.split(".")[-1] for f in flags if r[f]) for r in lr)

    @staticmethod
    def retransmitted(r):
        return any(r[f] for f in ("tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
                                  "tcp.analysis.spurious_retransmission"))

    def test_delay_shows_in_rtt_as_the_capture_measures_it(self):
        d_client, d_server = 40, 70
        self.impair(self.ns.c, "INPUT", "cp", "--delay-ms", str(d_client))
        self.impair(self.ns.s, "INPUT", "sp", "--delay-ms", str(d_server))
        p = self.proxy_in_ns()
        cap, path = self.capture()
        out = self.client(p.port, "pingpong", 4)
        evs = p.conn_closed()
        rows = self.packets(cap, path)
        conn, up_port = self.conn_of(evs, out["port"])
        for leg, dev, ours, theirs, delay in (("client", "pc", p.port, out["port"], d_client),
                                              ("upstream", "ps", up_port, SERVER_PORT, d_server)):
            with self.subTest(leg=leg):
                lr = self.leg_rows(rows, dev, ours, theirs)
                info = {e["at"]: e for e in of(evs, "tcp.info", leg, conn)}
                # The handshake's one RTT sample: SYN/ACK → ACK when the proxy answered (client
                # leg), SYN → SYN/ACK when it connected; tshark puts it on the acknowledging frame.
                want = ACK if leg == "client" else SYN | ACK
                first = [r for r in lr if r["tcp.srcport"] == str(theirs) and r["flags"] == want][0]
                handshake_ms = float(first["tcp.analysis.ack_rtt"]) * 1000
                self.assertGreaterEqual(handshake_ms, delay)
                self.assertGreaterEqual(info["established"]["rtt_ms"], delay)
                self.assertAlmostEqual(info["established"]["rtt_ms"], handshake_ms, delta=RTT_TOLERANCE_MS)
                # At close the smoothed RTT is an average of the samples since: within their range.
                samples = [float(r["tcp.analysis.ack_rtt"]) * 1000 for r in lr
                           if r["tcp.srcport"] == str(theirs) and r["tcp.analysis.ack_rtt"]]
                self.assertGreaterEqual(len(samples), 3, self.ladder(lr))
                self.assertGreaterEqual(info["close"]["rtt_ms"], min(samples) - RTT_TOLERANCE_MS)
                self.assertLessEqual(info["close"]["rtt_ms"], max(samples) + RTT_TOLERANCE_MS)
                self.assertEqual(info["close"]["total_retrans"], 0)
                self.assertFalse([r for r in lr if self.retransmitted(r) and r["t"] < epoch(info["close"])])

    def test_losses_show_as_the_retransmissions_the_capture_flags(self):
        # Data packets the proxy sends: to the client #1 is the CONNECT answer, #2.. the echoes;
        # to the server #1.. the client's messages. A little delay makes the capture's initial RTT
        # far longer than the gap between a segment and its retransmission would be otherwise.
        self.impair(self.ns.c, "INPUT", "cp", "--delay-ms", "10", "--drop", "2,4")
        self.impair(self.ns.s, "INPUT", "sp", "--delay-ms", "10", "--drop", "2")
        p = self.proxy_in_ns()
        cap, path = self.capture()
        out = self.client(p.port, "pingpong", 5)
        evs = p.conn_closed()
        rows = self.packets(cap, path)
        conn, up_port = self.conn_of(evs, out["port"])
        for leg, dev, ours, theirs, dropped in (("client", "pc", p.port, out["port"], 2),
                                                ("upstream", "ps", up_port, SERVER_PORT, 1)):
            with self.subTest(leg=leg):
                lr = self.leg_rows(rows, dev, ours, theirs)
                flagged = [r for r in lr if r["tcp.srcport"] == str(ours) and self.retransmitted(r)]
                close = [e for e in of(evs, "tcp.info", leg, conn) if e["at"] == "close"][0]
                self.assertGreaterEqual(len(flagged), dropped, self.ladder(lr))  # each lost segment went again
                self.assertGreaterEqual(close["total_retrans"], dropped)  # (before close: the peer awaited them)
                # What the kernel counted until it was asked, at close: the proxy's FIN may go
                # again after that, when the client's answer is late.
                self.assertEqual(close["total_retrans"], sum(1 for r in flagged if r["t"] < epoch(close)))
                self.assertEqual(close["retransmits"], 0)  # all recovered: nothing outstanding

    def test_reordering_shows_as_out_of_order_segments_received(self):
        # The client's data packets: #1 the CONNECT, #2.. the burst; three of them are overtaken
        # by the next one on the way to the proxy. One write, one segment, so that there is a next
        # one to overtake: no autocorking in the client's namespace, writes apart, and nothing else
        # waits on that way (a packet held in the queue still counts against the socket's
        # small-queue budget, and the kernel merges the writes behind it). The delay is on the way
        # back, so that the capture's initial RTT, its bound for out-of-order against retransmitted,
        # is 40 ms. (On a loaded machine the client sometimes retransmits a held segment once the
        # proxy's SACK for the one that overtook it arrives: a spurious retransmission of data
        # the proxy already has, which tshark flags as such and the proxy does not count as out
        # of order; the comparison below holds either way.)
        Legs.sh(Legs.exec(self.ns.c, "sysctl", "-qw", "net.ipv4.tcp_autocorking=0"))
        imp = self.impair(self.ns.c, "OUTPUT", "cp", "--reorder", "3,6,9")
        self.impair(self.ns.c, "INPUT", "cp", "--delay-ms", "40", queue=1)
        p = self.proxy_in_ns()
        cap, path = self.capture()
        out = self.client(p.port, "burst", 12)
        evs = p.conn_closed()
        rows = self.packets(cap, path)
        conn, _ = self.conn_of(evs, out["port"])
        self.assertEqual(imp.output().count("reorder "), 3, imp.output())
        lr = self.leg_rows(rows, "pc", p.port, out["port"])
        late = [r for r in lr if r["tcp.srcport"] == str(out["port"]) and r["tcp.analysis.out_of_order"]]
        close = [e for e in of(evs, "tcp.info", "client", conn) if e["at"] == "close"][0]
        self.assertEqual(len(late), 3, self.ladder(lr) + imp.output())
        self.assertEqual(close["rcv_ooopack"], len(late), self.ladder(lr))
        upstream = [e for e in of(evs, "tcp.info", "upstream", conn) if e["at"] == "close"][0]
        self.assertEqual(upstream["rcv_ooopack"], 0)  # nothing reordered there
        self.assertFalse([r for r in rows if r["frame.interface_name"] == "ps" and r["tcp.analysis.out_of_order"]])

    def test_syn_backlog_overflow_matches_the_unanswered_syns(self):
        n = 5
        p = self.proxy_in_ns("--backlog", "1")
        p.wait_events(lambda evs: of(evs, "tcp.listen"))
        cap, path = self.capture()
        os.kill(p.proc.p.pid, signal.SIGSTOP)  # no accept, no timer: the queue fills and stays full
        try:
            burst = Proc(Legs.exec(self.ns.c, sys.executable, "-c", PEERS, "backlog", PROXY_C, str(p.port), str(n)),
                         f"{self.dir}/burst.log")
            self._stops.append(burst.stop)
            ports = json.loads(self.wait_output(burst, lambda o: "burst" in o, "the burst").splitlines()[0])
            # The client retransmits each dropped SYN after its initial RTO (1 s, RFC 6298 2.1);
            # ended before the second (3 s), the client leaves exactly 2n dropped SYNs.
            self.wait_output(cap, lambda o: sum("Retransmission" in ln and "[SYN]" in ln
                                                for ln in o.splitlines()) >= n, "SYN retransmissions")
            burst.stop(signal.SIGKILL)
        finally:
            os.kill(p.proc.p.pid, signal.SIGCONT)
        p.wait_events(lambda evs: any(e["reason"] == "overflow" for e in of(evs, "tcp.listen")))
        p.stop()
        rows = [r for r in self.packets(cap, path) if r["frame.interface_name"] == "pc"]
        answered = {r["tcp.dstport"] for r in rows if r["flags"] == SYN | ACK and r["tcp.srcport"] == str(p.port)}
        self.assertEqual(answered, {str(x) for x in ports["filled"]})
        syns = [r for r in rows if r["flags"] == SYN and r["tcp.dstport"] == str(p.port)]
        unanswered = [r for r in syns if r["tcp.srcport"] not in answered]
        self.assertEqual({r["tcp.srcport"] for r in unanswered}, {str(x) for x in ports["burst"]})
        self.assertEqual(len(unanswered), 2 * n, unanswered)
        self.assertEqual(sum(1 for r in unanswered if r["tcp.analysis.retransmission"]), n)
        listens = of(p.read_events(), "tcp.listen")
        last = listens[-1]
        self.assertEqual((last["listen_overflows"], last["listen_drops"]), (len(unanswered), len(unanswered)))
        self.assertEqual(sum(e["new_overflows"] for e in listens), last["listen_overflows"])
        self.assertEqual(last["accept_queue_max"], 1)

    def test_resets_by_either_side_as_the_capture_shows_them(self):
        p = self.proxy_in_ns()
        cap, path = self.capture()
        by_client = self.client(p.port, "reset")
        by_server = self.client(p.port, "server-reset")
        evs = p.conn_closed(2)
        rows = self.packets(cap, path)
        for out, expect in ((by_client, {"client": ("peer", "rst"), "upstream": ("proxy", "rst")}),
                            (by_server, {"upstream": ("peer", "rst"), "client": ("proxy", "rst")})):
            conn, up_port = self.conn_of(evs, out["port"])
            for leg, dev, ours, theirs in (("client", "pc", p.port, out["port"]),
                                           ("upstream", "ps", up_port, SERVER_PORT)):
                with self.subTest(conn=conn, leg=leg):
                    lr = self.leg_rows(rows, dev, ours, theirs)
                    end = [r for r in lr if r["flags"] & (FIN | RST)][0]  # the first FIN or RST on the wire
                    seen = ("proxy" if end["tcp.srcport"] == str(ours) else "peer",
                            "rst" if end["flags"] & RST else "fin")
                    close = of(evs, "tcp.close", leg, conn)[0]
                    self.assertEqual((close["by"], close["how"]), seen, self.ladder(lr))
                    self.assertEqual(seen, expect[leg])


if __name__ == "__main__":
    unittest.main()
