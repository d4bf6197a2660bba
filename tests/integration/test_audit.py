"""--audit-clients: each new connection of a client gets the next broken certificate (or offer).
Whether the client accepted it is checked against the client's own view of each request (curl's
exit status, Python's exception, Java's), and clients that validate properly must refuse every
broken certificate while ones that do not (curl -k, Python without verification) accept them."""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import unittest

from harness import DEADLINE, TLSTRACE, ProxyTestCase, Tlstrace, of, read_all, run
from test_policy import validate_junit, validate_sarif

CERT_SCENARIOS = ["self-signed", "unknown-ca", "wrong-host", "expired", "not-yet-valid", "rsa-1024",
                  "sha1-signature", "no-server-auth", "intermediate-not-ca"]
ALL = CERT_SCENARIOS + ["tls1.0-only", "weak-ciphers"]


def py_get(port, ca, verify):
    ctx = ssl.create_default_context(cafile=ca)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"GET / HTTP/1.0\r\n\r\n")
                return b"200 ok" in read_all(t)
    except (ssl.SSLError, OSError):
        return False


JAVA = """
import java.net.*; import java.io.*; import javax.net.ssl.*;
public class Audit {
  public static void main(String[] a) throws Exception {
    for (int i = 0; i < Integer.parseInt(a[1]); i++) {
      try {
        HttpsURLConnection c = (HttpsURLConnection) new URL(a[0]).openConnection();
        c.setConnectTimeout(10000); c.setReadTimeout(10000);
        try (InputStream in = c.getInputStream()) { in.readAllBytes(); }
        System.out.println("ok");
      } catch (Exception e) { System.out.println("fail " + e); }
    }
  }
}
"""


class ClientAudit(ProxyTestCase):
    def audit(self, client, n=len(ALL) + 1, scenarios=None):
        """A reverse proxy auditing every client; `client(port, ca)` makes n requests and returns
        whether each succeeded in its own view. Returns (rc, {scenario: (verdict, client_ok)}, proxy)."""
        srv = self.s_server()
        p = Tlstrace(self.dir, "-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca,
                     "--audit-clients", *([scenarios] if scenarios else []), "--junit", f"{self.dir}/audit.xml",
                     "--sarif", f"{self.dir}/audit.sarif", name=f"tlstrace{len(self.proxies)}")
        self.proxies.append(p)
        try:
            oks = client(p.port, p.ca, n)
            p.conn_closed(n)
        finally:
            rc = p.stop()
        evs = p.read_events()
        results = of(evs, "audit.result")
        # One connection per request, in order: the i-th result is the i-th request's.
        by_conn = {e["conn"]: e for e in results}
        conns = [e["conn"] for e in of(evs, "conn.open")]
        seen = {}
        for i, conn in enumerate(conns):
            if conn in by_conn:
                seen[by_conn[conn]["scenario"]] = (by_conn[conn]["verdict"], oks[i])
        for scenario, (verdict, ok) in seen.items():
            self.assertEqual(verdict == "accepted", ok, f"{scenario}: tlstrace says {verdict}, the client ok={ok}")
        self.assertEqual(list(seen), (scenarios or ",".join(ALL)).split(","))
        self.assertTrue(oks[-1], "after the scenarios the client gets the normal forged leaf")
        doc = validate_junit(self, f"{self.dir}/audit.xml")
        accepted = [s for s, (v, _) in seen.items() if v == "accepted"]
        self.assertEqual(len(doc.findall(".//testcase/failure")), len(accepted))
        log = validate_sarif(self, f"{self.dir}/audit.sarif")
        self.assertEqual(sorted(r["ruleId"] for r in log["runs"][0]["results"]), sorted("audit." + s for s in accepted))
        self.assertEqual(rc, 1 if accepted else 0, p.proc.output())
        return seen, p

    def curl(self, *flags):
        def client(port, ca, n):
            oks = []
            for _ in range(n):
                r = run(["curl", "-s", "-o", "/dev/null", "--max-time", "10", *flags, "--cacert", ca,
                         "--resolve", f"localhost:{port}:127.0.0.1", f"https://localhost:{port}/"])
                oks.append(r.returncode == 0)
            return oks
        return client

    def test_validating_clients_refuse_every_broken_certificate(self):
        seen, p = self.audit(self.curl())
        for s in CERT_SCENARIOS:
            self.assertEqual(seen[s][0], "refused", s)
        self.assertIn("AUDIT self-signed: 127.0.0.1:", p.proc.output())
        seen, _ = self.audit(lambda port, ca, n: [py_get(port, ca, True) for _ in range(n)])
        for s in CERT_SCENARIOS:
            self.assertEqual(seen[s][0], "refused", s)

    def test_clients_that_do_not_verify_are_reported_as_accepting(self):
        seen, p = self.audit(self.curl("-k"))
        for s in CERT_SCENARIOS:
            self.assertEqual(seen[s][0], "accepted", s)
        self.assertIn("ACCEPTED self-signed by 127.0.0.1:", p.proc.output())
        seen, _ = self.audit(lambda port, ca, n: [py_get(port, ca, False) for _ in range(n)],
                             scenarios="self-signed,expired,wrong-host")
        self.assertEqual({s: v for s, (v, _) in seen.items()},
                         {"self-signed": "accepted", "expired": "accepted", "wrong-host": "accepted"})

    @unittest.skipUnless(shutil.which("java") and shutil.which("keytool"), "needs Java")
    def test_java_with_a_trust_store(self):
        d = self.dir
        with open(f"{d}/Audit.java", "w") as f:
            f.write(JAVA)

        def client(port, ca, n):
            r = run(["keytool", "-importcert", "-noprompt", "-alias", "tlstrace", "-file", ca, "-keystore",
                     f"{d}/trust.p12", "-storetype", "PKCS12", "-storepass", "changeit"], timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            r = subprocess.run(["java", f"-Djavax.net.ssl.trustStore={d}/trust.p12",
                                "-Djavax.net.ssl.trustStorePassword=changeit", "-Dhttp.keepAlive=false",
                                f"{d}/Audit.java", f"https://localhost:{port}/", str(n)],
                               capture_output=True, timeout=180)
            lines = r.stdout.decode().split("\n")
            return [line == "ok" for line in lines[:n]]
        seen, _ = self.audit(client, scenarios=",".join(CERT_SCENARIOS))
        # The JDK's own policy decides a 1024-bit RSA key and a SHA-1 signature:
        # jdk.certpath.disabledAlgorithms in its java.security ("RSA keySize < 1024" in Java 17
        # lets 1024 through).
        java_home = os.path.dirname(os.path.dirname(os.path.realpath(shutil.which("java"))))
        with open(os.path.join(java_home, "conf", "security", "java.security")) as f:
            text = f.read().replace("\\\n", "")
        disabled = re.search(r"^jdk\.certpath\.disabledAlgorithms=(.*)$", text, re.M).group(1)
        limit = int(re.search(r"RSA keySize < (\d+)", disabled).group(1))
        # "SHA1 jdkCA & usage TLSServer": SHA-1 is refused only under the JDK's own root CAs, not
        # under a trust store of one's own (the tlstrace CA here); a bare "SHA1" refuses it always.
        sha1_everywhere = any(item.strip() == "SHA1" for item in disabled.split(","))
        accepted_by_policy = ({"rsa-1024"} if limit <= 1024 else set()) | (set() if sha1_everywhere
                                                                             else {"sha1-signature"})
        for s in CERT_SCENARIOS:
            self.assertEqual(seen[s][0], "accepted" if s in accepted_by_policy else "refused", s)

    def test_unknown_scenario_is_a_usage_error(self):
        r = run([TLSTRACE, "proxy", "-l", "127.0.0.1:0", "--audit-clients",
                 "self-signed,nope"], env=dict(os.environ, TLSTRACE_HOME=f"{self.dir}/home"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown audit scenario 'nope'", r.stderr.decode())


if __name__ == "__main__":
    unittest.main()
