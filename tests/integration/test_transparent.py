"""Transparent mode in network namespaces the test creates and deletes: a client namespace, a router
namespace running tlstrace behind an nftables REDIRECT rule (or iptables when nft is missing), and a
server namespace, joined by two veth pairs. Nothing outside the namespaces is touched. The client
reaches the server's address; the verdicts come from the peers and from outside tlstrace: curl's
own verification of the forged leaf (--cacert our CA) and what the server served, s_server's log
(the SNI it received), tshark decrypting both legs of the proxy's capture with its key log."""
import os
import secrets
import shutil
import subprocess
import time
import unittest

import netns
from harness import DEADLINE, ProxyTestCase, of, run, tshark_cmd

CLIENT, ROUTER, SERVER = "10.77.1.2", "10.77.1.1", "10.77.2.2"
GW_S = "10.77.2.1"


def why_no_netns():
    if not shutil.which("nft") and not shutil.which("iptables"):
        return "neither nft (nftables) nor iptables installed"
    return netns.why_no_netns()


class Namespaces(netns.ThreeNamespaces):
    """Three namespaces (client, router, server) with two veth pairs; delete() removes them all."""

    def __init__(self):
        super().__init__((CLIENT, ROUTER, GW_S, SERVER), ("rc", "cr", "rs", "sr"), routed=True)
        self.r = self.m

    def redirect(self, dport, to_port):
        """The router sends the client's TCP traffic for `dport` to the proxy's port."""
        if shutil.which("nft"):
            rules = (f"table ip tlstrace_t {{\n chain pre {{\n  type nat hook prerouting priority dstnat;\n"
                     f"  iifname \"rc\" tcp dport {dport} redirect to :{to_port}\n }}\n}}\n")
            r = run(self.exec(self.r, "nft", "-f", "-"), input=rules.encode())
            if r.returncode != 0:
                raise RuntimeError("nft: " + r.stderr.decode())
        else:
            self.sh(self.exec(self.r, "iptables", "-t", "nat", "-A", "PREROUTING", "-i", "rc", "-p", "tcp",
                              "--dport", str(dport), "-j", "REDIRECT", "--to-ports", str(to_port)))

    def tproxy(self, dport, to_port):
        """docs/transparent.md's TPROXY recipe (nftables) in the router: the client's TCP traffic for
        `dport` is delivered, destination untouched, to the proxy's transparent listener."""
        self.sh(self.exec(self.r, "ip", "rule", "add", "fwmark", "1", "lookup", "100"))
        self.sh(self.exec(self.r, "ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"))
        rules = (f"table ip tlstrace {{\n chain pre {{\n  type filter hook prerouting priority mangle;\n"
                 f"  iifname \"rc\" tcp dport {dport} tproxy to :{to_port} meta mark set 1 accept\n }}\n}}\n")
        r = run(self.exec(self.r, "nft", "-f", "-"), input=rules.encode())
        if r.returncode != 0:
            raise RuntimeError("nft: " + r.stderr.decode())


class TransparentMode(ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        why = why_no_netns()
        if why:
            raise unittest.SkipTest(why)
        super().setUpClass()
        d = cls.tmp.name
        # A server certificate for a name and the server's address, from the upstream test CA.
        cls.key, cls.cert = f"{d}/ns-server.key", f"{d}/ns-server.pem"
        ext = f"{d}/ns-server.ext"
        with open(ext, "w") as f:
            f.write(f"subjectAltName=DNS:server.test,IP:{SERVER}\nextendedKeyUsage=serverAuth\n")
        for args in (["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", cls.key,
                      "-out", f"{d}/ns-server.csr", "-subj", "/CN=server.test"],
                     ["x509", "-req", "-in", f"{d}/ns-server.csr", "-CA", cls.pki.ca, "-CAkey", cls.pki.ca_key,
                      "-CAcreateserial", "-out", cls.cert, "-days", "30", "-extfile", ext]):
            r = run(["openssl", *args])
            assert r.returncode == 0, r.stderr

    def setUp(self):
        super().setUp()
        self.ns = Namespaces()
        self._stops.append(self.ns.delete)  # runs last (the stops run in reverse)
        # s_server -WWW serves files from its directory: each path a marker of its own.
        self.www = f"{self.dir}/www"
        os.makedirs(self.www)
        self.markers = {}
        for name in ("sni-path", "ip-path", "after-loop"):
            self.markers[name] = f"{name}-{secrets.token_hex(8)}"
            with open(f"{self.www}/{name}", "w") as f:
                f.write(self.markers[name])
        log = open(f"{self.dir}/s_server.log", "wb")
        srv = subprocess.Popen(Namespaces.exec(self.ns.s, "openssl", "s_server", "-accept", f"{SERVER}:443",
                                               "-cert", self.cert, "-key", self.key, "-WWW", "-debug", "-servername", "server.test", "-cert2", self.cert, "-key2", self.key),
                               stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.www)
        self._stops.append(lambda: (srv.terminate(), srv.wait(timeout=DEADLINE), log.close()))
        self.wait_listening(self.ns.s, 443)

    def wait_listening(self, ns, port):
        end = time.time() + DEADLINE
        while time.time() < end:
            if f":{port} " in run(Namespaces.exec(ns, "ss", "-Htln")).stdout.decode():
                return
            time.sleep(0.05)
        raise TimeoutError(f"nothing listens on port {port} in {ns}")

    def start_proxy(self, *extra, tproxy=False):
        pcap = f"{self.dir}/transparent.pcapng"
        p = self.proxy("-l", "0.0.0.0:0", "--mode", "transparent", "--allow-remote", "--upstream-ca", self.pki.ca,
                       "--pcap", pcap, *extra, prefix=Namespaces.exec(self.ns.r))
        if tproxy:
            self.ns.tproxy(443, p.port)
        else:
            self.ns.redirect(443, p.port)
        return p, pcap

    def client(self, *cmd):
        return run(Namespaces.exec(self.ns.c, *cmd), timeout=DEADLINE)

    def test_redirected_client_is_intercepted_with_its_sni(self):
        p, pcap = self.start_proxy()
        # The client believes it talks to the server's address; curl verifies the forged leaf
        # against our CA for the name it asked for.
        r = self.client("curl", "-sS", "--max-time", "10", "--cacert", p.ca, "--resolve", f"server.test:443:{SERVER}",
                        "https://server.test/sni-path")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), self.markers["sni-path"])  # what the server served
        # The IP literal: no SNI; the forged leaf names the address (curl checks its IP SAN).
        r = self.client("curl", "-sS", "--max-time", "10", "--cacert", p.ca, f"https://{SERVER}/ip-path")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), self.markers["ip-path"])
        evs = p.conn_closed(2)
        opens = of(evs, "conn.open")
        self.assertEqual([o["mode"] for o in opens], ["transparent", "transparent"])
        self.assertEqual({o["target"] for o in opens}, {f"{SERVER}:443"})
        self.assertTrue(all(o["client"].startswith(CLIENT + ":") for o in opens))
        est = of(evs, "tls.established", leg="upstream")
        self.assertEqual([e.get("sni") for e in est], ["server.test", None])  # the client's SNI went upstream
        with open(f"{self.dir}/s_server.log", "rb") as f:  # the server's own word on the SNI it got
            self.assertIn(b'Hostname in TLS extension: "server.test"', f.read())
        trust = of(evs, "tls.trust", leg="upstream")
        self.assertEqual([t.get("verified") for t in trust], [True, True])
        self.assertEqual([t["hostname"] for t in trust], ["server.test", SERVER])  # SNI, else the original address
        self.assertEqual(p.stop(), 0)
        # tshark decrypts both legs of both connections with the key log embedded in the capture.
        r = run([*tshark_cmd(), "-r", pcap, "-Y", "http.request", "-T", "fields", "-e", "frame.interface_name",
                 "-e", "http.request.uri"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        seen = {tuple(line.split("\t")) for line in r.stdout.decode().splitlines() if line.strip()}
        for uri in ("/sni-path", "/ip-path"):
            self.assertIn(("tlstrace-client-leg", uri), seen)
            self.assertIn(("tlstrace-upstream-leg", uri), seen)
        # And the separate key log decrypts the capture too, without the embedded secrets.
        stripped = f"{self.dir}/stripped.pcapng"
        r = run(["editcap", "--discard-all-secrets", pcap, stripped], timeout=60)
        if r.returncode == 0:
            r = run([*tshark_cmd(), "-r", stripped, "-o", f"tls.keylog_file:{p.keylog}", "-Y", "http.request",
                     "-T", "fields", "-e", "http.request.uri"], timeout=60)
            self.assertEqual(sorted(r.stdout.decode().split()), ["/ip-path", "/ip-path", "/sni-path", "/sni-path"])

    @unittest.skipUnless(shutil.which("nft"), "the TPROXY recipe tested is the nftables one")
    def test_tproxy_client_is_intercepted(self):
        # TPROXY leaves the destination alone: the proxy's accepted socket is bound to the server's
        # address, which getsockname gives as the original destination (no conntrack NAT entry).
        p, pcap = self.start_proxy(tproxy=True)
        self.assertNotIn("IP_TRANSPARENT", p.proc.output())  # the listener could be made transparent
        r = self.client("curl", "-sS", "--max-time", "10", "--cacert", p.ca, "--resolve", f"server.test:443:{SERVER}",
                        "https://server.test/sni-path")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), self.markers["sni-path"])  # what the server served
        evs = p.conn_closed(1)
        opens = of(evs, "conn.open")
        self.assertEqual([(o["mode"], o["target"]) for o in opens], [("transparent", f"{SERVER}:443")])
        self.assertTrue(opens[0]["client"].startswith(CLIENT + ":"))
        # The client leg's local address is the server's: the proxy answered in its name.
        syn = of(evs, "tcp.syn", leg="client")
        self.assertEqual([(e["src"].rsplit(":", 1)[0], e["dst"]) for e in syn], [(CLIENT, f"{SERVER}:443")])
        with open(f"{self.dir}/s_server.log", "rb") as f:
            self.assertIn(b'Hostname in TLS extension: "server.test"', f.read())
        self.assertEqual(p.stop(), 0)
        r = run([*tshark_cmd(), "-r", pcap, "-Y", "http.request", "-T", "fields", "-e", "frame.interface_name",
                 "-e", "http.request.uri"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        seen = {tuple(line.split("\t")) for line in r.stdout.decode().splitlines() if line.strip()}
        self.assertIn(("tlstrace-client-leg", "/sni-path"), seen)
        self.assertIn(("tlstrace-upstream-leg", "/sni-path"), seen)

    def test_direct_connection_to_the_proxy_is_refused_as_a_loop(self):
        p, _ = self.start_proxy()
        # Straight to the proxy's own address and port: no redirect happened, the original
        # destination is the proxy itself; it must refuse instead of connecting to itself.
        r = self.client("curl", "-sS", "--max-time", "5", "--cacert", p.ca, f"https://{ROUTER}:{p.port}/")
        self.assertNotEqual(r.returncode, 0)
        evs = p.wait_events(lambda e: of(e, "conn.refused"))
        refused = of(evs, "conn.refused")
        self.assertEqual(len(refused), 1)
        self.assertEqual(refused[0]["cause"], "loop")
        self.assertTrue(refused[0]["client"].startswith(CLIENT + ":"))
        self.assertEqual(of(evs, "tcp.connect"), [])  # never connected anywhere
        # Nothing else is disturbed: the next redirected client goes through.
        r = self.client("curl", "-sS", "--max-time", "10", "--cacert", p.ca, "--resolve",
                        f"server.test:443:{SERVER}", "https://server.test/after-loop")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), self.markers["after-loop"])
        p.conn_closed(1)


if __name__ == "__main__":
    unittest.main()
