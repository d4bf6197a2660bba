"""Outputs that fail, fill up, stall or rotate (issue [8] items 1 and 6): the proxy never dies of a
reader that went away, never freezes on one that stopped reading, never glues a line onto a torn
one, says once per output what it lost, exits 3 when anything was lost, and reopens its files on
SIGHUP without losing a line. The clients' own view (their requests answered by openssl
s_server, their own key log) and the files as the kernel left them are the independent sources."""
import json
import os
import resource
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

from harness import DEADLINE, TLSTRACE, ProxyTestCase, of, read_all, run

GRACE = 5  # the proxy's bound on flushing outputs at exit (docs/cli.md)


class Run:
    """tlstrace with the outputs a test gives it (the harness's Tlstrace always adds its own files),
    stderr to a file; started in a session of its own and ended by its PID."""

    def __init__(self, d, name, args, stdout=subprocess.DEVNULL, preexec=None, cmd=None, pidfile=None):
        self.err_path = f"{d}/{name}.stderr"
        env = dict(os.environ, TLSTRACE_HOME=f"{d}/home")
        env.pop("SSLKEYLOGFILE", None)
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen(cmd or [TLSTRACE, "proxy", "-l", "127.0.0.1:0", *args], stdout=stdout,
                                  stderr=self.err, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                  preexec_fn=preexec)
        self.pid = self.p.pid
        self.port = None
        end = time.time() + DEADLINE
        while time.time() < end and self.port is None:
            for line in self.stderr().splitlines():
                if " listening on " in line:
                    self.port = int(line.split(" listening on ")[1].split()[0].rsplit(":", 1)[1])
            if self.port is None:
                if self.p.poll() is not None:
                    raise RuntimeError("tlstrace exited: " + self.stderr())
                time.sleep(0.02)
        if self.port is None:
            raise TimeoutError("no port: " + self.stderr())
        if pidfile:  # started by a wrapper: signals go to tlstrace itself
            while not os.path.exists(pidfile) or not read(pidfile).strip():
                time.sleep(0.02)
            self.pid = int(read(pidfile))
        self.ca = f"{d}/home/ca.pem"

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait(self, timeout=DEADLINE):
        return self.p.wait(timeout=timeout)

    def end(self):
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
            self.p.wait(timeout=DEADLINE)
        self.err.close()


def read(path):
    with open(path) as f:
        return f.read()


def request(port, ca, origin_port, keylog=None):
    """One HTTPS request through the proxy (CONNECT), answered by s_server -www: True when the
    origin's page came back."""
    ctx = ssl.create_default_context(cafile=ca)
    if keylog:
        ctx.keylog_filename = keylog
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
        s.sendall(f"CONNECT localhost:{origin_port} HTTP/1.1\r\n\r\n".encode())
        if not s.recv(1024).startswith(b"HTTP/1.1 200"):
            return False
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return b"200 ok" in read_all(t)


def json_lines(path):
    """Every line of the file: each must be whole (ends in a newline) and one JSON object."""
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return []
    assert data.endswith(b"\n"), f"{path}: torn last line {data[-80:]!r}"
    return [json.loads(line) for line in data.decode().splitlines()]


def lost_count(stderr, what, path):
    """The exit summary's 'lost: <what> <path>: N <unit> lost (...)' number, or None."""
    for line in stderr.splitlines():
        head = f"lost: {what} {path}: "
        if head in line:
            return int(line.split(head)[1].split()[0])
    return None


class Outputs(ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.origin = self.s_server()
        self.runs = []

    def tearDown(self):
        for r in self.runs:
            r.end()
        super().tearDown()

    def start(self, name, *args, **kw):
        r = Run(self.dir, name, ["--upstream-ca", self.pki.ca, *args], **kw)
        self.runs.append(r)
        return r

    def req(self, r, keylog=None):
        return request(r.port, r.ca, self.origin.port, keylog)

    def assert_refused(self, port):
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()

    # --- a reader that goes away -------------------------------------------------------------

    def run_into_head(self, *args):
        head = subprocess.Popen(["head", "-n1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            r = self.start("head", "--events", "-", *args, stdout=head.stdin)
        finally:
            head.stdin.close()  # ours: only tlstrace holds the pipe now
        self.assertTrue(self.req(r))
        first = head.stdout.readline()
        head.wait(timeout=DEADLINE)
        head.stdout.close()
        # The line head got is whole: the listener's tcp.listen at start (conn.open without the tcp category).
        self.assertIn(json.loads(first)["event"], ("tcp.listen", "conn.open"))
        return r

    def test_events_to_stdout_into_head_continue(self):
        r = self.run_into_head("--on-output-error", "continue")
        # head is gone: the next writes meet EPIPE; the proxy neither dies nor stops serving.
        for _ in range(5):
            self.assertTrue(self.req(r))
            time.sleep(0.05)
        self.assertIsNone(r.p.poll(), r.stderr())
        r.signal(signal.SIGTERM)
        self.assertEqual(r.wait(), 3, r.stderr())
        err = r.stderr()
        self.assertEqual(err.count("cannot write events file stdout: Broken pipe"), 1, err)
        self.assertGreater(lost_count(err, "events file", "stdout") or 0, 0, err)
        self.assertIn("6 connections: 6 ok", err)  # the exit summary saw every connection

    def test_events_to_stdout_into_head_stop(self):
        r = self.run_into_head()
        self.assertEqual(r.wait(), 3, r.stderr())  # not -SIGPIPE: stopped on its own, gracefully
        err = r.stderr()
        self.assertIn("cannot write events file stdout: Broken pipe", err)
        self.assertIn("stopping: an output failed", err)
        self.assert_refused(r.port)

    # --- a full device -----------------------------------------------------------------------

    def test_dev_full_stops_the_proxy(self):
        for opt, what in (("--events", "events file"), ("--keylog", "key log"), ("--pcap", "capture")):
            with self.subTest(opt):
                r = self.start(what.replace(" ", "-"), opt, "/dev/full")
                try:
                    self.req(r)  # may meet a proxy already stopping (the capture fails at its header)
                except OSError:
                    pass
                self.assertEqual(r.wait(), 3, r.stderr())
                err = r.stderr()
                self.assertEqual(err.count(f"cannot write {what} /dev/full: No space left on device"), 1, err)
                self.assertIn("stopping: an output failed (--on-output-error stop", err)
                self.assertGreater(lost_count(err, what, "/dev/full") or 0, 0, err)
                self.assert_refused(r.port)

    def test_dev_full_keylog_continue_counts_every_line(self):
        events = f"{self.dir}/events.jsonl"
        client_keys = f"{self.dir}/client.keys"
        r = self.start("keylog-continue", "--keylog", "/dev/full", "--events", events, "--on-output-error",
                       "continue")
        for _ in range(4):
            self.assertTrue(self.req(r, keylog=client_keys))
        r.signal(signal.SIGTERM)
        self.assertEqual(r.wait(), 3, r.stderr())
        # What the proxy should have written: the client leg's lines are the client's own (Python's
        # key log), and the upstream leg has as many (TLS 1.3 both ways: the same five labels).
        with open(client_keys) as f:
            client_lines = [l for l in f if l.strip() and not l.startswith("#")]
        expected = 2 * len(client_lines)
        err = r.stderr()
        self.assertEqual(lost_count(err, "key log", "/dev/full"), expected, err)
        drops = of(json_lines(events), "trace.dropped")
        self.assertTrue(drops, "no trace.dropped in the events file")
        self.assertEqual({d["output"] for d in drops}, {"keylog"})
        self.assertEqual(drops[-1]["total"], expected)
        self.assertEqual(sum(d["lost"] for d in drops), expected)
        self.assertEqual(drops[-1]["error"], "No space left on device")
        self.check_events_file(events)

    # --- a file that fills up ----------------------------------------------------------------

    def check_filled(self, r, path, errtext):
        """After requests served while the events file filled up: one message, a loss count."""
        r.signal(signal.SIGTERM)
        self.assertEqual(r.wait(), 3, r.stderr())
        err = r.stderr()
        self.assertEqual(err.count(f"cannot write events file {path}: {errtext}"), 1, err)
        lost = lost_count(err, "events file", path)
        self.assertIsNotNone(lost, err)
        return err, lost

    def filled_run_checks(self, evs, lost, n):
        """Every line whole JSON (json_lines), and the file's lines plus the counted losses are
        every event of the n connections."""
        self.assertGreater(lost, 0)
        evs = [e for e in evs if e["event"] != "tcp.listen"]  # the listener's (conn 0), written first
        per_conn = len([e for e in evs if e["conn"] == 1])
        closes = of(evs, "conn.close")
        self.assertLess(len(closes), n)  # it did fill up
        # Connections of one shape (the same client, origin and TLS 1.3 exchange) make the same
        # events each: what the file holds and what was counted lost add up to all of them.
        self.assertTrue(all(len([e for e in evs if e["conn"] == c["conn"]]) == per_conn for c in closes))
        self.assertEqual(len(evs) + lost, n * per_conn)

    def test_file_size_limit_every_line_valid_losses_counted(self):
        events = f"{self.dir}/limited.jsonl"
        limit = 48 * 1024

        def fsize():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        r = self.start("fsize", "--events", events, "--on-output-error", "continue", preexec=fsize)
        n = 24
        for _ in range(n):
            self.assertTrue(self.req(r))
        self.assertIsNone(r.p.poll(), "killed by SIGXFSZ? " + r.stderr())
        err, lost = self.check_filled(r, events, "File too large")
        self.assertLessEqual(os.path.getsize(events), limit)
        self.filled_run_checks(json_lines(events), lost, n)
        self.check_events_file(events)

    def test_small_filesystem_fills_every_line_valid_losses_counted(self):
        # A 64 KiB tmpfs in a mount namespace of its own: a real ENOSPC.
        probe = run(["unshare", "-m", "--propagation", "private", "true"])
        if probe.returncode != 0:
            self.skipTest("no mount namespace here: " + probe.stderr.decode())
        mnt, out = f"{self.dir}/small", f"{self.dir}/copied.jsonl"
        os.mkdir(mnt)
        pidfile = f"{self.dir}/tlstrace.pid"
        events = f"{mnt}/events.jsonl"
        script = (f"mount -t tmpfs -o size=64k tmpfs {mnt} || exit 9; "
                  f"{TLSTRACE} proxy -l 127.0.0.1:0 --upstream-ca {self.pki.ca} --events {events} "
                  f"--on-output-error continue & echo $! > {pidfile}; wait $!; rc=$?; cp {events} {out}; exit $rc")
        r = Run(self.dir, "tmpfs", [], cmd=["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                pidfile=pidfile)
        self.runs.append(r)
        n = 30
        for _ in range(n):
            self.assertTrue(self.req(r))
        err, lost = self.check_filled(r, events, "No space left on device")
        self.filled_run_checks(json_lines(out), lost, n)
        self.check_events_file(out)

    # --- FIFOs -------------------------------------------------------------------------------

    def test_fifo_without_reader_does_not_block_and_exit_is_bounded(self):
        fifo = f"{self.dir}/events.fifo"
        os.mkfifo(fifo)
        r = self.start("fifo", "--events", fifo)  # Run waits for the listening line: start-up went on
        self.assertIn(f"events file {fifo} is a FIFO with no reader", r.stderr())
        for _ in range(5):
            self.assertTrue(self.req(r))
        t0 = time.time()
        r.signal(signal.SIGTERM)
        self.assertEqual(r.wait(), 3, r.stderr())
        self.assertLess(time.time() - t0, GRACE + 3)
        self.assertGreater(lost_count(r.stderr(), "events file", fifo) or 0, 0, r.stderr())

    def test_fifo_reader_that_comes_later_gets_every_event(self):
        fifo, got = f"{self.dir}/late.fifo", f"{self.dir}/late.jsonl"
        os.mkfifo(fifo)
        r = self.start("late", "--events", fifo)
        for _ in range(3):
            self.assertTrue(self.req(r))
        with open(got, "wb") as out:
            reader = subprocess.Popen(["cat", fifo], stdout=out)
        try:
            for _ in range(3):
                self.assertTrue(self.req(r))
            r.signal(signal.SIGTERM)
            self.assertEqual(r.wait(), 0, r.stderr())
            reader.wait(timeout=DEADLINE)
        finally:
            if reader.poll() is None:
                reader.kill()
                reader.wait()
        evs = json_lines(got)
        self.assertEqual(len(of(evs, "conn.close")), 6)
        self.check_events_file(got)

    def test_stalled_fifo_reader_does_not_freeze_connections_or_exit(self):
        fifo = f"{self.dir}/stalled.fifo"
        os.mkfifo(fifo)
        r = self.start("stalled", "--events", fifo, "--trace", "all")
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # opened, never read: the pipe fills
        try:
            slowest = 0.0
            for _ in range(40):
                t = time.time()
                self.assertTrue(self.req(r))
                slowest = max(slowest, time.time() - t)
            # One producer may wait for the writer up to a second before the queue drops; never longer.
            self.assertLess(slowest, 3.0)
            t0 = time.time()
            r.signal(signal.SIGTERM)
            self.assertEqual(r.wait(timeout=GRACE + 10), 3, r.stderr())
            self.assertLess(time.time() - t0, GRACE + 4)
        finally:
            os.close(reader)
        err = r.stderr()
        self.assertIn(f"gave up on the outputs after {GRACE} s", err)

    # --- signals -----------------------------------------------------------------------------

    def test_sighup_rotation_with_concurrent_clients_loses_nothing(self):
        p = self.proxy("--upstream-ca", self.pki.ca)
        client_keys = f"{self.dir}/client.keys"
        done, failures, lock = [0], [], threading.Lock()
        rotated = threading.Event()

        def client():
            for _ in range(10):
                try:
                    ok = request(p.port, p.ca, self.origin.port, client_keys)
                except OSError as e:
                    ok = False
                    failures.append(str(e))
                with lock:
                    done[0] += ok
                    if done[0] == 15:
                        rotated.set()
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        self.assertTrue(rotated.wait(DEADLINE))
        for f in (p.events, p.keylog, p.trace):
            os.rename(f, f + ".1")
        os.kill(p.proc.p.pid, signal.SIGHUP)
        for t in threads:
            t.join(timeout=60)
        self.assertEqual((done[0], failures), (40, []))
        p.stop()  # flushes; the harness's tear-down checks the new events file too
        old, new = json_lines(p.events + ".1"), json_lines(p.events)
        self.assertTrue(old and new, "both files hold events")
        closes = [e["conn"] for e in of(old + new, "conn.close")]
        self.assertEqual(sorted(closes), list(range(1, 41)))  # every connection exactly once
        self.check_events_file(p.events + ".1")
        # The key log: every line of the client's own key log exactly once, in one file or the other.
        lines = []
        for f in (p.keylog + ".1", p.keylog):
            with open(f) as fh:
                data = fh.read()
            self.assertTrue(data.endswith("\n"))
            lines += data.splitlines()
        self.assertEqual(len(lines), len(set(lines)))
        with open(client_keys) as f:
            ours = {l.strip() for l in f if l.strip() and not l.startswith("#")}
        self.assertLessEqual(ours, set(lines))
        for f in (p.trace + ".1", p.trace):
            with open(f, "rb") as fh:
                self.assertTrue(fh.read().endswith(b"\n"), f)
        self.assertIn("SIGHUP: reopening the output files", p.proc.output())

    def test_every_terminating_signal_flushes(self):
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
            with self.subTest(sig.name):
                events = f"{self.dir}/{sig.name}.jsonl"
                r = self.start(sig.name, "--events", events)
                for _ in range(3):
                    self.assertTrue(self.req(r))
                r.signal(sig)
                self.assertEqual(r.wait(), 0, r.stderr())
                self.assertEqual(len(of(json_lines(events), "conn.close")), 3)
                self.assertIn("3 connections: 3 ok", r.stderr())
        # SIGHUP: reopens (here the same names) and goes on; nothing before or after it is lost.
        events = f"{self.dir}/hup.jsonl"
        r = self.start("hup", "--events", events)
        self.assertTrue(self.req(r))
        r.signal(signal.SIGHUP)
        time.sleep(0.3)
        self.assertIsNone(r.p.poll(), r.stderr())
        self.assertTrue(self.req(r))
        r.signal(signal.SIGTERM)
        self.assertEqual(r.wait(), 0, r.stderr())
        self.assertEqual(len(of(json_lines(events), "conn.close")), 2)


if __name__ == "__main__":
    unittest.main()
