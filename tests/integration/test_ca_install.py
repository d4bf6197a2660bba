"""The CA everywhere (issue 11 item 7): `tlstrace ca export --format pem|der|p12` read back by
`openssl` and `keytool`; each `tlstrace ca install --print STORE` recipe run as printed and then
used by that store's own client through the proxy (Python requests, Node.js https, Java
HttpsURLConnection, NSS's tstclnt, and the Debian system store inside a mount namespace with
tmpfs over the store, so the real one is untouched), each after a control showing the same
client refusing the proxy without the recipe; and the CA page served to a plain GET to the proxy."""
import os
import shutil
import subprocess
import unittest
import urllib.request

from harness import DEADLINE, TLSTRACE, ProxyTestCase, of, run


def tlstrace_ca(home, *args):
    env = dict(os.environ, TLSTRACE_HOME=home)
    r = subprocess.run([TLSTRACE, "ca", *args], capture_output=True, timeout=DEADLINE, env=env)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def x509_fingerprint(path, der=False):
    r = run(["openssl", "x509", *(["-inform", "DER"] if der else []), "-in", path, "-noout", "-fingerprint",
             "-sha256"])
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode().split("=", 1)[1].strip()


def sh(script, env=None, cwd=None):
    return subprocess.run(["sh", "-ec", script], capture_output=True, timeout=DEADLINE * 2, env=env, cwd=cwd)


JAVA_CLIENT = """
import java.net.*;
import java.io.*;
import javax.net.ssl.HttpsURLConnection;

public class Get {
    public static void main(String[] a) throws Exception {
        Proxy proxy = new Proxy(Proxy.Type.HTTP, new InetSocketAddress("127.0.0.1", Integer.parseInt(a[0])));
        HttpsURLConnection c = (HttpsURLConnection) new URL(a[1]).openConnection(proxy);
        c.setConnectTimeout(10000);
        c.setReadTimeout(10000);
        System.out.println("status " + c.getResponseCode());
    }
}
"""

NODE_CLIENT = """
const https = require('https');
const req = https.get({host: '127.0.0.1', port: +process.argv[2], servername: 'localhost', path: '/',
                       headers: {Host: 'localhost'}, timeout: 10000}, res => {
  console.log('status ' + res.statusCode); res.resume();
});
req.on('error', e => { console.log('error ' + e.code); process.exitCode = 1; });
"""

REQUESTS_CLIENT = """
import sys, requests
r = requests.get(sys.argv[2], proxies={"https": "http://" + sys.argv[1]}, timeout=10)
print("status", r.status_code)
"""


class CaEverywhere(ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.home = f"{self.dir}/home"
        self.srv = self.s_server()
        self.url = f"https://localhost:{self.srv.port}/"

    def explicit(self):
        return self.proxy("--upstream-ca", self.pki.ca)

    def recipe(self, store, *extra):
        return tlstrace_ca(self.home, "install", "--print", store, *extra).decode()

    def test_export_formats_read_back(self):
        tlstrace_ca(self.home, "init")
        pem = f"{self.home}/ca.pem"
        want = x509_fingerprint(pem)
        self.assertEqual(tlstrace_ca(self.home, "export").decode(), open(pem).read())
        tlstrace_ca(self.home, "export", "--format", "der", "-o", f"{self.dir}/ca.der")
        self.assertEqual(x509_fingerprint(f"{self.dir}/ca.der", der=True), want)
        tlstrace_ca(self.home, "export", "--format", "p12", "-o", f"{self.dir}/ca.p12", "--password", "s3cret")
        r = run(["openssl", "pkcs12", "-in", f"{self.dir}/ca.p12", "-nokeys", "-passin", "pass:s3cret",
                 "-out", f"{self.dir}/from-p12.pem"])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(x509_fingerprint(f"{self.dir}/from-p12.pem"), want)
        # Java sees a trusted certificate entry (what a truststore needs), with the same fingerprint.
        r = run(["keytool", "-list", "-v", "-keystore", f"{self.dir}/ca.p12", "-storetype", "PKCS12",
                 "-storepass", "s3cret"])
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertIn("Entry type: trustedCertEntry", out)
        self.assertIn(want, out)

    def test_python_requests_recipe(self):
        p = self.explicit()
        client = f"{self.dir}/get.py"
        with open(client, "w") as f:
            f.write(REQUESTS_CLIENT)
        env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
        r = sh(f"python3 {client} {p.addr} {self.url}", env=env)
        self.assertIn(b"SSLError", r.stderr, "control: requests refuses the proxy without the recipe")
        r = sh(self.recipe("python") + f"python3 {client} {p.addr} {self.url}", env=env)
        self.assertEqual(r.stdout.decode().strip(), "status 200", r.stderr.decode())

    def test_node_recipe(self):
        # Node's https ignores HTTPS_PROXY: reverse mode (certs/README.md).
        p = self.proxy("-m", "reverse", "-u", f"localhost:{self.srv.port}", "--upstream-ca", self.pki.ca)
        client = f"{self.dir}/get.js"
        with open(client, "w") as f:
            f.write(NODE_CLIENT)
        env = {k: v for k, v in os.environ.items() if k != "NODE_EXTRA_CA_CERTS"}
        r = sh(f"node {client} {p.port}", env=env)
        self.assertIn("UNABLE_TO_VERIFY_LEAF_SIGNATURE", r.stdout.decode(), "control: refused without the recipe")
        r = sh(self.recipe("node") + f"node {client} {p.port}", env=env)
        self.assertEqual(r.stdout.decode().strip(), "status 200", r.stderr.decode())

    def test_java_recipe(self):
        p = self.explicit()
        with open(f"{self.dir}/Get.java", "w") as f:
            f.write(JAVA_CLIENT)
        env = {k: v for k, v in os.environ.items() if k != "JAVA_TOOL_OPTIONS"}
        ks = f"{self.dir}/trust.p12"
        r = sh(self.recipe("java", "--keystore", ks) + f"java Get.java {p.port} {self.url}", env=env,
               cwd=self.dir)
        self.assertEqual(r.stdout.decode().strip(), "status 200", r.stderr.decode())
        self.assertTrue(os.path.exists(ks))
        # Control: the JDK's own cacerts does not trust the proxy.
        r = sh(f"java Get.java {p.port} {self.url}", env=env, cwd=self.dir)
        self.assertIn("PKIX path building failed", r.stderr.decode())

    @unittest.skipUnless(shutil.which("certutil") and shutil.which("tstclnt"),
                         "NSS tools (Debian libnss3-tools: certutil, tstclnt) not installed")
    def test_nss_recipe(self):
        p = self.proxy("-m", "reverse", "-u", f"localhost:{self.srv.port}", "--upstream-ca", self.pki.ca)
        db = f"{self.dir}/nssdb"
        r = sh(self.recipe("nss", "--nssdb", db))
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        r = run(["certutil", "-d", f"sql:{db}", "-L", "-n", "tlstrace"])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        # tstclnt: NSS's own TLS client, verifying the forged leaf against the database.
        tst = ["tstclnt", "-4", "-h", "localhost", "-p", str(p.port), "-d", f"sql:{db}", "-Q"]
        r = run(tst, input=b"")
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        empty = f"{self.dir}/emptydb"
        os.mkdir(empty)
        run(["certutil", "-d", f"sql:{empty}", "-N", "--empty-password"])
        r = run([*tst[:6], f"sql:{empty}", "-Q"], input=b"")
        self.assertNotEqual(r.returncode, 0, "control: an NSS db without the CA refuses the proxy")

    def test_system_recipe_in_a_mount_namespace(self):
        p = self.explicit()
        curl = f"curl -sS -o /dev/null -w '%{{http_code}}' -x http://{p.addr} {self.url}"
        # tmpfs over the store's directories: the recipe changes only this namespace's copy.
        script = ("mount -t tmpfs tmpfs /usr/local/share/ca-certificates\n"
                  "mount -t tmpfs tmpfs /etc/ssl/certs\n"
                  f"if {curl}; then exit 9; fi\n"  # control: not trusted before the recipe
                  + self.recipe("system") + curl + "\n")
        r = subprocess.run(["unshare", "-m", "sh", "-ec", script], capture_output=True, timeout=DEADLINE * 3)
        if r.returncode != 0 and b"unshare failed" in r.stderr:
            self.skipTest("no mount namespace here: " + r.stderr.decode())
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        self.assertTrue(r.stdout.decode().endswith("200"), r.stdout.decode())
        self.assertFalse(os.path.exists("/usr/local/share/ca-certificates/tlstrace.crt"), "the real store is untouched")

    def test_ca_page(self):
        p = self.explicit()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{p.addr}/ca.pem", timeout=DEADLINE) as r:
            self.assertEqual(r.read().decode(), open(p.ca).read())
        with opener.open(f"http://{p.addr}/ca.der", timeout=DEADLINE) as r:
            self.assertEqual(r.headers["Content-Type"], "application/x-x509-ca-cert")
            with open(f"{self.dir}/page.der", "wb") as f:
                f.write(r.read())
        self.assertEqual(x509_fingerprint(f"{self.dir}/page.der", der=True), x509_fingerprint(p.ca))
        with opener.open(f"http://{p.addr}/", timeout=DEADLINE) as r:
            page = r.read().decode()
            self.assertTrue(r.headers["Content-Type"].startswith("text/html"))
        self.assertIn(x509_fingerprint(p.ca), page)
        self.assertIn('href="/ca.pem"', page)
        evs = p.conn_closed(3)
        self.assertEqual(sorted(e["target"] for e in of(evs, "proxy.request")), ["/", "/ca.der", "/ca.pem"])
        # A proxied request still works beside it.
        r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-x", f"http://{p.addr}",
                 "--cacert", p.ca, self.url])
        self.assertEqual(r.stdout.decode(), "200", r.stderr.decode())


if __name__ == "__main__":
    unittest.main()
