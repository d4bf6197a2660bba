"""`tlstrace probe` against openssl s_server origins configured with chosen versions, suites (in a
server-preferred order), groups, DH parameters and bad certificates. The probe's findings are
compared with what each server was configured to accept, with the server's own -trace output of
the same handshakes (ServerHello: version, suite, group, HelloRetryRequest, pre_shared_key), with
`openssl ciphers -stdname` for suite names, and with `openssl verify` / `openssl dhparam` for the
certificate verdict and the DH prime size."""
import json
import os
import re
import time
import unittest

from harness import DEADLINE, TLSTRACE, ProxyTestCase, SServer, check_against_docs, expired_self_signed, rsa_cert, run
from test_kex import pkcs3_params

# RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest.
HRR_RANDOM = "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C"
# OpenSSL's group spellings (what the servers are configured with) -> the IANA names.
IANA_GROUP = {"P-256": "secp256r1", "P-384": "secp384r1", "P-521": "secp521r1", "X25519": "x25519",
              "X448": "x448", "ffdhe2048": "ffdhe2048", "ffdhe3072": "ffdhe3072"}


def server_hellos(trace_text):
    """Each ServerHello s_server -trace printed: version, suite, group, hrr, psk (resumed)."""
    out = []
    for block in trace_text.split("ServerHello, Length=")[1:]:
        block = block.split("\nSent Record")[0]
        m_suite = re.search(r"cipher_suite \{0x[0-9A-F]+, 0x[0-9A-F]+\} (\S+)", block)
        m_random = re.search(r"gmt_unix_time=0x([0-9A-F]+)\s+random_bytes \(len=28\): ([0-9A-F]+)", block)
        m_sv = re.search(r"supported_versions\(43\), length=2\s+TLS 1\.3", block)
        m_legacy = re.search(r"server_version=0x303 \(TLS 1\.2\)", block)
        m_group = re.search(r"NamedGroup: (\S+)", block)
        out.append({
            "cipher": m_suite.group(1) if m_suite else None,
            "hrr": bool(m_random) and (m_random.group(1) + m_random.group(2)) == HRR_RANDOM,
            "version": "TLSv1.3" if m_sv else ("TLSv1.2" if m_legacy else None),
            "group": m_group.group(1) if m_group else None,
            "psk": "extension_type=psk(41)" in block,  # (OpenSSL 3.0 names pre_shared_key so)
        })
    return out


def stdnames(cipher_list):
    """The standard (IANA) names of an OpenSSL cipher list, in its order."""
    r = run(["openssl", "ciphers", "-stdname", cipher_list])
    assert r.returncode == 0, r.stderr
    # (TLS 1.3 suites are listed too, whatever the list says: left out here)
    return [line.split(" - ")[0].strip() for line in r.stdout.decode().splitlines()
            if " - " in line and " TLSv1.3 " not in line]


class Probe(ProxyTestCase):
    def probe(self, *args, expect_rc=None):
        r = run([TLSTRACE, "probe", *args], timeout=60)
        if expect_rc is not None:
            self.assertEqual(r.returncode, expect_rc, r.stdout.decode()[-1500:] + r.stderr.decode()[-1500:])
        return r

    def probe_json(self, *args, expect_rc=0):
        r = self.probe(*args, "--json", expect_rc=expect_rc)
        return json.loads(r.stdout)

    def traced_server(self, *extra):
        """s_server -trace with its stdout unbuffered (coreutils' stdbuf preload): its trace of a
        handshake is in the log before the next connection comes, not when its buffer fills."""
        env = dict(os.environ, LD_PRELOAD="/usr/libexec/coreutils/libstdbuf.so", _STDBUF_O="0")
        s = SServer(self.dir, self.pki.cert, self.pki.key, ("-trace", *extra), name="traced", env=env)
        self._stops.append(s.stop)
        return s

    def wait_log(self, srv, pred):
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            text = srv.proc.output()
            if pred(text):
                return text
            time.sleep(0.05)
        return srv.proc.output()

    def test_handshake_fields_match_the_servers_trace(self):
        # The server has no x25519: our first key share is refused, a HelloRetryRequest follows.
        srv = self.traced_server("-groups", "P-384")
        events = f"{self.dir}/probe.jsonl"
        rep = self.probe_json(f"localhost:{srv.port}", "--upstream-ca", self.pki.ca, "--events", events)
        hellos = self.wait_log(srv, lambda t: len(server_hellos(t)) >= 4)  # HRR and ServerHello, twice
        hellos = server_hellos(hellos)
        self.assertTrue(hellos[0]["hrr"], hellos)
        first = hellos[1]  # the ServerHello after the retry
        self.assertEqual(rep["version"], first["version"])
        self.assertEqual(rep["cipher"]["name"], first["cipher"])
        self.assertEqual(rep["group"], first["group"])
        self.assertEqual(rep["key_exchange"]["hello_retry_request"], first["group"])
        self.assertEqual(rep["key_exchange"]["rating"], "strong")
        # The resumption attempt: the server's own ServerHello says whether it took the PSK.
        second = [h for h in hellos[2:] if not h["hrr"]][0]
        self.assertEqual(rep["resumption"]["resumed"], second["psk"])
        self.assertTrue(rep["resumption"]["attempted"])
        self.assertEqual(rep["resumption"]["session"], "ticket")
        self.assertTrue(rep["trust"]["verified"])
        self.assertTrue(rep["ok"])
        # The events file is the proxy's upstream leg's: documented fields, valid lines.
        self.check_events_file(events, require=["tls.established", "tls.trust", "tls.key_exchange"])
        with open(events) as f:
            evs = [json.loads(line) for line in f]
        self.assertEqual(check_against_docs(evs), [])
        self.assertEqual({e["conn"] for e in evs}, {1, 2})
        self.assertFalse([e for e in evs if e.get("leg") == "client"])
        self.assertEqual([e["mode"] for e in evs if e["event"] == "conn.open"], ["probe", "probe"])

    def test_text_trace_and_report(self):
        srv = self.traced_server("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
        r = self.probe(f"localhost:{srv.port}", "--upstream-ca", self.pki.ca, "--alpn", "h2,http/1.1", expect_rc=0)
        out = r.stdout.decode()
        hello = server_hellos(self.wait_log(srv, lambda t: len(server_hellos(t)) >= 1))[0]
        self.assertIn("#1 upstream <- ServerHello", out)  # the trace, as --log prints it
        report = out[out.index("\nprobe localhost:"):]
        self.assertRegex(report, rf"\n  version +{hello['version']}\n")
        self.assertRegex(report, rf"\n  cipher +{hello['cipher']}\n")
        self.assertEqual(hello["cipher"], stdnames("ECDHE-ECDSA-AES128-GCM-SHA256")[0])
        self.assertIn("certificate     verified, hostname matches", out)

    def test_alpn_and_events_on_stdout(self):
        srv = self.s_server("-alpn", "h2")  # the one protocol it accepts
        r = self.probe(f"localhost:{srv.port}", "--upstream-ca", self.pki.ca, "--alpn", "http/1.1,h2",
                       "--events", "-", expect_rc=0)
        evs = [json.loads(line) for line in r.stdout.decode().splitlines()]  # nothing but events
        est = [e for e in evs if e["event"] == "tls.established"]
        self.assertEqual([e["alpn"] for e in est], ["h2", "h2"])
        hello = [e for e in evs if e["event"] == "tls.message" and e["type"] == "ClientHello"][0]
        self.assertIn("probe localhost:", r.stderr.decode())  # the report, on stderr
        self.assertRegex(r.stderr.decode(), r"\n  alpn +h2\n")
        self.assertEqual(check_against_docs(evs), [])
        self.assertTrue(hello)

    def test_scan_tls12_suites_in_server_order_groups_and_hrr_absent(self):
        cert, key = rsa_cert(self.dir)
        order = "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-GCM-SHA384:AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305"
        srv = self.s_server("-tls1_2", "-cipher", order, "-serverpref", "-groups", "P-256:X448", cert=cert, key=key)
        # No attempt may wait for its timeout (a refused suite or group is an alert, not silence):
        # the whole scan ends well before one timeout would.
        started = time.monotonic()
        rep = self.probe_json(f"localhost:{srv.port}", "--timeout", "30",
                              "--scan", "versions,ciphers,groups,sigalgs")
        self.assertLess(time.monotonic() - started, 30)
        scan = rep["scan"]
        self.assertEqual(scan["versions"], ["TLSv1.2"])
        self.assertEqual(scan["ciphers"]["TLSv1.2"], stdnames(order))
        self.assertEqual(scan["groups"]["version"], "TLSv1.2")
        self.assertEqual(sorted(scan["groups"]["accepted"]), sorted(IANA_GROUP[g] for g in ["P-256", "X448"]))
        self.assertIsNone(scan["groups"]["hrr"])  # no HelloRetryRequest in TLS 1.2
        self.assertTrue(scan["sigalgs"]["accepted"])
        self.assertTrue(all(s.startswith("rsa_") for s in scan["sigalgs"]["accepted"]), scan["sigalgs"])
        # The single handshake took the server's first choice.
        self.assertEqual(rep["cipher"]["name"], stdnames(order)[0])

    def test_scan_tls13_suites_groups_hrr_sigalgs(self):
        suites = "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
        srv = self.s_server("-tls1_3", "-ciphersuites", suites, "-serverpref", "-groups", "P-384:ffdhe2048")
        rep = self.probe_json(f"localhost:{srv.port}", "--upstream-ca", self.pki.ca, "--scan", "all")
        scan = rep["scan"]
        self.assertEqual(scan["versions"], ["TLSv1.3"])
        self.assertEqual(scan["ciphers"]["TLSv1.3"], suites.split(":"))
        self.assertEqual(sorted(scan["groups"]["accepted"]), sorted(IANA_GROUP[g] for g in ["P-384", "ffdhe2048"]))
        # A key share for a group it does not take, with an accepted one listed: OpenSSL asks again.
        self.assertEqual(scan["groups"]["hrr"]["result"], "hello_retry_request")
        # The certificate is ECDSA P-256: in TLS 1.3 only ecdsa_secp256r1_sha256 can sign with it
        # (RFC 8446 4.2.3 binds the curve).
        key = run(["openssl", "x509", "-in", self.pki.cert, "-noout", "-text"]).stdout.decode()
        self.assertIn("prime256v1", key)
        self.assertEqual(scan["sigalgs"]["accepted"], ["ecdsa_secp256r1_sha256"])
        self.assertLess(scan["seconds"], 10)

    def test_scan_versions_without_tls13(self):
        srv = self.s_server("-no_tls1_3")
        rep = self.probe_json(f"localhost:{srv.port}", "--upstream-ca", self.pki.ca, "--scan", "versions")
        # OpenSSL 3.0 at its default security level speaks TLS 1.2 at least.
        self.assertEqual(rep["scan"]["versions"], ["TLSv1.2"])
        self.assertEqual(rep["version"], "TLSv1.2")

    def test_weak_dh_parameters_rated(self):
        cert, key = rsa_cert(self.dir)
        dh = pkcs3_params(self.dir, 1024)
        bits = re.search(r"\((\d+) bit\)", run(["openssl", "pkeyparam", "-in", dh, "-text", "-noout"]).stdout.decode()
                         + run(["openssl", "dhparam", "-in", dh, "-text", "-noout"]).stdout.decode())
        srv = self.s_server("-dhparam", dh, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",
                            cert=cert, key=key, seclevel0=True)
        rep = self.probe_json(f"localhost:{srv.port}", "--ciphers", "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0")
        k = rep["key_exchange"]
        self.assertEqual(k["kex"], "DHE")
        self.assertEqual(k["bits"], int(bits.group(1)))
        self.assertIn(k["rating"], ("weak", "broken"))
        # With OpenSSL's default offer (security level 1) the handshake fails on the small prime:
        # exit 1, the cause named, what arrived still analysed; the scan's own DHE-only handshake
        # (at level 0) finds the same parameters, and no ECDHE group (the server has no such suite).
        rep = self.probe_json(f"localhost:{srv.port}", "--scan", "versions,groups", expect_rc=1)
        self.assertFalse(rep["ok"])
        self.assertEqual(rep["error"]["cause"], "dh_key_too_small")
        self.assertEqual(rep["key_exchange"]["bits"], int(bits.group(1)))
        self.assertEqual(rep["scan"]["dhe"]["bits"], int(bits.group(1)))
        self.assertEqual(rep["scan"]["dhe"]["p"], k["p"])
        self.assertEqual(rep["scan"]["groups"]["accepted"], [])

        self.assertFalse(rep["trust"]["verified"])  # self-signed, no --upstream-ca

    def openssl_verify_error(self, cert, ca, *args):
        r = run(["openssl", "verify", "-CAfile", ca, *args, cert])
        m = re.search(r"error \d+ at \d+ depth lookup: (.+)", r.stdout.decode() + r.stderr.decode())
        return m.group(1).strip() if m else None

    def test_wrong_host_certificate(self):
        srv = self.s_server()
        # The certificate names localhost and 127.0.0.1 only.
        expected = self.openssl_verify_error(self.pki.cert, self.pki.ca, "-verify_hostname", "wrong.example")
        self.assertIsNotNone(expected)
        rep = self.probe_json(f"127.0.0.1:{srv.port}", "--sni", "wrong.example", "--upstream-ca", self.pki.ca)
        self.assertTrue(rep["ok"])  # the handshake itself succeeded: the verdict is reported, not enforced
        self.assertFalse(rep["trust"]["verified"])
        self.assertFalse(rep["trust"]["hostname_match"])
        self.assertEqual(rep["trust"]["error"], expected)
        policy = f"{self.dir}/cert.toml"
        with open(policy, "w") as f:
            f.write('[[rule]]\nid = "cert-valid"\nleg = "upstream"\nrequire_verified = true\n')
        rep = self.probe_json(f"127.0.0.1:{srv.port}", "--sni", "wrong.example", "--upstream-ca", self.pki.ca,
                              "--policy", policy, expect_rc=1)
        self.assertGreater(rep["policy"]["violations"], 0)

    def test_expired_certificate(self):
        key, cert = expired_self_signed(self.dir)
        expected = self.openssl_verify_error(cert, cert)
        self.assertEqual(expected, "certificate has expired")
        srv = self.s_server(cert=cert, key=key)
        rep = self.probe_json(f"localhost:{srv.port}", "--upstream-ca", cert)
        self.assertFalse(rep["trust"]["verified"])
        self.assertEqual(rep["trust"]["error"], expected)
        self.assertEqual(rep["trust"]["chain"][0]["not_after"], "2021-01-01T00:00:00Z")

    def test_policy_exit_status(self):
        old = self.s_server("-tls1_2")
        new = self.s_server("-tls1_3")
        policy = f"{self.dir}/modern.toml"
        with open(policy, "w") as f:
            f.write('[[rule]]\nid = "tls13-only"\nleg = "upstream"\nmin_version = "TLSv1.3"\n')
        rep = self.probe_json(f"localhost:{old.port}", "--upstream-ca", self.pki.ca, "--policy", policy, expect_rc=1)
        self.assertEqual(rep["policy"]["rules"][0]["observed"], "TLSv1.2")
        rep = self.probe_json(f"localhost:{new.port}", "--upstream-ca", self.pki.ca, "--policy", policy, expect_rc=0)
        self.assertTrue(all(c["passed"] for c in rep["policy"]["rules"]))

    def test_failures_and_usage(self):
        rep = self.probe_json(f"127.0.0.1:{self.closed_port()}", expect_rc=1)
        self.assertFalse(rep["ok"])
        self.assertEqual(rep["error"]["cause"], "upstream_unreachable")
        self.probe("no-port-here", expect_rc=2)
        self.probe("localhost:443", "--scan", "everything", expect_rc=2)
        bad = f"{self.dir}/bad.toml"
        with open(bad, "w") as f:
            f.write('[[rule]]\nid = "x"\nmin_versoin = "TLSv1.2"\n')
        self.probe("localhost:443", "--policy", bad, expect_rc=2)
        # A server that speaks no TLS: the handshake fails, exit 1, the diagnosis says why.
        plain = self.echo()
        rep = self.probe_json(f"127.0.0.1:{plain.port}", "--timeout", "2", expect_rc=1)
        self.assertFalse(rep["ok"])
        self.assertIsNotNone(rep["error"]["cause"])

    def closed_port(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port


if __name__ == "__main__":
    unittest.main()
