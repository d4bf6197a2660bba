"""Exposure ([8] item 2): who may use the proxy and what it may be made to reach.

Without a namespace: a non-loopback --listen needs --allow-remote, the warning for --allow-remote
without --proxy-auth, the Basic scheme in any case. With real non-loopback clients (10.x, CGNAT,
ULA) and a server beyond the host: exposure_ns.py, run here inside `unshare -rnm`."""
import base64
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import unittest

from harness import DEADLINE, TLSTRACE, Proc, ProxyTestCase, of, read_all, run

HERE = os.path.dirname(os.path.abspath(__file__))


def namespaces_unavailable():
    """Why `unshare -rnm` cannot give the tests a network of their own, or None."""
    if not shutil.which("unshare") or not shutil.which("ip") or not shutil.which("nsenter"):
        return "unshare, nsenter or ip (util-linux, iproute2) not installed"
    r = subprocess.run(["unshare", "-rnm", "sh", "-c", "ip link set lo up && ip link add v0 type veth peer name v1"],
                       capture_output=True, timeout=DEADLINE)
    if r.returncode != 0:
        return "cannot create a network namespace with a veth pair: " + r.stderr.decode(errors="replace").strip()
    return None


class ListenAndAuth(ProxyTestCase):
    def test_non_loopback_listen_is_refused_without_allow_remote(self):
        for listen in ("0.0.0.0:0", "[::]:0"):
            r = run([TLSTRACE, "proxy", "-l", listen], env=dict(os.environ, TLSTRACE_HOME=f"{self.dir}/home"))
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(b"is not a loopback address", r.stderr)
            self.assertIn(b"--allow-remote", r.stderr)
        # With it, the proxy starts and says loudly that anyone can relay through it.
        p = self.proxy("-l", "0.0.0.0:0", "--allow-remote")
        self.assertIn("--allow-remote without --proxy-auth: ANYONE who can reach 0.0.0.0:", p.proc.output())
        # Even under -q, which leaves only warnings and errors.
        quiet = Proc([TLSTRACE, "proxy", "-q", "-l", "0.0.0.0:0", "--allow-remote"], f"{self.dir}/quiet.log",
                     env=dict(os.environ, TLSTRACE_HOME=f"{self.dir}/home"))
        self._stops.append(quiet.stop)
        end = time.time() + DEADLINE
        while time.time() < end and "without --proxy-auth" not in quiet.output() and quiet.p.poll() is None:
            time.sleep(0.05)
        self.assertIn("--allow-remote without --proxy-auth", quiet.output())
        q = self.proxy("-l", "0.0.0.0:0", "--allow-remote", "--proxy-auth", "alice:s3cret")
        self.assertNotIn("without --proxy-auth", q.proc.output())
        # A loopback client of a proxy bound to all addresses is served as before.
        srv = self.s_server()
        with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
            s.sendall(f"CONNECT localhost:{srv.port} HTTP/1.1\r\n\r\n".encode())
            self.assertTrue(s.recv(1024).startswith(b"HTTP/1.1 200"))
        p.conn_closed()

    def test_basic_scheme_is_case_insensitive(self):
        """RFC 7235 section 2.1 / RFC 7617: "bAsIc" is the Basic scheme; the credentials are not
        case-insensitive. Checked by the origin's answer through the tunnel."""
        srv = self.s_server()
        p = self.proxy("--proxy-auth", "alice:s3cret", "--upstream-ca", self.pki.ca)
        cred = base64.b64encode(b"alice:s3cret").decode()
        ctx = ssl.create_default_context(cafile=p.ca)
        for header in (f"proxy-authorization: bAsIc {cred}", f"Proxy-Authorization: BASIC  {cred}"):
            with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
                s.sendall(f"CONNECT localhost:{srv.port} HTTP/1.1\r\n{header}\r\n\r\n".encode())
                self.assertTrue(s.recv(1024).startswith(b"HTTP/1.1 200"), header)
                with ctx.wrap_socket(s, server_hostname="localhost") as t:
                    t.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    self.assertIn(b"200 ok", read_all(t))
        with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
            s.sendall(f"CONNECT localhost:{srv.port} HTTP/1.1\r\nProxy-Authorization: basic {cred.lower()}\r\n\r\n"
                      .encode())
            self.assertTrue(read_all(s).startswith(b"HTTP/1.1 407"))
        evs = p.conn_closed(3)
        self.assertEqual([e["status"] for e in of(evs, "proxy.error")], [407])


class NonLoopbackClients(unittest.TestCase):
    def test_in_a_network_namespace(self):
        why = namespaces_unavailable()
        if why:
            self.skipTest(why)
        env = dict(os.environ, TLSTRACE_EXPOSURE_NETNS="1", TLSTRACE_BIN=os.path.abspath(TLSTRACE))
        r = subprocess.run(["unshare", "-rnm", sys.executable, "-m", "unittest", "-v", "exposure_ns"], cwd=HERE,
                           env=env, capture_output=True, timeout=600)
        out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        print(out, file=sys.stderr)
        self.assertEqual(r.returncode, 0, out[-6000:])
        self.assertNotIn("skipped", out.splitlines()[-1])  # every inner test ran


if __name__ == "__main__":
    unittest.main()
