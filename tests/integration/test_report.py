"""`tlstrace report` in a real browser: Debian's headless Chromium opens the generated page and the
tests read its DOM (--dump-dom). The truth for each ladder is the peers' own view of the same
connection: `openssl s_client -msg` (the client leg) and `openssl s_server -msg` (the upstream
leg) print every handshake message, ChangeCipherSpec and alert they sent and received, with its
length. A screenshot of every page is kept under build/test-artifacts/report/."""
import base64
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from html.parser import HTMLParser

import harness
from harness import DEADLINE, ProxyTestCase, run

CHROMIUM = shutil.which("chromium")
ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(harness.TLSTRACE)), "test-artifacts", "report")
MSG = re.compile(r"^(>>>|<<<) (?:TLS|SSL) [\d.]+, (Handshake|ChangeCipherSpec|Alert) \[length ([0-9a-f]+)\](?:, (.*))?$")


def peer_messages(text):
    """[(dir, kind, length, what)] from -msg output: dir '>>>' sent, '<<<' received."""
    out = []
    for line in text.splitlines():
        m = MSG.match(line.strip())
        if m:
            out.append((m.group(1), m.group(2), int(m.group(3), 16), (m.group(4) or "").strip()))
    return out


def from_client_hello(msgs):
    """s_server's log also holds the harness's port probe (a bare TCP connection it answers with a
    decode_error alert): the proxied connection starts at the ClientHello it received."""
    for i, m in enumerate(msgs):
        if m[0] == "<<<" and m[3] == "ClientHello":
            return msgs[i:]
    return []


class Dom(HTMLParser):
    """The elements of a dumped DOM as (tag, attrs) in document order."""

    def __init__(self, html):
        super().__init__()
        self.elements = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def having(self, cls, **data):
        res = []
        for tag, a in self.elements:
            if cls in (a.get("class") or "").split() and all(a.get(f"data-{k}") == v for k, v in data.items()):
                res.append(a)
        return res

    def body(self):
        return next(a for t, a in self.elements if t == "body")


class Cdp:
    """Headless Chromium kept open on a page and driven over --remote-debugging-pipe (the DevTools
    protocol as NUL-terminated JSON on the browser's fds 3 and 4): the live page stays connected
    while the test makes traffic, and the test reads its DOM as often as it needs."""

    def __init__(self, case, url):
        self.case, self.url, self.next_id, self.buf = case, url, 0, b""

    def __enter__(self):
        os.makedirs(ARTIFACTS, exist_ok=True)
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()

        def fds():  # (the browser reads commands on fd 3 and writes answers to fd 4)
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)
        self.proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                      "--remote-debugging-pipe", f"--user-data-dir={tempfile.mkdtemp(dir=self.case.dir)}",
                                      "--window-size=1400,2400", self.url], preexec_fn=fds, pass_fds=(3, 4),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(to_r)
        os.close(from_w)
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        return self

    def __exit__(self, *exc):
        try:
            self.call("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self.to_w)
        os.close(self.from_r)

    def call(self, method, session=None, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        end = time.time() + DEADLINE
        while time.time() < end:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self.next_id:
                    if "error" in answer:
                        raise AssertionError(f"{method}: {answer['error']}")
                    return answer["result"]
            ready, _, _ = select.select([self.from_r], [], [], max(0.0, end - time.time()))
            if ready:
                chunk = os.read(self.from_r, 1 << 20)
                if not chunk:
                    break
                self.buf += chunk
        raise AssertionError(f"no answer from chromium to {method}")

    def eval(self, expression):
        r = self.call("Runtime.evaluate", self.session, expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression, what):
        end = time.time() + DEADLINE
        while time.time() < end:
            if self.eval(f"(() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }})()"):
                return
            time.sleep(0.1)
        self.case.fail(f"the page never showed {what}: {self.eval('document.body.innerText')[:2000]}")

    def dom(self):
        return Dom(self.eval("document.documentElement.outerHTML"))

    def screenshot(self, name):
        png = self.call("Page.captureScreenshot", self.session, format="png")["data"]
        with open(os.path.join(ARTIFACTS, name), "wb") as f:
            f.write(base64.b64decode(png))


class BrowserCase(ProxyTestCase):
    def browser(self, url, shot=None, size="1400,2400", budget=True):
        """The page's DOM after its scripts ran; with `shot`, a screenshot kept as an artifact
        (taken by a second browser at the same time)."""
        os.makedirs(ARTIFACTS, exist_ok=True)

        def cmd(*what):
            profile = tempfile.mkdtemp(dir=self.dir)
            # (a virtual-time budget: the dump waits for the page's own asynchronous work, inflating
            # a large report's data, and stops as soon as nothing is left to do; not for the live page,
            # whose event stream never ends: its first data is in the page itself)
            return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    *(["--virtual-time-budget=10000"] if budget else []), f"--user-data-dir={profile}",
                    f"--window-size={size}", *what, url]
        shooter = None
        if shot:
            shooter = subprocess.Popen(cmd(f"--screenshot={os.path.join(ARTIFACTS, shot)}"),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            r = run(cmd("--dump-dom"), timeout=60)
        finally:
            if shooter:
                try:
                    self.assertEqual(shooter.wait(timeout=60), 0, "chromium --screenshot failed")
                except subprocess.TimeoutExpired:
                    os.kill(shooter.pid, signal.SIGKILL)
                    shooter.wait()
                    raise
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace")[-2000:])
        return Dom(r.stdout.decode())

    def report(self, events, name="report.html", *extra):
        out = os.path.join(self.dir, name)
        r = run([harness.TLSTRACE, "report", *events, "-o", out, *extra], timeout=60 * harness.SANITIZER_SLOWDOWN)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return out

    def s_client(self, proxy, port, *extra):
        """One HTTP request through the proxy with `openssl s_client -msg`; its output."""
        r = run(["openssl", "s_client", "-proxy", proxy.addr, "-connect", f"localhost:{port}", "-servername",
                 "localhost", "-CAfile", proxy.ca, "-msg", "-ign_eof", *extra],
                input=b"GET / HTTP/1.0\r\n\r\n", timeout=DEADLINE)
        return r.stdout.decode(errors="replace")

    def assertLadderMatches(self, dom, leg, peer_msgs, stopped_at=None):
        """The arrows of `leg` against the peer's -msg lines: the same handshake messages and
        ChangeCipherSpecs in the same order and direction, the same lengths (-msg counts the 4-byte
        handshake header), the same alerts."""
        got = [(a["data-dir"], a["data-type"], int(a["data-length"])) for a in dom.having("msg", leg=leg)]
        sent_by_peer, other = "in", "out"  # what the peer sent, the proxy received on that leg
        want = []
        for d, kind, length, what in peer_msgs:
            direction = sent_by_peer if d == ">>>" else other
            if kind == "Handshake":
                want.append((direction, what, length - 4))
            elif kind == "ChangeCipherSpec":
                want.append((direction, "ChangeCipherSpec", None))
        if stopped_at:  # the proxy's handshake failed there: what the peer sent after it was never read
            want = want[:[i for i, w in enumerate(want) if w[:2] == ("in", stopped_at)][0] + 1]
        # -msg names a HelloRetryRequest "ServerHello" (it is one on the wire, RFC 8446 4.1.4).
        # A TLS 1.3 peer drops a ChangeCipherSpec it receives without a -msg line (RFC 8446 5: it
        # is there for middleboxes only); the ones it sends it prints.
        tls13 = any(a["data-type"] == "EncryptedExtensions" for a in dom.having("msg", leg=leg))
        got_cmp = [(d, "ServerHello" if t == "HelloRetryRequest" else t, None if t == "ChangeCipherSpec" else n)
                   for d, t, n in got if not (tls13 and t == "ChangeCipherSpec" and d == other)]
        self.assertEqual(got_cmp, want, f"{leg} leg arrows vs the peer's -msg")
        alerts = [(a["data-dir"], a["data-alert"]) for a in dom.having("alert", leg=leg) if "data-alert" in a]
        want_alerts = [(sent_by_peer if d == ">>>" else other, what) for d, kind, _, what in peer_msgs if kind == "Alert"]
        self.assertEqual(alerts, want_alerts, f"{leg} leg alerts vs the peer's -msg")
        return got


@unittest.skipUnless(CHROMIUM, "chromium is not installed (tools/deps.sh --test installs it)")
class Report(BrowserCase):
    def test_ladder_arrows_match_both_peers_own_message_logs(self):
        s = self.s_server("-msg")
        p = self.proxy("--upstream-ca", self.pki.ca)
        client_out = self.s_client(p, s.port)
        p.conn_closed(1)
        time.sleep(0.2)  # s_server writes its last lines (the close_notify) after the proxy's
        out = self.report([p.events])
        dom = self.browser(f"file://{out}#open=all", "ladder_tls13.png")
        self.assertEqual(len(dom.having("ladder")), 1)
        client = self.assertLadderMatches(dom, "client", peer_messages(client_out))
        upstream = self.assertLadderMatches(dom, "upstream", from_client_hello(peer_messages(s.proc.output())))
        self.assertGreaterEqual(len(client), 7)  # a whole TLS 1.3 handshake, both legs
        self.assertGreaterEqual(len(upstream), 7)
        self.assertEqual(dom.having("fail"), [])
        self.assertLess(float(dom.body()["data-render-ms"]), 15000)  # a hang guard, not a speed target

    def test_failure_marker_where_the_upstream_certificate_is_refused(self):
        # The proxy does not trust the upstream's private CA (no --upstream-ca): the upstream
        # handshake fails at the server's Certificate and the client gets handshake_failure.
        s = self.s_server("-msg")
        p = self.proxy()
        client_out = self.s_client(p, s.port)
        p.conn_closed(1)
        time.sleep(0.2)
        out = self.report([p.events])
        dom = self.browser(f"file://{out}#open=all", "failure_untrusted_upstream.png")
        self.assertLadderMatches(dom, "client", peer_messages(client_out))
        server = from_client_hello(peer_messages(s.proc.output()))
        self.assertLadderMatches(dom, "upstream", server, stopped_at="Certificate")
        # The server did send the rest of its flight; the ladder stops where the proxy refused.
        self.assertIn("CertificateVerify", [m[3] for m in server if m[0] == ">>>"])
        fails = dom.having("fail", leg="upstream")
        self.assertEqual(len(fails), 1, dom.having("fail"))
        self.assertIn("upstream_certificate_untrusted", fails[0]["data-failure"])
        # The server saw the proxy's fatal alert: the marker sits at that point of the ladder.
        server_alerts = [m for m in from_client_hello(peer_messages(s.proc.output())) if m[1] == "Alert"]
        self.assertTrue(server_alerts and server_alerts[0][0] == "<<<" and server_alerts[0][3].startswith("fatal"))
        rows = dom.having("row")
        self.assertEqual(len(rows), 1)
        self.assertIn("failed", rows[0]["class"].split())

    def test_one_ladder_per_connection_and_filters_from_the_url(self):
        s = self.s_server("-msg")
        p = self.proxy("--upstream-ca", self.pki.ca)
        versions = []
        for extra in ((), ("-tls1_2",), ()):
            text = self.s_client(p, s.port, *extra)
            m = re.search(r"Protocol\s*:\s*(TLSv1\.\d)", text) or re.search(r"New, (TLSv1\.\d)", text)
            self.assertTrue(m, text[-2000:])
            versions.append(m.group(1))
        bad = harness.free_port()  # nothing listens there: the connection fails
        self.s_client(p, bad)
        p.conn_closed(4)
        out = self.report([p.events])
        dom = self.browser(f"file://{out}#open=all", "all_open.png")
        self.assertEqual(len(dom.having("row")), 4)
        self.assertEqual(len(dom.having("ladder")), 4)
        # Filters read from the URL: the rows whose client leg s_client saw as TLS 1.2.
        dom = self.browser(f"file://{out}#version=TLSv1.2&open=all")
        rows = dom.having("row")
        self.assertEqual(len(rows), versions.count("TLSv1.2"))
        self.assertEqual([r["data-id"] for r in rows], [str(i + 1) for i, v in enumerate(versions) if v == "TLSv1.2"])
        dom = self.browser(f"file://{out}#outcome=failed")
        self.assertEqual([r["data-id"] for r in dom.having("row")], ["4"])
        dom = self.browser(f"file://{out}#filter=no-such-host.example")
        self.assertEqual(dom.having("row"), [])

    def test_thousand_connections_stay_under_two_megabytes(self):
        # Real events of one connection, replicated 1,000 times with every per-connection value a
        # real run would change (randoms, session ids, key shares, signatures, tickets, Finished)
        # made fresh, so that only what real traffic shares can be stored once.
        if os.environ.get("TLSTRACE_SANITIZER_BUILD") == "thread":
            # `report` runs on one thread: ThreadSanitizer has nothing to find in it and makes its
            # 28 MB of input take minutes. The ordinary and the ASan passes run this test.
            self.skipTest("single-threaded work; run by the other passes")
        s = self.s_server()
        p = self.proxy("--upstream-ca", self.pki.ca)
        self.s_client(p, s.port)
        p.conn_closed(1)
        with open(p.events) as f:
            lines = [json.loads(x) for x in f if x.strip()]
        rng = random.Random(12)
        fresh_keys = {"random", "session_id", "public", "signature", "ticket", "verify_data", "client_random",
                      "server_public", "client_public", "nonce", "binders"}

        def refresh(v, key=None):  # (a certificate chain is the same on every connection to a server)
            if isinstance(v, dict):
                return {k: x if k == "chain" else refresh(x, k) for k, x in v.items()}
            if isinstance(v, list):
                return [refresh(x, key) for x in v]
            if isinstance(v, str) and key in fresh_keys and re.fullmatch(r"[0-9a-f]+", v):
                return f"{rng.getrandbits(4 * len(v)):0{len(v)}x}"
            return v

        big = os.path.join(self.dir, "thousand.jsonl")
        with open(big, "w") as f:
            for n in range(1, 1001):
                for e in lines:
                    e2 = refresh(e)
                    e2["conn"] = n
                    f.write(json.dumps(e2, separators=(",", ":")) + "\n")
        t0 = time.monotonic()
        out = self.report([big], "thousand.html")
        took = time.monotonic() - t0
        size = os.path.getsize(out)
        print(f"1,000 connections: events {os.path.getsize(big)} bytes, report {size} bytes in {took:.2f} s",
              file=sys.stderr)
        self.assertLessEqual(size, 2 * 1024 * 1024)
        dom = self.browser(f"file://{out}", "thousand.png", size="1400,1200")
        self.assertEqual(len(dom.having("row")), 1000)
        ms = float(dom.body()["data-render-ms"])
        print(f"1,000 connections: the page's script ran in {ms} ms", file=sys.stderr)
        # Not a speed target (the machine may be busy with other tests): a bound that only a
        # per-row cost growing with the page (quadratic rendering) would cross; ~300 ms when quiet.
        self.assertLess(ms, 15000)


@unittest.skipUnless(CHROMIUM, "chromium is not installed (tools/deps.sh --test installs it)")
class LivePage(BrowserCase):
    def ui_addr(self, p):
        end = time.time() + DEADLINE
        while time.time() < end:
            m = re.search(r"live page: http://([^/\s]+)/", p.proc.output())
            if m:
                return m.group(1)
            time.sleep(0.05)
        self.fail("no live page line: " + p.proc.output())

    def test_live_page_shows_the_connections_that_happened(self):
        s = self.s_server("-msg")
        p = self.proxy("--upstream-ca", self.pki.ca, "--ui", "127.0.0.1:0")
        addr = self.ui_addr(p)
        client_out = self.s_client(p, s.port)
        self.s_client(p, harness.free_port())  # refused upstream: a failed connection
        p.conn_closed(2)
        # #open=all: the page fetches every connection's events (GET /conn/ID) and draws its ladder.
        with Cdp(self, f"http://{addr}/#open=all") as b:
            b.wait_for("document.querySelectorAll('svg.ladder').length === 2", "two ladders")
            dom = b.dom()
            b.screenshot("live.png")
        self.assertEqual(dom.body()["data-mode"], "live")
        self.assertEqual([r["data-id"] for r in dom.having("row")], ["1", "2"])
        self.assertLadderMatches(dom, "client", peer_messages(client_out))
        self.assertEqual(len(dom.having("row", id="2")), 1)
        self.assertIn("failed", dom.having("row", id="2")[0]["class"].split())
        # The stream: the page's updates, as a browser gets them: rows, not events.
        host, port = addr.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as c:
            c.sendall(f"GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n".encode())
            data = b""
            while b"event: conn" not in data or not data.endswith(b"\n\n"):
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
        self.assertIn(b"Content-Type: text/event-stream", data)
        first = json.loads(data.split(b"event: conn\ndata: ", 1)[1].split(b"\n", 1)[0])
        self.assertEqual(sorted(c["id"] for c in first["conns"]), [1, 2])
        self.assertTrue(all("e" not in c and c["n"] > 0 for c in first["conns"]), first)
        # A connection whole: its events, the number the row said.
        r = run(["curl", "-s", f"http://{addr}/conn/1"])
        whole = json.loads(r.stdout)["conns"][0]
        self.assertEqual(len(whole["e"]), next(c["n"] for c in first["conns"] if c["id"] == 1))

    def test_live_page_follows_connections_as_they_happen_and_loads_one_when_clicked(self):
        s = self.s_server("-msg")
        p = self.proxy("--upstream-ca", self.pki.ca, "--ui", "127.0.0.1:0")
        addr = self.ui_addr(p)
        with Cdp(self, f"http://{addr}/") as b:
            b.wait_for("document.querySelector('#live-state').textContent === '(connected)'", "the stream")
            self.assertEqual(b.eval("document.querySelectorAll('tr.row').length"), 0)
            client_out = self.s_client(p, s.port)
            self.s_client(p, harness.free_port())  # refused upstream: a failed connection
            p.conn_closed(2)
            # The rows came over the stream (the page was loaded before the connections).
            b.wait_for("[...document.querySelectorAll('tr.row')].map((r) => r.className).join() === "
                       "'row ok,row failed'", "rows 1 (ok) and 2 (failed)")
            self.assertEqual(b.eval("document.querySelectorAll('svg.ladder').length"), 0)  # not fetched yet
            b.eval("document.querySelector('tr.row[data-id=\"1\"]').click()")
            b.wait_for("document.querySelectorAll('svg.ladder').length === 1", "the clicked connection's ladder")
            dom = b.dom()
            b.screenshot("live_clicked.png")
        self.assertEqual(dom.having("ladder")[0]["data-conn"], "0:1")
        self.assertLadderMatches(dom, "client", peer_messages(client_out))
        self.assertLadderMatches(dom, "upstream", from_client_hello(peer_messages(s.proc.output())))
        self.assertEqual(dom.having("fail"), [])

    def test_live_page_refuses_a_foreign_host_and_a_remote_address(self):
        p = self.proxy("--ui", "127.0.0.1:0")
        addr = self.ui_addr(p)
        r = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: attacker.example", f"http://{addr}/"])
        self.assertEqual(r.stdout.decode(), "403")
        r = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{addr}/"])
        self.assertEqual(r.stdout.decode(), "200")
        # A connection's events: the same Host check; unknown and malformed ids are not found.
        r = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: attacker.example",
                 f"http://{addr}/conn/1"])
        self.assertEqual(r.stdout.decode(), "403")
        for target in ("/conn/1", "/conn/x1", "/conn/", "/conn/1/2"):
            r = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{addr}{target}"])
            self.assertEqual(r.stdout.decode(), "404", target)
        r = run([harness.TLSTRACE, "proxy", "-l", "127.0.0.1:0", "--ui", "0.0.0.0:0"])
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"--allow-remote", r.stderr)


if __name__ == "__main__":
    unittest.main()
