"""Export for diagnosis: the pcapng that Wireshark decrypts as is, and `tlstrace convert`."""
import os
import signal
import socket
import stat
import subprocess
import threading
import http.server

from harness import DEADLINE, ProxyTestCase, of, run, tshark_cmd


class Export(ProxyTestCase):
    def curl(self, p, url, *extra):
        r = run(["curl", "-sS", "--max-time", "10", "--http1.1", "-x", f"http://{p.addr}", "--cacert", p.ca,
                 *extra, url])
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def plain_http_server(self):
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(b"plain")

            def log_message(self, *a):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self._stops.append(lambda: (srv.shutdown(), srv.server_close()))
        return srv.server_port

    def tshark(self, path, *args):
        r = run([*tshark_cmd(), "-r", path, *args], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.decode()

    def test_pcap_decrypts_both_legs_with_no_options(self):
        srv = self.s_server()
        plain = self.plain_http_server()
        pcap = f"{self.dir}/both.pcapng"
        p = self.proxy("--insecure", "--pcap", pcap)
        self.curl(p, f"https://localhost:{srv.port}/tls13")
        self.curl(p, f"https://localhost:{srv.port}/tls12", "--tls-max", "1.2")
        self.curl(p, f"http://127.0.0.1:{plain}/plain")
        p.conn_closed(3)
        self.assertEqual(p.stop(), 0)
        self.assertEqual(stat.S_IMODE(os.stat(pcap).st_mode), 0o600)
        info = run(["capinfos", pcap])
        self.assertEqual(info.returncode, 0, info.stderr)
        self.assertIn(b"pcapng", info.stdout)
        rows = self.tshark(pcap, "-Y", "http.request", "-T", "fields", "-e", "frame.interface_name",
                           "-e", "http.request.uri").split("\n")
        seen = {tuple(r.split("\t")) for r in rows if r.strip()}
        for uri in ("/tls13", "/tls12"):
            self.assertIn(("tlstrace-client-leg", uri), seen)    # decrypted from the client leg
            self.assertIn(("tlstrace-upstream-leg", uri), seen)  # and from the upstream leg
        # The plain request: absolute-form on the client leg, origin-form upstream.
        self.assertIn(("tlstrace-upstream-leg", "/plain"), seen)
        self.assertTrue(any(u.endswith("/plain") for i, u in seen if i == "tlstrace-client-leg"))
        versions = self.tshark(pcap, "-Y", "tls.handshake.type == 2", "-T", "fields",
                               "-e", "tls.handshake.extensions.supported_version")
        self.assertIn("0x0304", versions)
        # Every TCP stream starts with a three-way handshake and ends with a FIN.
        syns = self.tshark(pcap, "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0", "-T", "fields", "-e", "tcp.stream")
        fins = self.tshark(pcap, "-Y", "tcp.flags.fin == 1", "-T", "fields", "-e", "tcp.stream")
        self.assertEqual(len(syns.split()), 6)  # 3 connections x 2 legs
        self.assertEqual(set(syns.split()), set(fins.split()))
        problems = self.tshark(pcap, "-Y", "tcp.analysis.flags && !tcp.analysis.window_update")
        self.assertEqual(problems.strip(), "", "sequence numbers must be consistent")

    def test_killed_proxy_leaves_a_readable_capture(self):
        srv = self.s_server()
        pcap = f"{self.dir}/killed.pcapng"
        p = self.proxy("--insecure", "--pcap", pcap)
        self.curl(p, f"https://localhost:{srv.port}/before-kill")
        p.conn_closed()
        self.assertEqual(p.kill(), -signal.SIGKILL)
        info = run(["capinfos", pcap])
        self.assertEqual(info.returncode, 0, info.stderr)
        out = self.tshark(pcap, "-Y", "http.request.method == \"GET\"", "-T", "fields", "-e", "http.request.uri")
        if out.split() != ["/before-kill", "/before-kill"]:
            keep = os.environ.get("TLSTRACE_KEEP_FAILED")
            if keep:
                os.makedirs(keep, exist_ok=True)
                subprocess.run(["cp", pcap, p.events, keep])
            frames = self.tshark(pcap, "-T", "fields", "-e", "frame.number", "-e", "frame.interface_name",
                                 "-e", "tcp.stream", "-e", "tcp.len", "-e", "_ws.col.Protocol", "-e", "_ws.col.Info")
            self.fail(f"both legs' GET expected, tshark saw {out.split()}; frames:\n{frames}")

    def test_convert_reproduces_the_live_trace_and_the_key_log(self):
        srv = self.s_server()
        p = self.proxy("--insecure", "--trace", "all", "--log-secrets")
        self.curl(p, f"https://localhost:{srv.port}/a")
        self.curl(p, f"https://localhost:{srv.port}/b", "--tls-max", "1.2")
        p.conn_closed(2)
        self.assertEqual(p.stop(), 0)
        from harness import TLSTRACE
        text = run([TLSTRACE, "convert", p.events, "--to", "text"])
        self.assertEqual(text.returncode, 0, text.stderr)
        with open(p.trace, "rb") as f:
            self.assertEqual(text.stdout, f.read())
        keys = run([TLSTRACE, "convert", p.events, "--to", "keylog"])
        self.assertEqual(keys.returncode, 0, keys.stderr)
        with open(p.keylog) as f:
            self.assertEqual(set(keys.stdout.decode().splitlines()), {l.strip() for l in f if l.strip()})

    def test_convert_keylog_needs_recorded_secrets(self):
        srv = self.s_server()
        p = self.proxy("--insecure", "--trace", "all")
        self.curl(p, f"https://localhost:{srv.port}/")
        p.conn_closed()
        from harness import TLSTRACE
        r = run([TLSTRACE, "convert", p.events, "--to", "keylog"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"--log-secrets", r.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
