"""The trust-store recipes of README.md, certs/README.md and `tlstrace ca show`, run as written
against a real proxy (HOME is a temp dir, so `~/.tlstrace/ca.pem` is the proxy's own CA; only the
ports, the target URL and the client file names are filled in). Each client's own output is the
check (the s_server page it fetched), and the proxy's events show that it went through the proxy.
The two pitfalls the docs warn about are shown to be real: `requests` ignores SSL_CERT_FILE, and a
JVM sends localhost around the proxy unless http.nonProxyHosts is cleared."""
import os
import re
import shutil
import subprocess
import unittest

from harness import TLSTRACE, Proc, ProxyTestCase, free_port, of, run, wait_port

ROOT = os.path.join(os.path.dirname(__file__), "../..")

CLIENTS = {
    "requests": "import os, requests\nprint(requests.get(os.environ['TARGET_URL'], timeout=10).text)\n",
    "urllib": "import os, urllib.request\nprint(urllib.request.urlopen(os.environ['TARGET_URL'], timeout=10).read().decode())\n",
    "node": ("const https = require('https');\n"
             "https.get({host: '127.0.0.1', port: +process.env.LISTEN_PORT, servername: 'localhost', path: '/',\n"
             "           headers: {host: 'localhost'}}, (res) => {\n"
             "  let body = ''; res.on('data', (d) => body += d); res.on('end', () => console.log(body));\n"
             "}).on('error', (e) => { console.error(e.message); process.exit(1); });\n"),
    "java": ("import java.net.*; import java.io.*;\n"
             "public class MyClient { public static void main(String[] a) throws Exception {\n"
             "  HttpURLConnection c = (HttpURLConnection) new URL(System.getenv(\"TARGET_URL\")).openConnection();\n"
             "  c.setConnectTimeout(10000); c.setReadTimeout(10000);\n"
             "  System.out.println(new String(c.getInputStream().readAllBytes()));\n"
             "} }\n"),
}


def recipe_lines(path):
    """The command lines of the ```sh block after the `<!-- recipes` marker (comments dropped)."""
    with open(path) as f:
        text = f.read()
    block = re.search(r"<!-- recipes[^>]*-->\n```sh\n(.*?)```", text, re.S)
    assert block, f"no recipes block in {path}"
    return [l.split("  #")[0].strip() for l in block.group(1).splitlines() if l.strip() and not l.startswith("#")]


class Recipes(ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.home = f"{self.dir}/userhome"
        os.makedirs(self.home)
        self.srv = self.s_server()
        self.url = f"https://localhost:{self.srv.port}/"
        # The recipes' CA path is ~/.tlstrace/ca.pem: the proxy's CA directory is that one.
        self.p = self.proxy("--upstream-ca", self.pki.ca, env={"TLSTRACE_HOME": f"{self.home}/.tlstrace"})
        self.env = {k: v for k, v in os.environ.items()
                    if k.lower() not in ("https_proxy", "http_proxy", "no_proxy", "all_proxy", "ssl_cert_file",
                                         "requests_ca_bundle", "node_extra_ca_certs", "java_tool_options")}
        self.env.update(HOME=self.home, TARGET_URL=self.url)

    def fill(self, line, listen_port=None):
        line = line.replace("127.0.0.1:8080", self.p.addr).replace("proxyPort=8080", f"proxyPort={self.p.port}")
        line = line.replace("https://host:port/", self.url).replace("-u host:port", f"-u localhost:{self.srv.port}")
        if listen_port:
            line = line.replace("-l 8443", f"-l {listen_port}")
        return line

    def shell(self, line, cwd, timeout=60, env=None):
        return subprocess.run(["bash", "-c", line], cwd=cwd, env=env or self.env, capture_output=True,
                              timeout=timeout)

    def client_dir(self, kind):
        d = f"{self.dir}/{kind}"
        os.makedirs(d, exist_ok=True)
        name = {"requests": "my_client.py", "urllib": "my_client.py", "node": "my_client.js",
                "java": "MyClient.java"}[kind]
        with open(f"{d}/{name}", "w") as f:
            f.write(CLIENTS[kind])
        return d

    def assert_through_proxy(self, r, closes_before, proxy=None):
        proxy = proxy or self.p
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out + r.stderr.decode(errors="replace"))
        self.assertIn("s_server", out)  # the page openssl s_server -www serves
        proxy.conn_closed(closes_before + 1)

    def closes(self, proxy=None):
        return len(of((proxy or self.p).read_events(), "conn.close"))

    def run_http_recipes(self, path):
        kinds = []
        for line in recipe_lines(path):
            if line.startswith(("tlstrace ", "NODE_EXTRA", "keytool ", "java ")):
                continue  # run_node / run_java
            kind = ("requests" if "REQUESTS_CA_BUNDLE" in line else "urllib" if "SSL_CERT_FILE" in line
                    else "curl")
            kinds.append(kind)
            cwd = self.dir if kind == "curl" else self.client_dir(kind)
            before = self.closes()
            self.assert_through_proxy(self.shell(self.fill(line), cwd), before)
        return kinds

    def test_readme_run_it_lines(self):
        self.assertEqual(sorted(self.run_http_recipes(f"{ROOT}/README.md")), ["curl", "requests", "urllib"])

    def test_certs_readme_curl_and_python(self):
        self.assertEqual(sorted(self.run_http_recipes(f"{ROOT}/certs/README.md")), ["curl", "requests", "urllib"])

    def test_requests_ignores_ssl_cert_file(self):
        d = self.client_dir("requests")
        r = self.shell(f"HTTPS_PROXY=http://{self.p.addr} SSL_CERT_FILE=~/.tlstrace/ca.pem python3 my_client.py", d)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"CERTIFICATE_VERIFY_FAILED", r.stderr)

    def test_node_reverse_mode(self):
        lines = recipe_lines(f"{ROOT}/certs/README.md")
        proxy_line = next(l for l in lines if l.startswith("tlstrace proxy"))
        node_line = next(l for l in lines if l.startswith("NODE_EXTRA_CA_CERTS"))
        listen = free_port()
        cmd = self.fill(proxy_line, listen).split()
        cmd[0] = TLSTRACE
        events = f"{self.dir}/reverse.events.jsonl"
        env = dict(self.env, TLSTRACE_HOME=f"{self.home}/.tlstrace")
        rev = Proc([*cmd, "--upstream-ca", self.pki.ca, "--events", events], f"{self.dir}/reverse.log", env=env)
        self._stops.append(rev.stop)
        wait_port(listen, rev.p)
        r = self.shell(node_line, self.client_dir("node"), env=dict(self.env, LISTEN_PORT=str(listen)))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"s_server", r.stdout)
        with open(events) as f:
            self.assertIn('"event":"tls.established"', f.read())

    @unittest.skipUnless(shutil.which("keytool") and shutil.which("java"), "needs Java")
    def test_java_keytool_and_jvm_through_the_proxy(self):
        lines = recipe_lines(f"{ROOT}/certs/README.md")
        keytool = next(l for l in lines if l.startswith("keytool "))
        java = next(l for l in lines if l.startswith("java "))
        d = self.client_dir("java")
        # No prompt: stdin is closed, so a prompt would fail the import.
        r = subprocess.run(["bash", "-c", self.fill(keytool)], cwd=d, env=self.env, capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        listed = run(["keytool", "-list", "-keystore", f"{d}/trust.p12", "-storepass", "changeit"], timeout=60)
        self.assertIn(b"tlstrace", listed.stdout)
        before = self.closes()
        self.assert_through_proxy(self.shell(self.fill(java), d, timeout=120), before)
        # Without the cleared http.nonProxyHosts the JVM goes to localhost directly (and fails
        # there: s_server's CA is not in the store), and the proxy sees nothing.
        direct = self.shell(self.fill(java).replace(" -Dhttp.nonProxyHosts=", ""), d, timeout=120)
        self.assertNotEqual(direct.returncode, 0)
        self.assertIn(b"PKIX", direct.stderr)
        self.assertEqual(self.closes(), before + 1)

    @unittest.skipUnless(shutil.which("keytool"), "needs keytool")
    def test_ca_show_lines(self):
        r = run([TLSTRACE, "ca", "show"], env=dict(self.env, TLSTRACE_HOME=f"{self.home}/.tlstrace"))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        ca = f"{self.home}/.tlstrace/ca.pem"
        self.assertIn(f"REQUESTS_CA_BUNDLE={ca}", out)
        curl = re.search(r"curl: (--cacert \S+)", out).group(1)
        before = self.closes()
        self.assert_through_proxy(run(["bash", "-c", f"curl -sS -x http://{self.p.addr} {curl} {self.url}"],
                                      env=self.env), before)
        keytool = re.search(r"Java: (keytool .*)", out).group(1)
        d = f"{self.dir}/show"
        os.makedirs(d)
        r = subprocess.run(["bash", "-c", keytool], cwd=d, env=self.env, capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(os.path.exists(f"{d}/trust.p12"))


if __name__ == "__main__":
    unittest.main()
