"""The TCP facts of a leg (tcp.syn, tcp.info, tcp.listen) against independent views of the same
connections: tshark capturing the handshakes on the loopback interface (the client's SYN: ISN,
window, options, TTL; the SYN-ACKs: which options both sides agreed on), `ss -tin` on the proxy's
own sockets while they are open (MSS, window scale shifts, RTT), and, for the SYN backlog,
/proc/net/netstat and `ss -lt` inside a network namespace the test creates."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

from harness import DEADLINE, TLSTRACE, Proc, ProxyTestCase, of, run, send_connect, tshark_cmd

TSHARK_FIELDS = ["frame.number", "ip.src", "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq", "tcp.window_size_value",
                 "tcp.options.mss_val", "tcp.options.sack_perm", "tcp.options.wscale.shift",
                 "tcp.options.timestamp.tsval", "tcp.option_kind", "ip.ttl"]


def tshark_rows(path):
    r = run([*tshark_cmd(), "-r", path, "-o", "tcp.relative_sequence_numbers:FALSE", "-T", "fields",
             "-E", "separator=|", *sum((["-e", f] for f in TSHARK_FIELDS), [])])
    assert r.returncode == 0, r.stderr.decode()
    rows = []
    for line in r.stdout.decode().splitlines():
        rows.append(dict(zip(TSHARK_FIELDS, line.split("|"))))
    return rows


def ss_sockets(filter_expr, netns=()):
    """`ss -tinH` parsed: {(local, peer): {key: value}} for the sockets the filter selects."""
    r = run([*netns, "ss", "-tinH", *filter_expr.split()])
    assert r.returncode == 0, r.stderr.decode()
    out, key = {}, None
    for line in r.stdout.decode().splitlines():
        parts = line.split()
        if not line.startswith((" ", "\t")) and len(parts) >= 5:
            key = (parts[3], parts[4])
            out[key] = {}
        elif key:
            for p in parts:
                k, sep, v = p.partition(":")
                out[key][k] = v if sep else True
    return out


class TcpFacts(ProxyTestCase):
    def capture(self, ports):
        """tshark on lo for the SYNs and SYN-ACKs of `ports`, live once a SYN to a sentinel port of
        its own shows in its packet list (dumpcap starts capturing a little after it says so)."""
        if not shutil.which("tshark"):
            self.skipTest("tshark not installed (tools/deps.sh --test)")
        sentinel = socket.socket()
        sentinel.bind(("127.0.0.1", 0))
        sentinel.listen(64)
        self._stops.append(sentinel.close)
        sport = sentinel.getsockname()[1]
        path = f"{self.dir}/syn.pcapng"
        ports_expr = " or ".join(f"port {p}" for p in [*ports, sport])
        cap = Proc(["tshark", "-i", "lo", "-n", "-l", "-P", "-a", "duration:30", "-w", path,
                    "-f", f"tcp[tcpflags] & tcp-syn != 0 and ({ports_expr})"], f"{self.dir}/tshark.log")
        self._stops.append(cap.stop)
        end = time.time() + DEADLINE
        while f" {sport} " not in cap.output():
            if cap.p.poll() is not None or time.time() > end:
                self.skipTest("tshark cannot capture on lo: " + cap.output()[-300:])
            socket.create_connection(("127.0.0.1", sport)).close()
            time.sleep(0.1)
        return cap, path, sport

    def stop_capture(self, cap, want):
        """Waits (bounded) until `want(output)` says the packets are in, then ends tshark."""
        end = time.time() + DEADLINE
        while not want(cap.output()) and time.time() < end:
            time.sleep(0.05)
        cap.stop(signal.SIGINT)

    def test_syn_and_tcp_info_match_the_capture_and_ss(self):
        echo = self.echo()
        p = self.proxy()
        cap, path, sentinel = self.capture([p.port, echo.port])
        s = socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE)
        self.assertIn(b" 200 ", send_connect(s, f"127.0.0.1:{echo.port}"))
        s.sendall(b"hello")
        self.assertEqual(s.recv(16), b"hello")
        client_port = s.getsockname()[1]
        # Both legs are open: the kernel's own view of the proxy's two sockets.
        evs = p.wait_events(lambda evs: of(evs, "tcp.info", "upstream"))
        up_local = of(evs, "tcp.connect", "upstream")[0]["local"]
        socks = ss_sockets(f"( sport = :{p.port} or dport = :{echo.port} )")
        s.close()
        evs = p.conn_closed()
        ours = lambda out: sum(1 for ln in out.splitlines() if "SYN" in ln and f" {sentinel} " not in ln)
        self.stop_capture(cap, lambda out: ours(out) >= 4)
        rows = [r for r in tshark_rows(path) if str(sentinel) not in (r["tcp.srcport"], r["tcp.dstport"])]
        self.assertEqual(len(rows), 4, rows)
        by_src = {(r["tcp.srcport"], r["tcp.flags"]): r for r in rows}
        syn_c = by_src[(str(client_port), "0x0002")]
        synack_c = by_src[(str(p.port), "0x0012")]
        up_port = up_local.rsplit(":", 1)[1]
        syn_u = by_src[(up_port, "0x0002")]
        synack_u = by_src[(str(echo.port), "0x0012")]

        # tcp.syn: the client's SYN as tshark saw it on the wire.
        syn = of(evs, "tcp.syn", "client")[0]
        self.assertEqual(syn["src"], f"127.0.0.1:{client_port}")
        self.assertEqual(syn["dst"], p.addr)
        self.assertEqual(syn["seq"], int(syn_c["tcp.seq"]))
        self.assertEqual(syn["win"], int(syn_c["tcp.window_size_value"]))
        self.assertEqual(syn["mss"], int(syn_c["tcp.options.mss_val"]))
        self.assertEqual(syn["wscale"], int(syn_c["tcp.options.wscale.shift"]))
        self.assertEqual(syn["sack_perm"], syn_c["tcp.options.sack_perm"] != "")
        self.assertEqual(syn["ts_val"], int(syn_c["tcp.options.timestamp.tsval"]))
        self.assertEqual([o["kind"] for o in syn["options"]], [int(k) for k in syn_c["tcp.option_kind"].split(",")])
        self.assertEqual(syn["ttl"], int(syn_c["ip.ttl"]))
        self.assertEqual(syn["flags"], "SYN")

        # tcp.info at establishment: what both SYNs of each leg agreed on, and ss's view.
        for leg, ours, theirs, local, peer in (
                ("client", synack_c, syn_c, p.addr, f"127.0.0.1:{client_port}"),
                ("upstream", syn_u, synack_u, up_local, f"127.0.0.1:{echo.port}")):
            with self.subTest(leg=leg):
                info = [e for e in of(evs, "tcp.info", leg) if e["at"] == "established"][0]
                self.assertEqual(info["state"], "ESTABLISHED")
                both = lambda f: ours[f] != "" and theirs[f] != ""
                self.assertEqual(info["sack"], both("tcp.options.sack_perm"))
                self.assertEqual(info["timestamps"], both("tcp.options.timestamp.tsval"))
                self.assertEqual(info["snd_wscale"], int(theirs["tcp.options.wscale.shift"]))
                self.assertEqual(info["rcv_wscale"], int(ours["tcp.options.wscale.shift"]))
                self.assertFalse(info["ecn"])
                # The MSS the proxy sends with never exceeds what the peer announced (it grows with
                # the peer's window after the handshake: ss, taken later, is compared with the close).
                self.assertLessEqual(info["snd_mss"], int(theirs["tcp.options.mss_val"]))
                ss = socks[(local, peer)]
                closing = [e for e in of(evs, "tcp.info", leg) if e["at"] == "close"][0]
                self.assertEqual(ss["wscale"], f"{info['snd_wscale']},{info['rcv_wscale']}")
                self.assertEqual(int(ss["advmss"]), info["advmss"])
                self.assertEqual(int(ss["mss"]), closing["snd_mss"])
                self.assertEqual(int(ss["pmtu"]), info["pmtu"])
                ss_rtt = float(ss["rtt"].split("/")[0])
                self.assertTrue(0 < info["rtt_ms"] < 50 and 0 < ss_rtt < 50, (info["rtt_ms"], ss_rtt))
                # What ss counted while open, and at close at most the peer's FIN more (Linux counts
                # the FIN's sequence number in bytes_received).
                self.assertIn(closing["bytes_received"] - int(ss.get("bytes_received", 0)), (0, 1))
                # At close: asked just before tcp.close, which follows it.
                names = [(e["event"], e.get("at")) for e in evs if e.get("leg") == leg]
                i = names.index(("tcp.info", "close"))
                self.assertEqual(names[i + 1][0], "tcp.close")

        # The ladder in the text trace, and convert's rendering of it from the events alone.
        with open(p.trace) as f:
            live = f.read()
        first = f"<- SYN seq={syn_c['tcp.seq']} win={syn_c['tcp.window_size_value']} [mss {syn_c['tcp.options.mss_val']},"
        self.assertIn(first, live)
        self.assertIn("-> SYN, <- SYN,ACK, -> ACK: ESTABLISHED [", live)
        p.stop()
        text = run([TLSTRACE, "convert", p.events, "--to", "text"])
        self.assertEqual(text.returncode, 0, text.stderr)
        ladder = lambda t: [ln for ln in t.splitlines() if " SYN" in ln or " at close: " in ln or " first, from " in ln]
        self.assertEqual(ladder(text.stdout.decode()), ladder(live))
        self.assertTrue(ladder(live))

    def test_listen_reports_the_backlog_as_ss_shows_it(self):
        p = self.proxy("--backlog", "7")
        evs = p.wait_events(lambda evs: of(evs, "tcp.listen"))
        listen = of(evs, "tcp.listen")[0]
        self.assertEqual(listen["reason"], "start")
        self.assertEqual(listen["backlog"], 7)
        # ss -lt: Recv-Q is the accept queue, Send-Q its cap, for a listener.
        r = run(["ss", "-Hltn", f"sport = :{p.port}"])
        parts = r.stdout.decode().split()
        self.assertEqual((listen["accept_queue"], listen["accept_queue_max"]), (int(parts[1]), int(parts[2])))
        self.assertEqual(listen["accept_queue_max"], 7)
        with open("/proc/sys/net/core/somaxconn") as f:
            self.assertEqual(listen["somaxconn"], int(f.read()))
        with open("/proc/sys/net/ipv4/tcp_max_syn_backlog") as f:
            self.assertEqual(listen["tcp_max_syn_backlog"], int(f.read()))

    def test_tcp_category_off_asks_nothing(self):
        p = self.proxy("--trace", "handshake")
        s = socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE)
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        s.recv(1024)
        s.close()
        evs = p.conn_closed()
        self.assertEqual([e for e in evs if e["event"].startswith("tcp.")], [])


BURST = r"""
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    socks.append(s)
print("sent", flush=True)
time.sleep(30)  # holds the sockets until the test ends this process by its PID
"""


def netstat(enter):
    r = run([*enter, "cat", "/proc/net/netstat"])
    lines = r.stdout.decode().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            d = dict(zip(names.split()[1:], map(int, values.split()[1:])))
            return d["ListenOverflows"], d["ListenDrops"]
    raise AssertionError("no TcpExt in /proc/net/netstat")


class SynBacklog(ProxyTestCase):
    def test_overflow_of_a_stalled_listener_is_reported_as_netstat_counts_it(self):
        if not shutil.which("unshare") or not shutil.which("nsenter"):
            self.skipTest("unshare or nsenter (util-linux) not installed")
        root = os.geteuid() == 0
        holder = subprocess.Popen(["unshare", "-n" if root else "-rn", "sleep", "60"], start_new_session=True)
        self._stops.append(lambda: (holder.kill(), holder.wait()))
        enter = ["nsenter", "-t", str(holder.pid), "-n", *([] if root else ["-U", "--preserve-credentials"])]
        # The holder's PID is unshare's until it has made the namespace and run sleep: entering it
        # before then would enter ours.
        own, end = os.readlink("/proc/self/ns/net"), time.time() + DEADLINE
        while os.readlink(f"/proc/{holder.pid}/ns/net") == own or run([*enter, "ip", "link", "set", "lo", "up"]).returncode:
            if holder.poll() is not None or time.time() > end:
                self.skipTest("cannot make a network namespace of our own")
            time.sleep(0.02)
        base = netstat(enter)
        p = self.proxy("--backlog", "1", prefix=enter)
        p.wait_events(lambda evs: of(evs, "tcp.listen"))
        os.kill(p.proc.p.pid, signal.SIGSTOP)  # no accept, no timer: the queue fills
        try:
            burst = Proc([*enter, sys.executable, "-c", BURST, str(p.port), "12"], f"{self.dir}/burst.log")
            self._stops.append(burst.stop)
            while "sent" not in burst.output():
                self.assertIsNone(burst.p.poll(), burst.output())
                time.sleep(0.02)
            time.sleep(0.3)
            stalled = netstat(enter)
            # ss in the namespace: the accept queue at its cap of 1 (+1: the kernel's "full" is "over").
            r = run([*enter, "ss", "-Hltn", f"sport = :{p.port}"])
            recv_q, send_q = map(int, r.stdout.decode().split()[1:3])
        finally:
            os.kill(p.proc.p.pid, signal.SIGCONT)
        self.assertGreater(stalled[0], base[0], f"the kernel counted no overflow (accept queue {recv_q}/{send_q}): "
                           "the test proves nothing")
        self.assertEqual(send_q, 1)
        self.assertEqual(recv_q, 2)
        evs = p.wait_events(lambda evs: any(e["reason"] == "overflow" for e in of(evs, "tcp.listen")))
        burst.stop()  # no more SYNs: the counters stand still from here
        p.stop()
        final = netstat(enter)
        listens = of(p.read_events(), "tcp.listen")
        last = listens[-1]
        self.assertEqual(last["accept_queue_max"], send_q)
        self.assertEqual(last["backlog"], 1)
        self.assertEqual((last["listen_overflows"], last["listen_drops"]), (final[0] - base[0], final[1] - base[1]))
        self.assertEqual(sum(e["new_overflows"] for e in listens), last["listen_overflows"])
        overflow = [e for e in listens if e["reason"] == "overflow"][0]
        self.assertGreaterEqual(overflow["listen_overflows"], stalled[0] - base[0])


if __name__ == "__main__":
    unittest.main()
