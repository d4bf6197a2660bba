"""--upstream-proxy through real proxies from Debian: tinyproxy (HTTP CONNECT, with and without
BasicAuth), Dante's danted (SOCKS5 without authentication) and microsocks (SOCKS5 with RFC 1929
username/password), each on 127.0.0.1 with a run-time port, its configuration in the test's temp
dir, ended by its PID. That the target was reached through the proxy is the proxy's own log's word;
the upstream leg's ClientHello random and cipher suite are openssl s_server -trace's; an excluded
target goes direct (the proxy logs nothing); a refusal, an unreachable target and a dead proxy port
each name the failing hop."""
import json
import re
import shutil
import socket
import unittest

from test_closing import Capture

from harness import (DEADLINE, TLSTRACE, Proc, ProxyTestCase, ThreadedServer, dead_port, free_port, of, run, send_connect,
                     tshark_cmd, wait_port)

HAVE = {name: shutil.which(name) for name in ("tinyproxy", "danted", "microsocks")}
# tools/deps.sh --test installs them; a machine without them says so instead of passing quietly.
MISSING = [n for n, path in HAVE.items() if not path]


def server_hello_facts(trace):
    """{ClientHello random: the cipher suite s_server chose for it}, from its -trace output: each
    record's messages in order, a ServerHello answering the ClientHello before it."""
    chosen, last = {}, None
    for rec in re.split(r"\n(?=(?:Sent|Received) Record)", trace):
        hello = re.search(r"ClientHello.*?gmt_unix_time=0x([0-9A-F]{8})\s+random_bytes \(len=28\): ([0-9A-F]{56})",
                          rec, re.S)
        if hello:
            last = (hello.group(1) + hello.group(2)).lower()
            chosen[last] = None
        suite = re.search(r"ServerHello.*?cipher_suite \{0x([0-9A-F]{2}), 0x([0-9A-F]{2})\}", rec, re.S)
        if suite and last:
            chosen[last] = int(suite.group(1) + suite.group(2), 16)
    return chosen


@unittest.skipIf(MISSING, f"not installed: {MISSING} (tools/deps.sh --test installs them)")
class UpstreamProxy(ProxyTestCase):
    # ---- real proxies ------------------------------------------------------------------------

    def tinyproxy(self, auth=None, connect_ports=()):
        port = free_port()
        log = f"{self.dir}/tinyproxy-{port}.log"
        conf = f"{self.dir}/tinyproxy-{port}.conf"
        with open(conf, "w") as f:
            f.write(f'Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile "{log}"\nLogLevel Connect\n'
                    "MaxClients 20\nAllow 127.0.0.1\n")
            if auth:
                f.write(f"BasicAuth {auth[0]} {auth[1]}\n")
            for p in connect_ports:  # CONNECT only to these (else 403 Access violation)
                f.write(f"ConnectPort {p}\n")
        proc = Proc(["tinyproxy", "-d", "-c", conf], f"{self.dir}/tinyproxy-{port}.out")
        self._stops.append(proc.stop)
        wait_port(port, proc.p)
        return port, log

    def danted(self, block_port=None):
        port = free_port()
        log = f"{self.dir}/danted-{port}.log"
        conf = f"{self.dir}/danted-{port}.conf"
        block = (f"socks block {{\n  from: 0.0.0.0/0 to: 127.0.0.1/32 port = {block_port}\n  log: connect error\n}}\n"
                 if block_port else "")
        with open(conf, "w") as f:
            f.write(f"logoutput: {log}\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n"
                    "socksmethod: none\nclientmethod: none\nuser.privileged: root\nuser.unprivileged: nobody\n"
                    "client pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  log: connect error\n}\n" + block +
                    "socks pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  command: connect\n  log: connect error\n}\n")
        proc = Proc(["danted", "-f", conf, "-N", "1", "-p", f"{self.dir}/danted-{port}.pid"],
                    f"{self.dir}/danted-{port}.out")
        self._stops.append(proc.stop)  # SIGTERM to the mother ends its children
        wait_port(port, proc.p)
        return port, log

    def microsocks(self, user, password):
        port = free_port()
        out = f"{self.dir}/microsocks-{port}.log"
        proc = Proc(["microsocks", "-i", "127.0.0.1", "-p", str(port), "-u", user, "-P", password], out)
        self._stops.append(proc.stop)
        wait_port(port, proc.p)
        return port, proc

    # ---- helpers -------------------------------------------------------------------------------

    def traced_server(self):
        return self.s_server("-trace")

    def curl(self, p, port, *extra):
        return run(["curl", "-sS", "--max-time", "10", "--http1.1", "-x", f"http://{p.addr}", "--cacert", p.ca,
                    *extra, f"https://localhost:{port}/"])

    def upstream_connect(self, evs, conn=None):
        conns = of(evs, "tcp.connect", leg="upstream", conn=conn)
        self.assertEqual(len(conns), 1, conns)
        return conns[0]

    def assert_upstream_leg_matches(self, evs, srv, conn=None):
        """Each upstream ClientHello is one s_server received; its suite is the one it chose."""
        chosen = server_hello_facts(srv.proc.output())
        hellos = [m for m in of(evs, "tls.message", leg="upstream", conn=conn) if m["type"] == "ClientHello"]
        self.assertGreaterEqual(len(hellos), 1)
        for hello in hellos:
            self.assertIn(hello["body"]["random"], chosen)
            est = of(evs, "tls.established", leg="upstream", conn=hello["conn"])
            self.assertEqual(len(est), 1)
            self.assertEqual(est[0]["cipher"]["id"], chosen[hello["body"]["random"]])

    def assert_no_secret(self, p, secret):
        for path in (p.events, p.trace, p.proc.log_path):
            with open(path, errors="replace") as f:
                self.assertNotIn(secret, f.read(), path)

    # ---- HTTP CONNECT --------------------------------------------------------------------------

    def test_http_connect_through_tinyproxy(self):
        srv = self.traced_server()
        tp, log = self.tinyproxy()
        p = self.proxy("--upstream-proxy", f"http://127.0.0.1:{tp}", "--upstream-ca", self.pki.ca)
        r = self.curl(p, srv.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        evs = p.conn_closed(1)
        c = self.upstream_connect(evs)
        self.assertEqual((c["peer"], c["via"], c["hop"], c["proxy_status"]),
                         (f"127.0.0.1:{tp}", f"http://127.0.0.1:{tp}", "target", 200))
        self.assertEqual(c["target"], f"localhost:{srv.port}")
        self.assertIn("proxy_reply", c)
        with open(log) as f:
            text = f.read()
        # tinyproxy's own word: the CONNECT came, with the name unresolved, and it connected.
        self.assertIn(f"CONNECT localhost:{srv.port} HTTP/1.1", text)
        self.assertIn('Established connection to host "localhost"', text)
        self.assert_upstream_leg_matches(evs, srv)

    def test_http_connect_basic_auth(self):
        srv = self.traced_server()
        tp, log = self.tinyproxy(auth=("alice", "s3cretpw"))
        p = self.proxy("--upstream-proxy", f"http://alice:s3cretpw@127.0.0.1:{tp}", "--upstream-ca", self.pki.ca)
        q = self.proxy("--upstream-proxy", f"http://127.0.0.1:{tp}", "--upstream-ca", self.pki.ca)
        r = self.curl(p, srv.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        evs = p.conn_closed(1)
        self.assertEqual(self.upstream_connect(evs)["proxy_status"], 200)
        self.assert_upstream_leg_matches(evs, srv)
        # Without the credentials tinyproxy answers 407: the proxy hop, and the client gets a 502.
        r = self.curl(q, srv.port)
        self.assertNotEqual(r.returncode, 0)
        evs = q.conn_closed(1)
        c = self.upstream_connect(evs)
        self.assertEqual((c["hop"], c["proxy_status"]), ("proxy", 407))
        self.assertEqual([e["status"] for e in of(evs, "proxy.error")], [502])
        err = of(evs, "tls.error", leg="upstream")
        self.assertEqual([(e["stage"], e["cause"]) for e in err], [("connect", "upstream_proxy_refused")])
        self.assertIn("407", err[0]["reason"])
        with open(log) as f:
            self.assertEqual(f.read().count(f"CONNECT localhost:{srv.port}"), 2)
        for proxy in (p, q):
            proxy.stop()
            self.assert_no_secret(proxy, "s3cretpw")

    def test_http_refusal_and_unreachable_target_name_the_hop(self):
        srv = self.traced_server()
        dead = dead_port(self)
        tp, log = self.tinyproxy(connect_ports=(srv.port, dead))
        # Explicit mode: the refused port (403 by tinyproxy's ConnectPort), the dead one (tinyproxy's 500).
        p = self.proxy("--upstream-proxy", f"http://127.0.0.1:{tp}", "--upstream-ca", self.pki.ca)
        blocked = srv.port + 1 if srv.port + 1 != dead else srv.port + 2
        cap = Capture(f"{self.dir}/hop.pcapng", [tp]) if shutil.which("dumpcap") else None
        if cap and not cap.ok:
            cap = None
        for port in (blocked, dead):
            r = self.curl(p, port)
            self.assertNotEqual(r.returncode, 0)
        evs = p.conn_closed(2)
        conns = of(evs, "tcp.connect", leg="upstream")
        # The connection to tinyproxy was made and is over: its tcp.close, as the capture shows it.
        closes = of(evs, "tcp.close", leg="upstream")
        self.assertEqual(len(closes), 2, closes)
        if cap:
            cap.stop()
            for c, end in zip(conns, closes):
                lport = int(c["local"].rsplit(":", 1)[1])
                self.assertIn((end["by"], end["how"]), cap.close_answers(lport, lambda src: src != lport), end)
                # Bytes: ours, and tinyproxy's up to our FIN or RST (its page may still be on its way
                # when we close: then those bytes come after, and are not read).
                segs = [x for x in cap.packets(numbers=True) if lport in x[:2]]
                ours_end = next((k for k, x in enumerate(segs) if x[0] == lport and (x[2] or x[3])), len(segs))
                self.assertEqual((end["bytes_out"], end["bytes_in"]),
                                 (sum(x[6] for x in segs if x[0] == lport),
                                  sum(x[6] for x in segs[:ours_end] if x[1] == lport)), segs)
        self.assertEqual([(c["hop"], c["proxy_status"]) for c in conns], [("proxy", 403), ("target", 500)])
        self.assertTrue(conns[0]["error"].startswith("upstream proxy refused CONNECT: 403"), conns[0])
        self.assertEqual([e["cause"] for e in of(evs, "tls.error", leg="upstream")],
                         ["upstream_proxy_refused", "upstream_unreachable"])
        with open(log) as f:
            text = f.read()
        # tinyproxy got both requests (the 403 and the 500 were its answers, read above).
        self.assertIn(f"CONNECT localhost:{blocked} HTTP/1.1", text)
        self.assertIn(f"Could not establish a connection to localhost:{dead}", text)

    @unittest.skipUnless(shutil.which("tshark"), "tshark is not installed (tools/deps.sh --test)")
    def test_pcapng_decrypts_both_legs_through_the_tunnel(self):
        """tshark reads the upstream leg as the CONNECT to tinyproxy, then TLS it decrypts with the
        capture's own key log: the client's GET on both legs."""
        srv = self.traced_server()
        tp, _ = self.tinyproxy()
        pcap = f"{self.dir}/up.pcapng"
        p = self.proxy("--upstream-proxy", f"http://127.0.0.1:{tp}", "--upstream-ca", self.pki.ca, "--pcap", pcap)
        self.assertEqual(self.curl(p, srv.port).returncode, 0)
        p.conn_closed(1)
        p.stop()
        r = run([*tshark_cmd(), "-r", pcap, "-Y", "http.request", "-T", "fields", "-e", "tcp.dstport", "-e",
                 "http.request.method", "-e", "http.request.uri"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = sorted(tuple(line.split("\t")) for line in r.stdout.decode().splitlines())
        self.assertEqual(rows, sorted([(str(p.port), "CONNECT", f"localhost:{srv.port}"),
                                       (str(tp), "CONNECT", f"localhost:{srv.port}"),
                                       (str(p.port), "GET", "/"), (str(tp), "GET", "/")]))

    def test_probe_through_tinyproxy(self):
        srv = self.traced_server()
        tp, log = self.tinyproxy()
        events = f"{self.dir}/probe.events.jsonl"
        r = run([TLSTRACE, "probe", f"localhost:{srv.port}", "--upstream-proxy", f"http://127.0.0.1:{tp}",
                 "--upstream-ca", self.pki.ca, "--events", events])
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        self.check_events_file(events)
        with open(events) as f:
            evs = [json.loads(line) for line in f if line.strip()]
        c = self.upstream_connect(evs, conn=1)  # (then a resumption, docs/probe.md)
        self.assertEqual((c["via"], c["hop"], c["proxy_status"]), (f"http://127.0.0.1:{tp}", "target", 200))
        with open(log) as f:
            self.assertIn(f"CONNECT localhost:{srv.port} HTTP/1.1", f.read())
        # (s_server's trace of the resumption, conn 2, may still sit in its stdout buffer)
        self.assert_upstream_leg_matches(evs, srv, conn=1)

    # ---- SOCKS5 --------------------------------------------------------------------------------

    def test_socks5_through_danted_reverse_mode(self):
        srv = self.traced_server()
        sp, log = self.danted()
        p = self.proxy("--mode", "reverse", "--upstream", f"localhost:{srv.port}", "--upstream-proxy",
                       f"socks5://127.0.0.1:{sp}", "--upstream-ca", self.pki.ca)
        r = run(["openssl", "s_client", "-connect", p.addr, "-servername", "localhost", "-CAfile", p.ca,
                 "-verify_return_error"], input=b"GET / HTTP/1.0\r\n\r\n")
        self.assertIn(b"Verify return code: 0 (ok)", r.stdout)
        evs = p.conn_closed(1)
        c = self.upstream_connect(evs)
        self.assertEqual((c["peer"], c["via"], c["hop"], c["proxy_status"]),
                         (f"127.0.0.1:{sp}", f"socks5://127.0.0.1:{sp}", "target", 0))
        self.assertTrue(c["proxy_reply"].startswith("succeeded, bound 127.0.0.1:"), c)
        with open(log) as f:
            text = f.read()
        # danted's log: "pass(2): tcp/connect [: client proxy -> bound target"; its bound address is ours.
        self.assertRegex(text, rf"tcp/connect \[: .* -> {re.escape(c['proxy_reply'].split('bound ')[1].replace(':', '.'))} "
                               rf"127\.0\.0\.1\.{srv.port}")
        self.assert_upstream_leg_matches(evs, srv)

    def test_server_speaks_first_through_danted(self):
        """A banner that comes with (or right after) the proxy's reply reaches the client whole."""
        class Banner(ThreadedServer):
            def handle(self, c):
                with c:
                    c.sendall(b"SSH-2.0-tlstrace-test\r\n")
                    c.recv(100)  # until the client is done
        srv = Banner()
        self._stops.append(srv.stop)
        sp, _ = self.danted()
        p = self.proxy("--upstream-proxy", f"socks5://127.0.0.1:{sp}")
        with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
            got = send_connect(s, f"127.0.0.1:{srv.port}")
            self.assertTrue(got.startswith(b"HTTP/1.1 200"), got)
            while b"\r\n" not in got.split(b"\r\n\r\n", 1)[1]:
                chunk = s.recv(100)
                if not chunk:
                    break
                got += chunk
            self.assertEqual(got.split(b"\r\n\r\n", 1)[1], b"SSH-2.0-tlstrace-test\r\n")
        evs = p.conn_closed(1)
        self.assertEqual(self.upstream_connect(evs)["hop"], "target")
        plain = of(evs, "conn.plaintext", leg="upstream")
        self.assertEqual([e["first_bytes"] for e in plain], [b"SSH-2.0-tlstrace".hex()])

    def test_socks5_refusal_and_unreachable_target_name_the_hop(self):
        srv = self.traced_server()
        dead = dead_port(self)
        blocked = srv.port + 1 if srv.port + 1 != dead else srv.port + 2
        sp, log = self.danted(block_port=blocked)
        p = self.proxy("--upstream-proxy", f"socks5://127.0.0.1:{sp}", "--upstream-ca", self.pki.ca)
        for port in (blocked, dead):
            self.assertNotEqual(self.curl(p, port).returncode, 0)
        evs = p.conn_closed(2)
        conns = of(evs, "tcp.connect", leg="upstream")
        # RFC 1928 6: REP 2 "not allowed by ruleset" is the proxy's refusal, REP 5 the target's.
        self.assertEqual([(c["hop"], c["proxy_status"]) for c in conns], [("proxy", 2), ("target", 5)])
        self.assertEqual([c["proxy_reply"] for c in conns],
                         ["REP 2 connection not allowed by ruleset", "REP 5 connection refused"])
        self.assertEqual([e["status"] for e in of(evs, "proxy.error")], [502, 502])
        # The TCP connection to danted was made both times: it, not the target, is tcp.connect's.
        self.assertEqual([(c["peer"], c["target"]) for c in conns],
                         [(f"127.0.0.1:{sp}", f"localhost:{port}") for port in (blocked, dead)])
        self.assertTrue(all(c["connect_ms"] >= 0 and round(c["connect_ms"], 3) == c["connect_ms"] for c in conns), conns)
        with open(log) as f:
            text = f.read()
        # danted logs each client as address.port: our end of each of those connections.
        for c in conns:
            self.assertIn(c["local"].replace(":", "."), text)
        # danted's words: its rule blocked the target, named as we sent it (unresolved).
        self.assertRegex(text, rf"block\(\d+\): tcp/connect .* localhost\.{blocked}\n")
        self.assertRegex(text, rf"127\.0\.0\.1\.{dead}.*Connection refused")

    def test_socks5_front_end_passes_the_upstream_socks_reply_on(self):
        """A SOCKS5 client of ours, through danted: danted's REP about the target reaches it
        (RFC 1928 section 6); danted's own refusal is a general failure, not the target's."""
        srv = self.traced_server()
        dead = dead_port(self)
        blocked = srv.port + 1 if srv.port + 1 != dead else srv.port + 2
        sp, log = self.danted(block_port=blocked)
        p = self.proxy("--mode", "socks5", "--upstream-proxy", f"socks5://127.0.0.1:{sp}", "--upstream-ca", self.pki.ca)
        reps = []
        for port in (dead, blocked):
            with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
                s.sendall(b"\x05\x01\x00")
                self.assertEqual(s.recv(2), b"\x05\x00")
                name = b"localhost"
                s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + port.to_bytes(2, "big"))
                reply = b""
                for _ in range(20):  # VER REP RSV ATYP(1) BND.ADDR(4) BND.PORT(2)
                    chunk = s.recv(10 - len(reply))
                    reply += chunk
                    if not chunk or len(reply) == 10:
                        break
                self.assertEqual(len(reply), 10, reply)
                reps.append(reply[1])
        evs = p.conn_closed(2)
        conns = of(evs, "tcp.connect", leg="upstream")
        self.assertEqual([(c["hop"], c["proxy_status"]) for c in conns], [("target", 5), ("proxy", 2)])
        self.assertEqual(reps, [5, 1])
        self.assertEqual([r["cause"] for r in of(evs, "conn.refused")], ["connection_refused", "connect_failed"])

    def test_socks5_username_password_through_microsocks(self):
        srv = self.traced_server()
        sp, ms = self.microsocks("alice", "s3cretpw")
        p = self.proxy("--upstream-proxy", f"socks5://alice:s3cretpw@127.0.0.1:{sp}", "--upstream-ca", self.pki.ca)
        q = self.proxy("--upstream-proxy", f"socks5://alice:wrong@127.0.0.1:{sp}", "--upstream-ca", self.pki.ca)
        r = self.curl(p, srv.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        evs = p.conn_closed(1)
        self.assertEqual(self.upstream_connect(evs)["hop"], "target")
        self.assert_upstream_leg_matches(evs, srv)
        # microsocks' log names the target as we sent it: the name, for the proxy to resolve.
        self.assertIn(f"connected to localhost:{srv.port}", ms.output())
        self.assertNotEqual(self.curl(q, srv.port).returncode, 0)
        evs = q.conn_closed(1)
        c = self.upstream_connect(evs)
        self.assertEqual(c["hop"], "proxy")
        self.assertIn("RFC 1929", c["error"])
        self.assertEqual([e["cause"] for e in of(evs, "tls.error", leg="upstream")], ["upstream_proxy_refused"])
        for proxy in (p, q):
            proxy.stop()
            self.assert_no_secret(proxy, "s3cretpw")

    # ---- exclusions, a dead proxy ----------------------------------------------------------------

    def test_excluded_target_goes_direct_config_file(self):
        srv = self.traced_server()
        other = self.traced_server()
        tp, log = self.tinyproxy()
        conf = f"{self.dir}/up.toml"
        with open(conf, "w") as f:
            f.write(f'upstream-proxy = "http://127.0.0.1:{tp}"\n'
                    f'upstream-proxy-exclude = ["example.com", "localhost:{srv.port}"]\n')
        p = self.proxy("--config", conf, "--upstream-ca", self.pki.ca)
        self.assertEqual(self.curl(p, srv.port).returncode, 0)
        self.assertEqual(self.curl(p, other.port).returncode, 0)
        evs = p.conn_closed(2)
        conns = {c["target"]: c for c in of(evs, "tcp.connect", leg="upstream")}
        direct, proxied = conns[f"localhost:{srv.port}"], conns[f"localhost:{other.port}"]
        self.assertNotIn("via", direct)
        self.assertEqual(direct["peer"], f"127.0.0.1:{srv.port}")
        self.assertEqual(proxied["via"], f"http://127.0.0.1:{tp}")
        with open(log) as f:
            text = f.read()
        self.assertNotIn(f"localhost:{srv.port}", text)  # the proxy never saw the excluded target
        self.assertIn(f"CONNECT localhost:{other.port}", text)

    def test_dead_proxy_port_is_the_proxy_hop(self):
        srv = self.traced_server()
        dead = dead_port(self)
        p = self.proxy("--mode", "reverse", "--upstream", f"localhost:{srv.port}", "--upstream-proxy",
                       f"socks5://127.0.0.1:{dead}", "--upstream-ca", self.pki.ca)
        r = run(["openssl", "s_client", "-connect", p.addr, "-servername", "localhost"], input=b"")
        self.assertIn(b"handshake failure", r.stdout + r.stderr)
        evs = p.conn_closed(1)
        c = self.upstream_connect(evs)
        self.assertEqual(c["hop"], "proxy")
        self.assertNotIn("proxy_status", c)
        self.assertEqual((c["peer"], c["target"]), (f"127.0.0.1:{dead}", f"localhost:{srv.port}"))
        self.assertNotIn("local", c)
        self.assertIn("Connection refused", c["error"])
        self.assertIn(f"socks5://127.0.0.1:{dead}", c["error"])
        self.assertEqual([e["cause"] for e in of(evs, "tls.error", leg="upstream")], ["upstream_proxy_failed"])
        self.assertEqual([(e["cause"], e["origin"]) for e in of(evs, "tls.error", leg="client")],
                         [("upstream_proxy_failed", "upstream")])


if __name__ == "__main__":
    unittest.main()
