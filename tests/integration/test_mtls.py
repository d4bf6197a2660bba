"""Mutual TLS on both legs (issue 11 item 5), against the peers' own accounts of the same
connections: openssl s_server -Verify 1 -trace prints the CertificateRequest it sent and the client
certificate it received (compared with the upstream leg's decoded messages and
tls.client_certificate); openssl s_client -trace prints the proxy's CertificateRequest as it
arrived and the (empty) Certificate it answered; the certificates' own fingerprints and subjects
come from `openssl x509`, and the verify verdict from `openssl verify`."""
import os
import re
import socket
import ssl
import subprocess

from harness import DEADLINE, ProxyTestCase, of, run


def openssl(*args):
    r = run(["openssl", *args])
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def make_ca(d, name, cn):
    key, cert = f"{d}/{name}.key", f"{d}/{name}.pem"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-out", cert, "-days", "3", "-subj", f"/CN={cn}/O=tlstrace tests",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    return cert, key


def make_client(d, name, cn, ca, ca_key):
    key, cert = f"{d}/{name}.key", f"{d}/{name}.pem"
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-out", f"{d}/{name}.csr", "-subj", f"/CN={cn}")
    ext = f"{d}/{name}.ext"
    with open(ext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "3", "-extfile", ext)
    return cert, key


def fingerprint(cert):
    out = openssl("x509", "-in", cert, "-noout", "-fingerprint", "-sha256")
    return out.split("=", 1)[1].strip().replace(":", "").lower()


def subject_2253(cert):
    return openssl("x509", "-in", cert, "-noout", "-subject", "-nameopt", "RFC2253").split("=", 1)[1].strip()


def trace_block(out, title, start=0):
    """The indented lines of one message in an OpenSSL -trace output, from `title`."""
    at = out.index(title, start)
    lines = []
    for line in out[at:].splitlines()[1:]:
        if not line.strip() or line.startswith("------"):
            break
        lines.append(line)
    return lines


def request_fields(lines):
    """What s_server/s_client -trace printed of a CertificateRequest (RFC 5246 7.4.4, RFC 8446 4.3.2)."""
    f = {"types": [], "sigalgs": [], "dns": [], "ca_bytes": b"", "context": None}
    in_ca_ext = False
    for line in lines:
        s = line.strip()
        if m := re.match(r"^(\w+) \((\d+)\)$", s):
            f["types"].append((m.group(1), int(m.group(2))))
        elif m := re.match(r"^(\w+) \(0x([0-9a-f]{4})\)$", s):
            f["sigalgs"].append((m.group(1), int(m.group(2), 16)))
        elif m := re.match(r"^DistinguishedName \(len=\d+\): (.*)$", s):
            f["dns"].append(m.group(1))
        elif m := re.match(r"^request_context \(len=(\d+)\)", s):
            f["context"] = int(m.group(1))
        elif s.startswith("extension_type="):
            in_ca_ext = s.startswith("extension_type=certificate_authorities(47)")
        elif in_ca_ext and (m := re.match(r"^[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]){1,16})", s + " ")):
            f["ca_bytes"] += bytes.fromhex(m.group(1).replace("-", " "))
    return f


class MutualTls(ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.tmp.name
        cls.cca, cls.cca_key = make_ca(d, "client-ca", "tlstrace client CA")
        cls.cert, cls.key = make_client(d, "client", "tlstrace mtls client", cls.cca, cls.cca_key)
        other_ca, other_key = make_ca(d, "other-ca", "unrelated CA")
        cls.other, cls.other_key = make_client(d, "other", "unrelated client", other_ca, other_key)

    def mtls_server(self, *extra):
        """s_server that requires a client certificate from the client CA, with its own -trace."""
        return self.s_server("-Verify", "1", "-verify_return_error", "-CAfile", self.cca, "-trace",
                             "-naccept", "2", *extra)

    def server_output(self, srv):
        srv.proc.p.wait(timeout=DEADLINE)
        return srv.proc.output()

    def get(self, port):
        ctx = ssl._create_unverified_context()
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"GET / HTTP/1.0\r\n\r\n")
                return t.recv(100)

    def check_request(self, body, server_fields, tls13):
        """Our decoded CertificateRequest against what the server says it sent."""
        if tls13:
            self.assertEqual(server_fields["context"], len(bytes.fromhex(body["request_context"])))
            exts = {e["type"]["name"]: e for e in body["extensions"]}
            schemes = [(s["name"], s["id"]) for s in exts["signature_algorithms"]["schemes"]]
            authorities = exts["certificate_authorities"]["authorities"]
            # The DER names as the server's hex dump shows them: each of ours names the same CA.
            self.assertIn("tlstrace client CA".encode(), server_fields["ca_bytes"])
        else:
            self.assertEqual(list(zip(body["certificate_type_names"], body["certificate_types"])),
                             server_fields["types"])
            schemes = [(s["name"], s["id"]) for s in body["signature_algorithms"]]
            authorities = body["certificate_authorities"]
            self.assertEqual(len(server_fields["dns"]), len(authorities))
        # s_server names a few legacy schemes its own way (dsa_*, *_sha224): compare the codes.
        self.assertEqual([i for _, i in schemes], [i for _, i in server_fields["sigalgs"]])
        named = {i: n for n, i in server_fields["sigalgs"]}
        for n, i in schemes:
            if n != "unknown" and "sha224" not in n:
                self.assertEqual(n, named[i])
        self.assertEqual(authorities, [subject_2253(self.cca)])

    def upstream_mtls(self, version_flag, tls13, *proxy_args):
        srv = self.mtls_server(version_flag)
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca, *proxy_args)
        self.assertTrue(self.get(p.port).startswith(b"HTTP/1.0 200"), "the server accepted the certificate")
        evs = p.conn_closed()
        out = self.server_output(srv)
        req = [e for e in of(evs, "tls.message", "upstream") if e["type"] == "CertificateRequest"]
        self.assertEqual((len(req), req[0]["dir"]), (1, "in"))
        self.check_request(req[0]["body"], request_fields(trace_block(out, "CertificateRequest, Length=")), tls13)
        # The Certificate the proxy sent, as the server received it (s_server prints its subject).
        sent = [e for e in of(evs, "tls.message", "upstream") if e["type"] == "Certificate" and e["dir"] == "out"]
        self.assertEqual(len(sent), 1)
        self.assertEqual(sent[0]["body"]["chain"][0]["sha256"], fingerprint(self.cert))
        self.assertIn("Subject: CN = tlstrace mtls client", out)
        cc = of(evs, "tls.client_certificate", "upstream")
        self.assertEqual(len(cc), 1)
        self.assertTrue(cc[0]["presented"])
        self.assertEqual(cc[0]["certificates"], 1)
        self.assertEqual(cc[0]["chain"][0]["sha256"], fingerprint(self.cert))
        return cc[0], evs

    def test_tls13_upstream_client_certificate(self):
        cc, _ = self.upstream_mtls("-tls1_3", True, "--upstream-client-cert", self.cert,
                                   "--upstream-client-key", self.key)
        self.assertEqual(cc["source"], "--upstream-client-cert")

    def test_tls12_per_host_certificate_from_the_config_file(self):
        # The default certificate is one the server does not accept: the rule for the host wins.
        conf = f"{self.dir}/mtls.toml"
        with open(conf, "w") as f:
            f.write(f'upstream-client-cert = "{self.other}"\nupstream-client-key = "{self.other_key}"\n'
                    f'upstream-client-cert-for = ["nomatch.example={self.other},{self.other_key}", '
                    f'"local*={self.cert},{self.key}"]\n')
        cc, _ = self.upstream_mtls("-tls1_2", False, "--config", conf)
        self.assertEqual(cc["source"], "--upstream-client-cert-for local*")

    def test_tls12_required_certificate_none_configured(self):
        srv = self.mtls_server("-tls1_2")
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca)
        with self.assertRaises((ssl.SSLError, OSError)):
            self.get(p.port)
        evs = p.conn_closed()
        out = self.server_output(srv)
        self.assertIn("peer did not return a certificate", out)
        # The empty Certificate went out (RFC 8446 4.4.2.4), as the server received it.
        received = trace_block(out, "Certificate, Length=3", out.index("Received Record"))
        self.assertIn("certificate_list, length=0", "\n".join(received))
        sent = [e for e in of(evs, "tls.message", "upstream") if e["type"] == "Certificate" and e["dir"] == "out"]
        self.assertEqual((sent[0]["length"], sent[0]["body"]["chain"]), (3, []))
        cc = of(evs, "tls.client_certificate", "upstream")[0]
        self.assertEqual((cc["presented"], cc["certificates"], cc["source"], cc["chain"]), (False, 0, "none", []))
        err = of(evs, "tls.error", "upstream")[0]
        self.assertEqual(err["alert_received"], "handshake_failure")
        self.assertEqual(err["cause"], "client_certificate_required")
        self.assertIn("--upstream-client-cert", err["hint"])
        names = [e["event"] for e in evs if e.get("leg") == "upstream"]
        self.assertLess(names.index("tls.client_certificate"), names.index("tls.error"))

    def test_request_client_cert_curl_and_mtls_upstream(self):
        # curl presents its certificate to the proxy; the server asks the proxy for one too.
        srv = self.mtls_server()
        p = self.proxy("--request-client-cert", "--client-ca", self.cca, "--upstream-ca", self.pki.ca,
                       "--upstream-client-cert", self.cert, "--upstream-client-key", self.key)
        r = run(["curl", "-sS", "-v", "-x", f"http://{p.addr}", "--cacert", p.ca, "--cert", self.other,
                 "--key", self.other_key, f"https://localhost:{srv.port}/"])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn("Request CERT (13)", r.stderr.decode())  # curl's own account: asked, and
        self.assertRegex(r.stderr.decode(), r"\(OUT\), TLS handshake, Certificate \(11\)")  # answered
        evs = p.conn_closed()
        req = [e for e in of(evs, "tls.message", "client") if e["type"] == "CertificateRequest"]
        self.assertEqual(req[0]["dir"], "out")
        got = [e for e in of(evs, "tls.message", "client") if e["type"] == "Certificate" and e["dir"] == "in"]
        self.assertEqual(got[0]["body"]["chain"][0]["sha256"], fingerprint(self.other))
        cc = of(evs, "tls.client_certificate", "client")[0]
        self.assertEqual((cc["presented"], cc["certificates"], cc["source"]), (True, 1, "client"))
        self.assertEqual(cc["chain"][0]["subject"], subject_2253(self.other))
        # Not issued by --client-ca: `openssl verify` says why, and so do we (not enforced).
        v = run(["openssl", "verify", "-CAfile", self.cca, self.other])
        self.assertNotEqual(v.returncode, 0)
        self.assertFalse(cc["verified"])
        self.assertIn(cc["error"], v.stdout.decode() + v.stderr.decode())
        self.assertIn("--upstream-client-cert", cc["note"])
        up = of(evs, "tls.client_certificate", "upstream")[0]
        self.assertEqual((up["presented"], up["chain"][0]["sha256"]), (True, fingerprint(self.cert)))
        self.assertIn("Subject: CN = tlstrace mtls client", self.server_output(srv))

    def s_client_through(self, p, srv_port, *extra):
        proc = subprocess.run(["openssl", "s_client", "-connect", p.addr, "-servername", "localhost", "-trace",
                               "-CAfile", p.ca, "-verify_return_error", "-ign_eof", *extra],
                              input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True, timeout=DEADLINE)
        return proc.stdout.decode(errors="replace")

    def test_request_client_cert_without_one_tls12_and_13(self):
        srv = self.s_server("-naccept", "3")
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca,
                       "--request-client-cert", "--client-ca", self.cca)
        for n, (flag, tls13) in enumerate((("-tls1_3", True), ("-tls1_2", False)), start=1):
            out = self.s_client_through(p, srv.port, flag)
            evs = p.conn_closed(n)
            client = [e for e in of(evs, "tls.message", "client", conn=n)]
            req = [e for e in client if e["type"] == "CertificateRequest"][0]
            self.check_request(req["body"], request_fields(trace_block(out, "CertificateRequest, Length=")), tls13)
            # The empty Certificate s_client sent (RFC 8446 4.4.2 / RFC 5246 7.4.6), as we decoded it.
            empty = "Certificate, Length=4" if tls13 else "Certificate, Length=3"
            self.assertIn("certificate_list, length=0", "\n".join(trace_block(out, empty, out.index("Sent Record"))))
            got = [e for e in client if e["type"] == "Certificate" and e["dir"] == "in"][0]
            self.assertEqual((got["length"], got["body"]["chain"]), (4 if tls13 else 3, []))
            cc = of(evs, "tls.client_certificate", "client", conn=n)[0]
            self.assertEqual((cc["presented"], cc["certificates"], cc["chain"]), (False, 0, []))
            self.assertNotIn("verified", cc)
            self.assertIn("HTTP/1.0 200", out)

    def test_request_client_cert_s_client_verified(self):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca,
                       "--request-client-cert", "--client-ca", self.cca)
        out = self.s_client_through(p, srv.port, "-cert", self.cert, "-key", self.key)
        self.assertIn("HTTP/1.0 200", out)
        self.assertEqual(run(["openssl", "verify", "-CAfile", self.cca, self.cert]).returncode, 0)
        evs = p.conn_closed()
        cc = of(evs, "tls.client_certificate", "client")[0]
        self.assertEqual((cc["presented"], cc["verified"]), (True, True))
        self.assertEqual(cc["chain"][0]["sha256"], fingerprint(self.cert))
        self.assertNotIn("note", cc)


if __name__ == "__main__":
    import unittest
    unittest.main()
