"""Real peers on 127.0.0.1 for the integration tests: tlstrace itself, openssl s_server, plain TCP
servers. Ports are picked at run time, every wait is bounded, every child is ended by its PID."""
import functools
import json
import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

TLSTRACE = os.environ.get("TLSTRACE_BIN", os.path.join(os.path.dirname(__file__), "../../build/tlstrace"))
CHECK_EVENTS = os.environ.get(
    "CHECK_EVENTS", os.path.join(os.path.dirname(__file__), "../../../shared/tools/check-events.py"))
DEADLINE = 15  # seconds for any single wait
# How much longer a sanitizer build takes over CPU-bound work (a report over 28 MB of events: 1.6 s
# in an ordinary build, over 60 s under ThreadSanitizer on a busy 2-core machine): a bound on such
# work, a guard against a hang, is multiplied by it.
SANITIZER_SLOWDOWN = {"": 1, "thread": 20}.get(os.environ.get("TLSTRACE_SANITIZER_BUILD", ""), 5)
DOCS = os.path.join(os.path.dirname(__file__), "../../docs/events.md")
COMMON = {"ts", "conn", "leg", "event"}


def documented_schema(path=DOCS):
    """Parses docs/events.md: {event: set(fields)} and {message type: set(body fields)}."""
    import re
    events, bodies, current, in_bodies = {}, {}, None, False
    with open(path) as f:
        for line in f:
            m = re.match(r"^### `([^`]+)`", line)
            if m:
                current, in_bodies = m.group(1), False
                events[current] = set()
                continue
            if line.startswith("## Bodies of"):
                current, in_bodies = None, True
                continue
            if line.startswith("## "):
                current = None
            row = re.match(r"^\| `([^`]+)` \| (.*) \|\s*$", line)
            if not row:
                continue
            if current:
                events[current].add(row.group(1))
            elif in_bodies:
                bodies[row.group(1)] = set(re.findall(r"`([^`]+)`", row.group(2)))
    return events, bodies


def check_against_docs(evs, schema=None):
    """Every event and field produced must be documented (a new field without docs fails)."""
    events, bodies = schema or documented_schema()
    problems = []
    for e in evs:
        name = e.get("event")
        if name not in events:
            problems.append(f"event '{name}' is not documented in docs/events.md")
            continue
        # (X_hex beside X: the exact bytes of a value that was not UTF-8, docs/events.md)
        hex_of = lambda obj, k: k.endswith("_hex") and k[:-4] in obj
        for k in set(e) - COMMON - events[name]:
            if not hex_of(e, k):
                problems.append(f"{name}.{k} is not documented")
        if name == "tls.message" and isinstance(e.get("body"), dict):
            allowed = bodies.get(e.get("type"), set()) | {"error", "raw"}
            for k in set(e["body"]) - allowed:
                if not hex_of(e["body"], k):
                    problems.append(f"tls.message body of {e.get('type')} has undocumented '{k}'")
    return sorted(set(problems))


@functools.lru_cache(maxsize=None)
def tshark_cmd():
    """tshark for reading captures, with the dissectors Wireshark binds to TCP ports inside the
    kernel's ephemeral range turned off: a connection that happens to get such a port (44818 is
    EtherNet/IP's) would otherwise be read as that protocol instead of TLS or HTTP."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        table = subprocess.run(["tshark", "-G", "decodes"], capture_output=True, timeout=60).stdout.decode()
    except (OSError, ValueError, subprocess.SubprocessError):
        return ("tshark",)
    names = sorted({parts[2] for parts in (line.split("\t") for line in table.splitlines())
                    if len(parts) >= 3 and parts[0] == "tcp.port" and parts[1].isdigit() and low <= int(parts[1]) <= high})
    return ("tshark", *(a for n in names for a in ("--disable-protocol", n)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_port(test):
    """A port on 127.0.0.1 that refuses connections for the whole test: bound, never listening.
    A port freed at once (free_port) can be handed to a concurrent test's listener, which then
    answers; a bound one is not handed out again until the test's clean-up closes it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    test.addCleanup(s.close)
    return s.getsockname()[1]


def wait_port(port, proc=None, timeout=DEADLINE):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


def read_all(sock, limit=1 << 20):
    """Everything the peer sends until it closes (or resets, or the socket times out)."""
    data = b""
    try:
        while len(data) < limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:  # ssl.SSLError, ConnectionResetError and socket.timeout among them
        pass
    return data


def send_connect(s, target):
    """Sends an HTTP CONNECT for `target` on socket `s`; returns the proxy's answer head (bytes,
    through the blank line, plus whatever arrived with it; less if the proxy closed first)."""
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


def run(cmd, timeout=DEADLINE, input=None, env=None, cwd=None):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, input=input, env=env, cwd=cwd)


def expired_self_signed(d):
    """A self-signed localhost certificate (EC P-256) valid only in 2020: (key, cert) paths in d.
    OpenSSL 3.0's req/x509 cannot backdate; `openssl ca` can (-startdate/-enddate)."""
    key, cert = f"{d}/old.key", f"{d}/old.pem"
    with open(f"{d}/index.txt", "w"), open(f"{d}/serial", "w") as f:
        f.write("01\n")
    with open(f"{d}/ca.cnf", "w") as f:
        f.write(f"[ca]\ndefault_ca = d\n[d]\ndir = {d}\ndatabase = {d}/index.txt\nnew_certs_dir = {d}\n"
                f"serial = {d}/serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n"
                "[ext]\nsubjectAltName = DNS:localhost\nbasicConstraints = CA:TRUE\n")
    r = run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", f"{d}/old.csr", "-subj", "/CN=localhost"])
    if r.returncode != 0:
        raise RuntimeError(r.stderr.decode())
    r = run(["openssl", "ca", "-batch", "-config", f"{d}/ca.cnf", "-selfsign", "-keyfile", key, "-in",
             f"{d}/old.csr", "-out", cert, "-startdate", "20200101000000Z", "-enddate", "20210101000000Z",
             "-extensions", "ext", "-notext"])
    if r.returncode != 0:
        raise RuntimeError(r.stderr.decode())
    return key, cert



# A self-signed RSA-2048 certificate for localhost (for DHE and RSA-key-exchange origins).
def rsa_cert(d):
    key, cert = f"{d}/rsa.key", f"{d}/rsa.pem"
    r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
             "-days", "30", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"])
    assert r.returncode == 0, r.stderr
    return cert, key


class Proc:
    """A child process, ended by its PID (never by name)."""

    def __init__(self, cmd, log_path, env=None, stdin=subprocess.DEVNULL, nofile=None, cwd=None):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        # nofile: the child's open-file limit, one number for soft and hard or a (soft, hard) pair
        # (set in the child only).
        pair = nofile if isinstance(nofile, tuple) else (nofile, nofile)
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, pair)) if nofile else None
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=stdin,
                                  env=env, cwd=cwd, start_new_session=True, preexec_fn=limit)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.p.poll() is None:
            try:
                os.kill(self.p.pid, sig)
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait(timeout=timeout)
        if not self.log.closed:
            self.log.close()
        return self.p.returncode

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


class Pki:
    """A private upstream CA with a server certificate for localhost/127.0.0.1, and a self-signed
    certificate nobody trusts."""

    def __init__(self, d):
        self.d = d
        self.ca_key, self.ca = f"{d}/up-ca.key", f"{d}/up-ca.pem"
        self.key, self.cert = f"{d}/server.key", f"{d}/server.pem"
        self.bad_key, self.bad_cert = f"{d}/selfsigned.key", f"{d}/selfsigned.pem"
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        self._openssl(["req", "-x509", *ec, "-keyout", self.ca_key, "-out", self.ca, "-days", "30",
                       "-subj", "/CN=tlstrace test upstream CA",
                       "-addext", "basicConstraints=critical,CA:TRUE",
                       "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        self._openssl(["req", *ec, "-keyout", self.key, "-out", f"{d}/server.csr", "-subj", "/CN=localhost"])
        ext = f"{d}/server.ext"
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                    "basicConstraints=CA:FALSE\n")
        self._openssl(["x509", "-req", "-in", f"{d}/server.csr", "-CA", self.ca, "-CAkey", self.ca_key,
                       "-CAcreateserial", "-out", self.cert, "-days", "30", "-extfile", ext])
        self._openssl(["req", "-x509", *ec, "-keyout", self.bad_key, "-out", self.bad_cert, "-days", "30",
                       "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])

    @staticmethod
    def _openssl(args):
        r = run(["openssl", *args])
        if r.returncode != 0:
            raise RuntimeError(r.stderr.decode())


class SServer:
    """openssl s_server answering HTTP (-www) on a run-time port."""

    def __init__(self, d, cert, key, extra=(), name="s_server", env=None):
        for _ in range(5):
            self.port = free_port()
            self.proc = Proc(["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}", "-cert", cert,
                              "-key", key, "-www", *extra], f"{d}/{name}-{self.port}.log", env=env)
            try:
                wait_port(self.port, self.proc.p)
                return
            except RuntimeError:
                self.proc.stop()
        raise RuntimeError("s_server did not start")

    def stop(self):
        self.proc.stop()


class ThreadedServer:
    """A TCP server on a run-time port whose connections are handled by handle(conn), each in a
    thread of its own; stop() ends the accept loop and closes what handle() left in self.held."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.held = []
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        while self.running:
            try:
                c, peer = self.sock.accept()
            except OSError:
                continue
            self.accepted_in_loop(c, peer)

    def accepted_in_loop(self, c, peer):
        """Each accepted connection, in the accept loop: handed to handle() in a thread of its own."""
        c.settimeout(DEADLINE)
        threading.Thread(target=self._guarded, args=(c,), daemon=True).start()

    def _guarded(self, c):
        try:
            self.handle(c)
        except OSError:
            try:
                c.close()
            except OSError:
                pass

    def handle(self, c):
        raise NotImplementedError

    def stop(self):
        self.running = False
        self.t.join(timeout=5)
        for c in self.held:
            c.close()
        self.sock.close()


class EchoServer(ThreadedServer):
    """An echo server: plain TCP (for non-TLS traffic after CONNECT), or TLS when given a
    certificate and key. Every byte received is sent back as it was read."""

    def __init__(self, cert=None, key=None):
        self.ctx = None
        if cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert, key)
        super().__init__()

    def handle(self, c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # an echo is one small write: no Nagle wait
        # A held connection may stay quiet while a test opens hundreds of others (minutes under a
        # sanitizer on a loaded machine): bounded, but far beyond one wait.
        c.settimeout(20 * DEADLINE)
        if self.ctx:
            c = self.ctx.wrap_socket(c, server_side=True)
        with c:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                c.sendall(data)


class Tlstrace:
    """The proxy under test, listening on a run-time port (-l 127.0.0.1:0)."""

    def __init__(self, d, *args, name="tlstrace", env=None, nofile=None, log=True, prefix=()):
        self.d = d
        self.home = f"{d}/home"
        self.events = f"{d}/{name}.events.jsonl"
        self.keylog = f"{d}/{name}.keys"
        self.trace = f"{d}/{name}.trace.txt"
        e = dict(os.environ)
        e["TLSTRACE_HOME"] = self.home
        e.pop("SSLKEYLOGFILE", None)
        if env:
            e.update(env)
        # log=False: no --log, the console's default (connection lines and exit summary on stderr).
        # prefix: a command that execs the rest (e.g. unshare into a namespace): the PID stays the proxy's.
        cmd = [*prefix, TLSTRACE, "proxy", "-l", "127.0.0.1:0", "--events", self.events, "--keylog", self.keylog,
               *(["--log", self.trace] if log else []), *args]
        self.proc = Proc(cmd, f"{d}/{name}.stderr", env=e, nofile=nofile)
        self.port = None
        end = time.time() + DEADLINE
        while time.time() < end and self.port is None:
            if self.proc.p.poll() is not None:
                raise RuntimeError("tlstrace exited: " + self.proc.output())
            for line in self.proc.output().splitlines():
                if " listening on " in line:
                    self.port = int(line.split(" listening on ")[1].split()[0].rsplit(":", 1)[1])
            time.sleep(0.02)
        if self.port is None:
            raise TimeoutError("tlstrace did not report its port: " + self.proc.output())
        self.ca = f"{self.home}/ca.pem"
        self.addr = f"127.0.0.1:{self.port}"
        self.killed = False

    def kill(self):
        """SIGKILL: no chance to flush anything (what a crash or the OOM killer does)."""
        self.killed = True
        return self.proc.stop(signal.SIGKILL)

    def stop(self):
        rc = self.proc.stop(signal.SIGTERM)
        return rc

    def read_events(self):
        with open(self.events) as f:
            return [json.loads(line) for line in f if line.strip()]

    def wait_events(self, pred, timeout=DEADLINE):
        """Polls the events file until pred(events) is true (the proxy writes each line whole)."""
        end = time.time() + timeout
        while time.time() < end:
            try:
                evs = self.read_events()
            except (OSError, ValueError):
                evs = []
            if pred(evs):
                return evs
            time.sleep(0.05)
        raise TimeoutError("events did not arrive; have: " + "\n".join(json.dumps(e) for e in self.read_events()))

    def conn_closed(self, n=1):
        return self.wait_events(lambda evs: sum(1 for e in evs if e["event"] == "conn.close") >= n)


def of(evs, event, leg=None, conn=None):
    return [e for e in evs if e["event"] == event and (leg is None or e.get("leg") == leg)
            and (conn is None or e["conn"] == conn)]


class ProxyTestCase(unittest.TestCase):
    """Each test gets a temp dir, an upstream PKI, and clean-up of everything it starts."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="tlstrace-it-")
        cls.pki = Pki(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.tmp.name)
        self._stops = []
        self.proxies = []

    def tearDown(self):
        for stop in reversed(self._stops):
            try:
                stop()
            except Exception as e:  # clean-up must go on
                print("clean-up:", e, file=sys.stderr)
        for p in self.proxies:
            self.check_events_file(p.events)
            if os.path.exists(p.events):
                self.assertEqual(check_against_docs(p.read_events()), [])

    def proxy(self, *args, **kw):
        p = Tlstrace(self.dir, *args, name=f"tlstrace{len(self.proxies)}", **kw)
        self.proxies.append(p)

        def stop():
            rc = p.stop()
            if not p.killed:
                self.assertEqual(rc, 0, "tlstrace did not exit 0 on SIGTERM: " + p.proc.output())
        self._stops.append(stop)
        return p

    def s_server(self, *extra, cert=None, key=None, seclevel0=False):
        env = None
        if seclevel0:  # a deliberately weak server: OpenSSL refuses small DH at its default level
            conf = f"{self.dir}/seclevel0.cnf"
            with open(conf, "w") as f:
                f.write("openssl_conf = c\n[c]\nssl_conf = s\n[s]\nsystem_default = d\n"
                        "[d]\nCipherString = DEFAULT:@SECLEVEL=0\n")
            env = dict(os.environ, OPENSSL_CONF=conf)
        s = SServer(self.dir, cert or self.pki.cert, key or self.pki.key, extra, env=env)
        self._stops.append(s.stop)
        return s

    def echo(self, tls=False):
        e = EchoServer(self.pki.cert, self.pki.key) if tls else EchoServer()
        self._stops.append(e.stop)
        return e

    def check_events_file(self, path, require=()):
        if not os.path.exists(CHECK_EVENTS):
            print(f"note: {CHECK_EVENTS} not found; schema check skipped", file=sys.stderr)
            return
        r = run([sys.executable, CHECK_EVENTS, path, *(["--require", *require] if require else [])])
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
