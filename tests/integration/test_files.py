"""Files that hold secrets and files read back (issue [8] items 7 and 8): modes and owners of the
outputs as the kernel reports them (os.stat), the CA directory check, the timeout combination
reported at start, and `tlstrace convert` on hostile events files (exit 2 with FILE:LINE, never a
signal)."""
import json
import os
import re
import stat
import subprocess

from harness import TLSTRACE, ProxyTestCase, of, run

NOBODY = 65534  # another user, whose files the proxy must not write secrets into


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def umask():
    m = os.umask(0)
    os.umask(m)
    return m


class Files(ProxyTestCase):
    def curl(self, p, srv, *extra):
        r = run(["curl", "-sS", "--max-time", "10", "-x", f"http://{p.addr}", "--cacert", p.ca, *extra,
                 f"https://localhost:{srv.port}/"])
        self.assertEqual(r.returncode, 0, r.stderr)

    def outputs(self, n=0):
        """The paths harness.Tlstrace gives its n-th proxy, and a pcap beside them."""
        base = f"{self.dir}/tlstrace{n}"
        return {"events": f"{base}.events.jsonl", "keylog": f"{base}.keys", "log": f"{base}.trace.txt",
                "pcap": f"{base}.pcapng"}

    def run_one(self, *args, secrets):
        """A proxy with every output, one TLS connection through it, stopped; its paths."""
        srv = self.s_server("-www")
        out = self.outputs(len(self.proxies))
        p = self.proxy("--upstream-ca", self.pki.ca, "--pcap", out["pcap"], "--trace", "all",
                       *(["--log-secrets"] if secrets else []), *args)
        self.curl(p, srv)
        p.conn_closed(1)
        self.assertEqual(p.stop(), 0, p.proc.output())
        return out, p

    def assert_holds_secrets(self, out, secrets):
        """The files really got the secrets (so the modes matter): the key log has lines, and with
        --log-secrets the events carry tls.secret values."""
        with open(out["keylog"]) as f:
            self.assertTrue(any(l.startswith("CLIENT_HANDSHAKE_TRAFFIC_SECRET ") for l in f))
        with open(out["events"]) as f:
            evs = [json.loads(l) for l in f if l.strip()]
        self.assertEqual(any("secret" in e for e in of(evs, "tls.secret")), secrets)

    def test_fresh_files_with_and_without_log_secrets(self):
        out, _ = self.run_one(secrets=False)
        self.assert_holds_secrets(out, False)
        self.assertEqual(mode(out["keylog"]), 0o600)
        self.assertEqual(mode(out["pcap"]), 0o600)
        # Without --log-secrets the events and the trace hold no secret: the umask decides.
        self.assertEqual(mode(out["events"]), 0o666 & ~umask())
        self.assertEqual(mode(out["log"]), 0o666 & ~umask())

        out, _ = self.run_one(secrets=True)
        self.assert_holds_secrets(out, True)
        for k in ("keylog", "pcap", "events", "log"):
            self.assertEqual(mode(out[k]), 0o600, k)

    def test_existing_wide_files_are_narrowed_before_any_secret(self):
        for secrets in (False, True):
            out = self.outputs(len(self.proxies))
            for path in out.values():
                with open(path, "w"):
                    pass
                os.chmod(path, 0o644)
            out, p = self.run_one(secrets=secrets)
            self.assert_holds_secrets(out, secrets)
            narrowed = ("keylog", "pcap", "events", "log") if secrets else ("keylog", "pcap")
            for k in out:
                self.assertEqual(mode(out[k]), 0o600 if k in narrowed else 0o644, (k, secrets))
            stderr = p.proc.output()
            for k in narrowed:  # each one said so
                self.assertRegex(stderr, rf"{re.escape(out[k])} had mode 0644, readable by others: narrowed to 0600")
            self.assertEqual(len(re.findall("narrowed to 0600", stderr)), len(narrowed), stderr)

    def refused_start(self, *args, env=None):
        e = dict(os.environ, TLSTRACE_HOME=f"{self.dir}/home")
        e.pop("SSLKEYLOGFILE", None)
        e.update(env or {})
        r = run([TLSTRACE, "proxy", "-l", "127.0.0.1:0", *args], env=e)
        self.assertGreaterEqual(r.returncode, 0, "killed by a signal")
        return r.returncode, r.stderr.decode()

    def test_secret_file_of_another_user_is_refused(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to give a file to another user")
        for opt, what in (("--keylog", "key log"), ("--pcap", "capture"), ("--events", "events file"),
                          ("--log", "trace log")):
            path = f"{self.dir}/theirs{opt}"
            with open(path, "w") as f:
                f.write("their content\n")
            os.chown(path, NOBODY, NOBODY)
            os.chmod(path, 0o600)
            args = [opt, path, *(["--log-secrets"] if opt in ("--events", "--log") else [])]
            rc, err = self.refused_start(*args)
            self.assertEqual(rc, 1, err)
            self.assertIn(f"refusing to write {what} {path}: it belongs to uid {NOBODY}", err)
            self.assertNotIn("listening on", err)
            with open(path) as f:  # untouched: not truncated (the pcap), not appended to
                self.assertEqual(f.read(), "their content\n")
            self.assertEqual((os.stat(path).st_uid, mode(path)), (NOBODY, 0o600))
        # Without --log-secrets the events and the trace hold no secret: another user's files are
        # written as before.
        out = self.outputs(len(self.proxies))
        for k in ("events", "log"):
            open(out[k], "w").close()
            os.chown(out[k], NOBODY, NOBODY)
        p = self.proxy()
        self.assertEqual(p.stop(), 0)
        for k in ("events", "log"):
            self.assertEqual((os.stat(out[k]).st_uid, mode(out[k])), (NOBODY, 0o666 & ~umask()))

    def make_ca(self, d):
        r = run([TLSTRACE, "ca", "init", "--ca-dir", d])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(mode(d), 0o700)
        self.assertEqual(mode(f"{d}/ca.key"), 0o600)

    def test_ca_directory_open_to_others_or_of_another_user_is_refused(self):
        d = f"{self.dir}/ca"
        self.make_ca(d)
        os.chmod(d, 0o755)
        for cmd in (["proxy", "-l", "127.0.0.1:0"], ["ca", "show"]):
            r = run([TLSTRACE, *cmd, "--ca-dir", d])
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f"refusing to use CA directory {d}: its mode is 0755, open to others; run `chmod 700 {d}`",
                          r.stderr.decode())
        os.chmod(d, 0o700)
        r = run([TLSTRACE, "ca", "show", "--ca-dir", d])
        self.assertEqual(r.returncode, 0, r.stderr)
        if os.geteuid() != 0:
            return
        os.chown(d, NOBODY, NOBODY)
        r = run([TLSTRACE, "ca", "show", "--ca-dir", d])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"refusing to use CA directory {d}: it belongs to uid {NOBODY}", r.stderr.decode())
        # An empty directory of another user does not become the CA's either: no key written there.
        e = f"{self.dir}/theirs-ca"
        os.mkdir(e)
        os.chown(e, NOBODY, NOBODY)
        r = run([TLSTRACE, "ca", "init", "--ca-dir", e])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(os.listdir(e), [])
        # An empty directory of ours, 0755, becomes the CA's and is narrowed (as before).
        o = f"{self.dir}/mine-ca"
        os.mkdir(o, 0o755)
        self.make_ca(o)

    def test_connect_timeout_longer_than_handshake_timeout_is_reported_at_start(self):
        srv = self.s_server("-www")
        p = self.proxy("--upstream-ca", self.pki.ca, "--connect-timeout", "30", "--handshake-timeout", "5")
        self.assertIn("--connect-timeout (30 s) is longer than --handshake-timeout (5 s), which also bounds the "
                      "upstream connect: a connect gets at most 5 s", p.proc.output())
        self.curl(p, srv)
        p.conn_closed(1)
        # Equal: nothing to say.
        q = self.proxy("--upstream-ca", self.pki.ca, "--connect-timeout", "5", "--handshake-timeout", "5")
        self.assertNotIn("--connect-timeout", q.proc.output())


# One line each, and what the error must say about it.
BROKEN = [
    ("missing label", '{"ts":"2026-11-18T11:06:40.000001Z","conn":1,"leg":"client","event":"tls.secret",'
                      '"client_random":"' + "ab" * 32 + '","secret":"' + "cd" * 32 + '"}',
     "tls.secret: field 'label' is missing"),
    ("label of the wrong type", '{"ts":"2026-11-18T11:06:40.000001Z","conn":1,"leg":"client","event":"tls.secret",'
                                '"label":["CLIENT_RANDOM"],"client_random":"' + "ab" * 32 + '","secret":"ab"}',
     "tls.secret: field 'label' is not a string"),
    ("a line injected through client_random",
     '{"ts":"2026-11-18T11:06:40.000001Z","conn":1,"leg":"client","event":"tls.secret","label":"CLIENT_RANDOM",'
     '"client_random":"ab\\nCLIENT_RANDOM ' + "00" * 32 + '","secret":"' + "cd" * 48 + '"}',
     "tls.secret: field 'client_random' is not 32 bytes of hex", ("keylog",)),  # (the text escapes it)
    ("conn as a string", '{"ts":"2026-11-18T11:06:40.000001Z","conn":"1","event":"conn.open"}',
     "field 'conn' is not a connection id"),
    ("event as a number", '{"ts":"2026-11-18T11:06:40.000001Z","conn":1,"event":5}',
     "field 'event' is not a string"),
    ("ts not a timestamp", '{"ts":"yesterday","conn":1,"event":"conn.open"}', "field 'ts' is not a timestamp"),
    ("leg unknown", '{"ts":"2026-11-18T11:06:40.000001Z","conn":1,"leg":"middle","event":"x.y"}',
     "field 'leg' is neither"),
    ("bytes as a string", '{"ts":"2026-11-18T11:06:40.000001Z","conn":1,"event":"conn.close","duration_ms":1,'
                          '"bytes_client_to_server":"9","bytes_server_to_client":0,"outcome":"ok"}',
     "conn.close: field 'bytes_client_to_server' is not an integer"),
    ("an array", '[{"ts":"2026-11-18T11:06:40.000001Z","conn":1,"event":"conn.open"}]', "not a JSON object"),
    ("a string", '"tls.secret"', "not a JSON object"),
    ("null", 'null', "not a JSON object"),
    ("not JSON", '{"ts":', "not JSON"),
    ("invalid UTF-8", b'{"ts":"2026-11-18T11:06:40.000001Z","conn":1,"event":"x.y","sni":"\xff\xfe"}',
     "not UTF-8 (byte 66)"),  # (the offset of \xff)
    ("overlong UTF-8", b'{"ts":"2026-11-18T11:06:40.000001Z","conn":1,"event":"x.y","sni":"\xc0\xaf"}',
     "not UTF-8"),
    ("a NUL byte", b'{"ts":"2026-11-18T11:06:40.000001Z","conn":1,"event":"x.y"}\x00', "not JSON"),
    ("conn beyond 64 bits", '{"ts":"2026-11-18T11:06:40.000001Z","conn":18446744073709551616,"event":"x.y"}',
     "field 'conn' is not a connection id"),
    ("conn 1e400", '{"ts":"2026-11-18T11:06:40.000001Z","conn":1e400,"event":"x.y"}',
     "field 'conn' is not a connection id"),
    ("conn negative", '{"ts":"2026-11-18T11:06:40.000001Z","conn":-1,"event":"x.y"}',
     "field 'conn' is not a connection id"),
    ("a byte count beyond 64 bits",
     '{"ts":"2026-11-18T11:06:40.000001Z","conn":1,"event":"conn.close","duration_ms":1,'
     '"bytes_client_to_server":99999999999999999999999,"bytes_server_to_client":0,"outcome":"ok"}',
     "conn.close: field 'bytes_client_to_server' is not an integer"),
    ("a content type beyond 8 bits", '{"ts":"2026-11-18T11:06:40.000001Z","conn":1,"leg":"upstream",'
                                     '"event":"tls.record","dir":"out","content_type":278,"version":"TLSv1.2",'
                                     '"length":5}',
     "tls.record: field 'content_type' is out of range"),
    ("dir neither in nor out", '{"ts":"2026-11-18T11:06:40.000001Z","conn":1,"leg":"upstream",'
                               '"event":"tls.record","dir":"up","content_type":22,"version":"TLSv1.2","length":5}',
     "tls.record: field 'dir' is neither"),
]


class Convert(ProxyTestCase):
    def recorded(self):
        """A real events file (and the live key log) from one TLS 1.3 and one TLS 1.2 connection."""
        srv = self.s_server("-www")
        p = self.proxy("--upstream-ca", self.pki.ca, "--trace", "all", "--log-secrets")
        for extra in ([], ["--tls-max", "1.2"]):  # (TLS 1.2: CLIENT_RANDOM lines too)
            r = run(["curl", "-sS", "--max-time", "10", "-x", f"http://{p.addr}", "--cacert", p.ca, *extra,
                     f"https://localhost:{srv.port}/"])
            self.assertEqual(r.returncode, 0, r.stderr)
        p.conn_closed(2)
        self.assertEqual(p.stop(), 0)
        with open(p.events, "rb") as f:
            lines = f.read().splitlines()
        with open(p.keylog) as f:
            live = sorted(f.read().splitlines())
        return lines, live

    def convert(self, path, *args):
        r = subprocess.run([TLSTRACE, "convert", path, *args], capture_output=True, timeout=30)
        self.assertGreaterEqual(r.returncode, 0, f"killed by signal {-r.returncode}")
        return r

    def test_each_broken_line_is_exit_2_with_file_and_line(self):
        lines, live = self.recorded()
        good = self.convert(self.write("good.jsonl", lines), "--to", "keylog")
        self.assertEqual(good.returncode, 0, good.stderr)
        self.assertEqual(sorted(good.stdout.decode().splitlines()), live)  # against OpenSSL's own key log
        at = len(lines) // 2
        for name, bad, message, *only in BROKEN:
            with self.subTest(name):
                bad = bad.encode() if isinstance(bad, str) else bad
                if name == "invalid UTF-8":
                    self.assertEqual(bad.index(b"\xff"), 66)
                path = self.write("broken.jsonl", lines[:at] + [bad] + lines[at:])
                for to in (only[0] if only else ("text", "keylog")):
                    r = self.convert(path, "--to", to)
                    err = r.stderr.decode(errors="replace")
                    self.assertEqual(r.returncode, 2, err)
                    self.assertRegex(err, rf"{re.escape(path)}:{at + 1}: ")  # the line number, 1-based
                    if message:
                        self.assertIn(f"{path}:{at + 1}: ", err)
                        self.assertIn(message, err)
                    self.assertIn(f"1 of {len(lines) + 1} lines are not events", err)
                    if to == "keylog":  # every good line still converted, nothing forged
                        self.assertEqual(sorted(r.stdout.decode().splitlines()), live)

    def test_cut_off_last_line(self):
        lines, live = self.recorded()
        last = lines[-1]
        path = self.write("cut.jsonl", lines[:-1] + [last[:len(last) // 2]], newline_at_end=False)
        r = self.convert(path)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 2, err)
        self.assertIn(f"{path}:{len(lines)}: not JSON", err)
        self.assertIn("its last line has no newline", err)

    def test_garbage_file(self):
        path = self.write("garbage.bin", [bytes(b for b in range(256) if b != 10) * 4, b"\x00" * 100, b"{" * 100000])
        r = self.convert(path)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"{path}:1: ", r.stderr.decode(errors="replace"))
        self.assertIn(f"{path}:3: not JSON", r.stderr.decode())

    def write(self, name, lines, newline_at_end=True):
        path = f"{self.dir}/{name}"
        with open(path, "wb") as f:
            f.write(b"\n".join(lines) + (b"\n" if newline_at_end else b""))
        return path
