"""`--format jsse` and `--format openssl` against the real tools' output of the same connection.

A Java 17 client (-Djavax.net.debug=ssl:handshake) and `openssl s_client -trace` connect through
the proxy in reverse mode; the proxy's client-leg trace of that connection is diffed line by line
with what the client printed. Both sides are masked the same way first (randoms, session ids, key
shares, signatures, Finished data, tickets, times, thread ids and source locations), and the point
of view is taken out of the block headers: the client prints "Produced ClientHello", the proxy,
the server of that leg, "Consuming ClientHello". A second comparison masks only times, threads and
source lines: it is the same connection, so every byte must match too. Scope: JSSE's message and
alert blocks (its other log lines, "Ignore unsupported extension" and the like, have no
counterpart in the proxy's events) and s_client's message lines (the proxy's message events
carry no record headers). Each fraction (matched lines over the longer side) must stay above a
floor; the differing lines are printed either way. TLS 1.3 (each tool's default) and TLS 1.2."""
import difflib
import os
import re
import shutil
import subprocess
import unittest

from harness import DEADLINE, ProxyTestCase, run

HERE = os.path.dirname(os.path.abspath(__file__))
JAVA_CLIENT = """
import javax.net.ssl.*;
import java.io.*;
public class Get {
  public static void main(String[] a) throws Exception {
    SSLSocketFactory f = (SSLSocketFactory) SSLSocketFactory.getDefault();
    try (SSLSocket s = (SSLSocket) f.createSocket("localhost", Integer.parseInt(a[0]))) {
      if (a.length > 1) s.setEnabledProtocols(new String[]{a[1]});
      s.startHandshake();
      OutputStream o = s.getOutputStream();
      o.write("GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n".getBytes());
      o.flush();
      InputStream i = s.getInputStream();
      byte[] b = new byte[4096];
      while (i.read(b) > 0) {}
    }
  }
}
"""

# The floors: the fractions measured when this test was written (jsse: 0.974 at TLS 1.3, 0.966 at
# TLS 1.2; openssl: 0.924 and 0.918), less a margin of about two points. What differs is whole
# and stable: blocks one side logs and the other does not (JSSE does not log the close_notify it
# sends; s_client prints its own ChangeCipherSpec, the proxy its own) and s_client's PEM copy of
# the certificate (the events keep no DER). A signature one byte longer or shorter changes no line
# count; a lost extension block, field name or dump line costs about half a point each.
JSSE_FLOOR = float(os.environ.get("TLSTRACE_JSSE_FLOOR", "0.95"))
OPENSSL_FLOOR = float(os.environ.get("TLSTRACE_OPENSSL_FLOOR", "0.90"))

JSSE_HEADER = re.compile(r"^javax\.net\.ssl\|(\w+)\|([^|]*)\|([^|]*)\|([^|]*)\|([^|]*)\|(.*)$")
JSSE_VERB = re.compile(r"^(Produced|Consuming|Received|Sent|Reproduced) (?:client |server )?(.*?)( stateless)?"
                       r"( post-handshake)?( handshake)?( message)?( \()?$")
HEX_DUMP = re.compile(r"^(\s*)[0-9A-Fa-f]{4}: ([0-9A-Fa-f]{2} ?)+.*$")
LONG_HEX = re.compile(r"\b[0-9A-Fa-f]{16,}\b")


def jsse_blocks(text, thread=None):
    """The handshake-message and alert blocks of a javax.net.debug log: a header line saying what
    was produced or consumed, and the lines up to the next header (one-line headers, such as
    "Consuming ChangeCipherSpec message", are left out), optionally only those of one thread name
    (the proxy puts its leg there)."""
    blocks, cur = [], None
    for line in text.splitlines():
        m = JSSE_HEADER.match(line)
        if m:
            cur = None
            if JSSE_VERB.match(m.group(6)) and (thread is None or m.group(3) == thread):
                cur = [line]
                blocks.append(cur)
            continue
        if cur is not None:
            cur.append(line)
    return [b for b in blocks if len(b) > 1]


def mask_jsse(blocks, values=True):
    """values=False keeps the bytes (the same connection: randoms, shares and signatures are the
    same on both sides) and masks only what differs by nature (times, threads, source lines)."""
    out = []
    for b in blocks:
        m = JSSE_HEADER.match(b[0])
        msg = m.group(6)
        v = JSSE_VERB.match(msg)
        if v:  # the point of view and JSSE's producer/consumer wording go; the message stays
            msg = v.group(2) + " message"
        out.append(f"javax.net.ssl|{m.group(1)}|*|*|*|*|{msg}")
        for line in b[1:]:
            line = line.rstrip()
            d = HEX_DUMP.match(line) if values else None
            if not values:
                line = re.sub(r'("ticket_age_add"\s*: )".*"', r'\1"<masked>"', line)
            elif d:
                line = d.group(1) + "<dump>"
            else:
                line = LONG_HEX.sub("<hex>", line)
            if values:
                line = re.sub(r'("ticket_age_add"\s*: )".*"', r'\1"<masked>"', line)
            out.append(line)
    return out


def s_client_lines(text):
    """The message lines of `s_client -trace`: record headers (which the proxy's message events do
    not carry) and s_client's own summary are left out."""
    out, inside = [], False
    for line in text.splitlines():
        if line in ("Sent Record", "Received Record"):
            inside = True
            continue
        if line in ("---", "closed") or line.startswith("CONNECTED(") or not line.strip():
            inside = line != "---" and inside
            continue
        if not inside:
            continue
        if line == "Header:" or re.match(r"^  (Version|Content Type|Length|Inner Content Type) = ", line):
            continue
        out.append(line)
    return out


def proxy_openssl_lines(text, leg="client"):
    """The message and alert lines of one leg of the proxy's `--format openssl` trace. Its
    "Sent/Received Message" headlines stand where s_client's record headers stand: both are left
    out; so are the proxy's own analysis events (tls.key_exchange, tcp.close, ...), which s_client
    has no counterpart for."""
    prefix = re.compile(r"^\[#\d+ (\w+)\] ?(.*)$")
    out, keep = [], False
    for line in text.splitlines():
        m = prefix.match(line)
        if not m or m.group(1) != leg:
            continue
        body = m.group(2)
        if re.match(r"^(Sent|Received) (Message|Alert)$", body):
            keep = True
            continue
        if re.match(r"^[a-z]+\.[a-z_.]+$", body):  # another event's headline
            keep = False
            continue
        if keep and body.strip():
            out.append(body)
    return out


def mask_openssl(lines, values=True):
    out = []
    for line in lines:
        if not values:
            out.append(line.rstrip())
            continue
        line = re.sub(r"(gmt_unix_time=0x)[0-9A-F]+", r"\1<masked>", line)
        line = re.sub(r"\(len=(\d+)\): [0-9A-F]+$", r"(len=\1): <hex>", line)
        line = re.sub(r"^(\s*)([0-9a-f]{4}) - .*$", r"\1<dump>", line)
        out.append(line.rstrip())
    return out


def compare(ours, theirs):
    """(fraction of identical lines, a unified diff): matched lines over the longer side."""
    sm = difflib.SequenceMatcher(None, theirs, ours, autojunk=False)
    same = sum(b.size for b in sm.get_matching_blocks())
    frac = same / max(len(ours), len(theirs), 1)
    diff = "\n".join(difflib.unified_diff(theirs, ours, "real tool", "tlstrace", n=0, lineterm=""))
    return frac, diff


class Renderers(ProxyTestCase):
    def report(self, name, frac, diff, floor):
        print(f"\n{name}: {frac:.3f} of lines identical (floor {floor})\n{diff}")
        self.assertGreaterEqual(frac, floor, f"{name}: {frac:.3f} < {floor}\n{diff}")

    @unittest.skipUnless(shutil.which("java") and shutil.which("javac") and shutil.which("keytool"), "needs Java")
    def test_jsse_format_matches_java_debug(self):
        self.java_case()

    @unittest.skipUnless(shutil.which("java") and shutil.which("javac") and shutil.which("keytool"), "needs Java")
    def test_jsse_format_matches_java_debug_tls12(self):
        self.java_case("TLSv1.2")

    def java_case(self, protocol=None):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca,
                       "--format", "jsse")
        with open(f"{self.dir}/Get.java", "w") as f:
            f.write(JAVA_CLIENT)
        r = run(["javac", "-d", self.dir, f"{self.dir}/Get.java"], timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        store = f"{self.dir}/trust.p12"
        r = run(["keytool", "-importcert", "-noprompt", "-storepass", "changeit", "-storetype", "PKCS12",
                 "-alias", "tlstrace", "-file", p.ca, "-keystore", store], timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run(["java", f"-Djavax.net.ssl.trustStore={store}", "-Djavax.net.ssl.trustStorePassword=changeit",
                 "-Djavax.net.debug=ssl:handshake", "-cp", self.dir, "Get", str(p.port), *([protocol] if protocol else [])],
                timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace")[-3000:])
        p.conn_closed()
        with open(p.trace) as f:
            ours = jsse_blocks(f.read(), thread="client")
        theirs = jsse_blocks(r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace"))
        self.assertGreater(sum(map(len, theirs)), 50, "the JVM printed no handshake messages")
        name = f"jsse {protocol or 'default (TLS 1.3)'}"
        frac, diff = compare(mask_jsse(ours), mask_jsse(theirs))
        self.report(name, frac, diff, JSSE_FLOOR)
        frac, diff = compare(mask_jsse(ours, values=False), mask_jsse(theirs, values=False))
        self.report(name + ", bytes unmasked", frac, diff, JSSE_FLOOR)

    def test_openssl_format_matches_s_client_trace(self):
        self.s_client_case()

    def test_openssl_format_matches_s_client_trace_tls12(self):
        self.s_client_case("-tls1_2")

    def s_client_case(self, *options):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca,
                       "--format", "openssl")
        # -ign_eof: s_client reads until the server closes, so it sees the tickets and the
        # close_notify the proxy sends after the response, as the proxy does.
        r = run(["openssl", "s_client", "-trace", "-ign_eof", "-connect", p.addr, "-servername", "localhost",
                 "-CAfile", p.ca, *options],
                input=b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n", timeout=DEADLINE)
        self.assertIn(b"Verify return code: 0 (ok)", r.stdout)
        p.conn_closed()
        with open(p.trace) as f:
            ours = proxy_openssl_lines(f.read())
        theirs = s_client_lines(r.stdout.decode(errors="replace"))
        self.assertGreater(len(theirs), 50, "s_client printed no handshake messages")
        frac, diff = compare(mask_openssl(ours), mask_openssl(theirs))
        name = "openssl " + (" ".join(options) or "default (TLS 1.3)")
        self.report(name, frac, diff, OPENSSL_FLOOR)
        frac, diff = compare(mask_openssl(ours, values=False), mask_openssl(theirs, values=False))
        self.report(name + ", bytes unmasked", frac, diff, OPENSSL_FLOOR)


if __name__ == "__main__":
    unittest.main()
