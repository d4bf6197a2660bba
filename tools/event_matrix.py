#!/usr/bin/env python3
"""A fixed matrix of scenarios run through a tlstrace binary, one connection at a time, between real
peers on 127.0.0.1 (openssl s_server/s_client, curl, small Python servers), with every events file
normalised so that two binaries (or two runs of one) can be compared event by event.

  event_matrix.py record --bin PATH --out DIR [--only NAME ...] [--keep-raw]
  event_matrix.py compare DIR_A DIR_B
  event_matrix.py list

record writes DIR/NAME.jsonl (the normalised events) and DIR/NAME.peer.json (what the client saw)
per scenario. compare prints a readable diff per scenario and exits 1 on any difference, 0 when
the directories are identical. See docs/event-matrix.md for what is normalised and why.

Ports are picked at run time, every wait is bounded, every child is ended by its PID."""
import argparse
import difflib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

# The processes and sockets of the integration tests' harness: one copy of each helper.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from harness import DEADLINE, Proc, free_port, read_all, run, wait_port  # noqa: E402

REQUEST = b"GET /index.txt HTTP/1.0\r\n\r\n"
PAGE = b"tlstrace event matrix: a fixed page\n" * 4
PROXY_CA_CN = "tlstrace event matrix CA"
UPSTREAM_CA_CN = "tlstrace event matrix upstream CA"


# ----------------------------------------------------------------------------------------------
# processes and sockets


def openssl(args, cwd=None):
    r = run(["openssl", *args], cwd=cwd, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("openssl " + " ".join(args) + ": " + r.stderr.decode())


class Pki:
    """Everything signed with RSA keys: RSA signatures have a fixed length, so message lengths and
    byte counts do not change from run to run (ECDSA signatures vary by a byte or two). Fixed
    serials; only the validity dates (and so the fingerprints) change per run."""

    def __init__(self, d):
        self.d = d
        j = lambda n: os.path.join(d, n)
        self.ca, self.ca_key = j("up-ca.pem"), j("up-ca.key")
        self.cert, self.key = j("server.pem"), j("server.key")
        self.bad_cert, self.bad_key = j("selfsigned.pem"), j("selfsigned.key")
        self.proxy_ca, self.proxy_ca_key = j("proxy-ca.pem"), j("proxy-ca.key")
        self.dh = j("ffdhe2048.pem")
        rsa = ["-newkey", "rsa:2048", "-nodes"]
        ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
        openssl(["req", "-x509", *rsa, "-keyout", self.ca_key, "-out", self.ca, "-days", "30", "-set_serial",
                 "0x1001", "-subj", f"/CN={UPSTREAM_CA_CN}", *ca_ext])
        openssl(["req", *rsa, "-keyout", self.key, "-out", j("server.csr"), "-subj", "/CN=localhost"])
        with open(j("server.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                    "basicConstraints=CA:FALSE\n")
        openssl(["x509", "-req", "-in", j("server.csr"), "-CA", self.ca, "-CAkey", self.ca_key, "-set_serial",
                 "0x1002", "-out", self.cert, "-days", "30", "-extfile", j("server.ext")])
        openssl(["req", "-x509", *rsa, "-keyout", self.bad_key, "-out", self.bad_cert, "-days", "30",
                 "-set_serial", "0x1003", "-subj", "/CN=localhost",
                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        openssl(["req", "-x509", *rsa, "-keyout", self.proxy_ca_key, "-out", self.proxy_ca, "-days", "30",
                 "-set_serial", "0x1004", "-subj", f"/CN={PROXY_CA_CN}", *ca_ext])
        os.chmod(self.proxy_ca_key, 0o600)
        openssl(["genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048", "-out", self.dh])
        with open(j("index.txt"), "wb") as f:
            f.write(PAGE)


class SServer:
    """openssl s_server serving d/index.txt (-WWW: a fixed response, no per-run content)."""

    def __init__(self, d, cert, key, extra=(), name="s_server"):
        for _ in range(5):
            self.port = free_port()
            self.proc = Proc(["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}", "-cert", cert,
                              "-key", key, "-WWW", *extra], os.path.join(d, f"{name}.log"), cwd=d)
            try:
                wait_port(self.port, self.proc.p)
                return
            except (RuntimeError, TimeoutError):
                self.proc.stop()
        raise RuntimeError("s_server did not start")

    def stop(self):
        self.proc.stop()


class TcpServer:
    """A one-thread-per-connection TCP server on a run-time port; handle(conn) does the work."""

    def __init__(self, handle):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.handle = handle
        self.running = True
        self.threads = []
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            c.settimeout(DEADLINE)
            t = threading.Thread(target=self._guarded, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _guarded(self, c):
        try:
            with c:
                self.handle(c)
        except OSError:
            pass

    def stop(self):
        self.running = False
        self.t.join(timeout=5)
        for t in self.threads:
            t.join(timeout=5)
        self.sock.close()


def echo_handler(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(1000):
        data = c.recv(65536)
        if not data:
            break
        c.sendall(data)


def http_handler(c):
    """A fixed HTTP/1.0 answer (no Date, no version strings) to whatever request comes."""
    head = b""
    for _ in range(1000):
        if b"\r\n\r\n" in head:
            break
        chunk = c.recv(4096)
        if not chunk:
            break
        head += chunk
    # No Content-Length: the body ends when the server closes, so the client always closes after
    # the server (with a length, curl may close first: a race between the peers).
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + PAGE)
    c.shutdown(socket.SHUT_WR)
    for _ in range(1000):
        if not c.recv(4096):
            break


class TlsOrigin:
    """A TLS HTTP origin (Python ssl, RSA certificate) for the record/data scenarios. It sends its
    answer and sends close_notify only once the proxy has relayed that answer to the client:
    otherwise whether the answer and the close_notify reach the proxy in one read or two (and so
    the order of the upstream data and alert events) depends on timing, not on the proxy."""

    def __init__(self, ctx, max_version=None, ciphers=None):
        self.ctx = ctx
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(ctx.pki.cert, ctx.pki.key)
        if max_version:
            self.tls.maximum_version = max_version
        if ciphers:
            self.tls.set_ciphers(ciphers)
        self.server = TcpServer(self.handle)
        self.port = self.server.port

    def relayed(self):
        evs = self.ctx.proxy.read_events() if self.ctx.proxy else []
        seen = False
        for e in evs:
            if e.get("event") == "data" and e.get("leg") == "upstream" and e.get("dir") == "in":
                seen = True
            elif seen and e.get("event") == "tls.record" and e.get("leg") == "client" and \
                    e.get("dir") == "out" and e.get("content_type") == 23:
                return True
        return False

    def handle(self, c):
        t = self.tls.wrap_socket(c, server_side=True)
        head = b""
        for _ in range(1000):
            if b"\r\n\r\n" in head:
                break
            chunk = t.recv(4096)
            if not chunk:
                break
            head += chunk
        t.sendall(b"HTTP/1.0 200 ok\r\nContent-type: text/plain\r\n\r\n" + PAGE)
        end = time.time() + DEADLINE
        while time.time() < end and not self.relayed():
            time.sleep(0.02)
        t.unwrap()

    def stop(self):
        self.server.stop()


class Proxy:
    """tlstrace proxy on a run-time port (-l 127.0.0.1:0) with the matrix's own RSA CA."""

    def __init__(self, binary, d, pki, args, leaf_key="rsa"):
        self.events = os.path.join(d, "events.jsonl")
        env = dict(os.environ, TLSTRACE_HOME=os.path.join(d, "home"))
        env.pop("SSLKEYLOGFILE", None)
        cmd = [binary, "proxy", "-l", "127.0.0.1:0", "--events", self.events, "--log", os.path.join(d, "trace.txt"),
               "--ca-cert", pki.proxy_ca, "--ca-key", pki.proxy_ca_key, "--leaf-key", leaf_key, "--threads", "1",
               *args]
        self.cmd = cmd
        self.proc = Proc(cmd, os.path.join(d, "proxy.stderr"), env=env)
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
        self.addr = f"127.0.0.1:{self.port}"

    def read_events(self):
        try:
            with open(self.events) as f:
                return [json.loads(line) for line in f if line.strip()]
        except (OSError, ValueError):
            return []

    def wait_closed(self, n):
        end = time.time() + DEADLINE
        while time.time() < end:
            if sum(1 for e in self.read_events() if e.get("event") == "conn.close") >= n:
                return
            time.sleep(0.02)
        raise TimeoutError(f"{n} conn.close events did not arrive")

    def wait_quiet(self, conn, quiet=0.3):
        """Until connection conn's client leg is established (or the connection failed or ended),
        the server's first TLS 1.3 ticket was traced if the upstream leg is TLS 1.3, and then no
        new event came for `quiet` seconds; bounded."""
        start = time.time()
        end = start + DEADLINE
        while time.time() < end:
            evs = [e for e in self.read_events() if e.get("conn") == conn]
            if any(e.get("event") in ("conn.close", "tls.error") for e in evs):
                break
            if any(e.get("event") == "tls.established" and e.get("leg") == "client" for e in evs):
                up13 = any(e.get("event") == "tls.established" and e.get("leg") == "upstream" and
                           e.get("version") == "TLSv1.3" for e in evs)
                ticket = any(e.get("event") == "tls.message" and e.get("leg") == "upstream" and
                             e.get("type") == "NewSessionTicket" for e in evs)
                if ticket or not up13 or time.time() > start + 3:
                    break
            time.sleep(0.02)
        n, since = -1, time.time()
        while time.time() < end:
            m = len(self.read_events())
            if m != n:
                n, since = m, time.time()
            elif time.time() - since >= quiet:
                return
            time.sleep(0.02)

    def stop(self):
        return self.proc.stop(signal.SIGTERM)


# ----------------------------------------------------------------------------------------------
# clients


def s_client(ctx, *args, request=REQUEST, sess_out=None, sess_in=None, cafile=None):
    """openssl s_client through the proxy. The request is written only once the client leg's
    handshake is over and the proxy has gone quiet (TLS 1.3 tickets from the server included):
    otherwise the order of the client's request and the server's tickets is a race between the
    two peers, not something the proxy decides."""
    cmd = ["openssl", "s_client", "-connect", ctx.proxy.addr, "-servername", "localhost", "-CAfile",
           cafile or ctx.pki.proxy_ca, "-verify_return_error", "-ign_eof", *args]
    if sess_out:
        cmd += ["-sess_out", sess_out]
    if sess_in:
        cmd += ["-sess_in", sess_in]
    conn = sum(1 for e in ctx.proxy.read_events() if e.get("event") == "conn.open") + 1
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        ctx.proxy.wait_quiet(conn)
        out, _ = p.communicate(input=request, timeout=DEADLINE)  # (a broken pipe is ignored)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=DEADLINE)
    out = out.decode(errors="replace")
    got = "HTTP/1.0 200 ok" in out
    reused = "Reused," in out
    verify = re.search(r"Verify return code: (\d+)", out)
    return {"client": "s_client", "rc": p.returncode, "page": got, "reused": reused,
            "verify": verify.group(1) if verify else None}


def curl(ctx, url, *args):
    r = run(["curl", "-sS", "--max-time", "10", "-x", f"http://{ctx.proxy.addr}", "--cacert", ctx.pki.proxy_ca,
             *args, url])
    return {"client": "curl", "rc": r.returncode, "page": r.stdout == PAGE,
            "stderr": r.stderr.decode(errors="replace").strip()}


def connect_via(ctx, target):
    s = socket.create_connection(("127.0.0.1", ctx.proxy.port), timeout=DEADLINE)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    for _ in range(100):
        if b"\r\n\r\n" in head:
            break
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return s, head.decode(errors="replace").split("\r\n")[0]


def client_hello_bytes():
    """A real ClientHello from Python's ssl (memory BIOs, nothing sent anywhere)."""
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = c.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


# ----------------------------------------------------------------------------------------------
# the matrix


class Ctx:
    def __init__(self, binary, d, pki):
        self.binary, self.d, self.pki = binary, d, pki
        self.proxy = None
        self.stops = []
        self.ports = {}   # port -> role, for normalisation

    def server(self, *extra, cert=None, key=None, name="s_server"):
        s = SServer(self.d, cert or self.pki.cert, key or self.pki.key, extra, name=name)
        self.stops.append(s.stop)
        self.ports[s.port] = "server"
        return s

    def tcp(self, handler):
        s = TcpServer(handler)
        self.stops.append(s.stop)
        self.ports[s.port] = "server"
        return s

    def origin(self, **kw):
        o = TlsOrigin(self, **kw)
        self.stops.append(o.stop)
        self.ports[o.port] = "server"
        return o

    def dead_port(self):
        p = free_port()
        self.ports[p] = "closed"
        return p

    def start_proxy(self, *args, leaf_key="rsa"):
        self.proxy = Proxy(self.binary, self.d, self.pki, args, leaf_key)
        self.ports[self.proxy.port] = "proxy"
        return self.proxy

    def reverse(self, upstream_port, *args, trust=True, leaf_key="rsa"):
        t = ["--upstream-ca", self.pki.ca] if trust else []
        return self.start_proxy("-m", "reverse", "-u", f"localhost:{upstream_port}", *t, *args, leaf_key=leaf_key)

    def explicit(self, *args):
        return self.start_proxy("--upstream-ca", self.pki.ca, *args)


def sc_tls13(c):
    srv = c.server()
    c.reverse(srv.port)
    return [s_client(c, "-tls1_3")]


def sc_tls13_hrr(c):
    # The client offers an x25519 key share; the server (and the proxy's client side) want P-256.
    srv = c.server("-groups", "P-256")
    c.reverse(srv.port, "--client-groups", "P-256")
    return [s_client(c, "-tls1_3", "-groups", "x25519:P-256")]


def sc_tls12_ecdhe_rsa(c):
    srv = c.server("-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    c.reverse(srv.port)
    return [s_client(c, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")]


def sc_tls12_dhe_rsa(c):
    srv = c.server("-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256", "-dhparam", c.pki.dh)
    c.reverse(srv.port, "--dhparam", c.pki.dh)
    return [s_client(c, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256")]


def sc_tls12_static_rsa(c):
    srv = c.server("-tls1_2", "-cipher", "AES128-GCM-SHA256")
    c.reverse(srv.port)
    return [s_client(c, "-tls1_2", "-cipher", "AES128-GCM-SHA256")]


def sc_tls12_resumption(c):
    srv = c.server("-tls1_2")
    c.reverse(srv.port)
    sess = os.path.join(c.d, "tls12.sess")
    first = s_client(c, "-tls1_2", sess_out=sess)
    c.proxy.wait_closed(1)
    return [first, s_client(c, "-tls1_2", sess_in=sess)]


def sc_tls13_resumption(c):
    srv = c.server("-tls1_3")
    c.reverse(srv.port)
    sess = os.path.join(c.d, "tls13.sess")
    first = s_client(c, "-tls1_3", sess_out=sess)
    c.proxy.wait_closed(1)
    return [first, s_client(c, "-tls1_3", sess_in=sess)]


def sc_explicit_curl_connect(c):
    srv = c.server()
    c.explicit()
    return [curl(c, f"https://localhost:{srv.port}/index.txt", "--http1.1")]


def sc_explicit_curl_tls12(c):
    srv = c.server("-tls1_2")
    c.explicit()
    return [curl(c, f"https://localhost:{srv.port}/index.txt", "--http1.1", "--tls-max", "1.2")]


def sc_explicit_absolute_http(c):
    srv = c.tcp(http_handler)
    c.explicit()
    return [curl(c, f"http://127.0.0.1:{srv.port}/index.txt")]


def sc_explicit_connect_plaintext(c):
    echo = c.tcp(echo_handler)
    c.explicit()
    return plaintext_through(c, echo)


def sc_fail_explicit_upstream_refused(c):
    c.explicit()
    return [curl(c, f"https://localhost:{c.dead_port()}/index.txt")]


def sc_fail_reverse_upstream_refused(c):
    c.reverse(c.dead_port())
    return [s_client(c, "-tls1_3")]


def sc_fail_untrusted_upstream(c):
    srv = c.server()
    c.reverse(srv.port, trust=False)   # no --upstream-ca, no --insecure
    return [s_client(c, "-tls1_3")]


def sc_fail_selfsigned_upstream(c):
    srv = c.server(cert=c.pki.bad_cert, key=c.pki.bad_key)
    c.explicit()
    return [curl(c, f"https://localhost:{srv.port}/index.txt", "--http1.1")]


def raw_client(c, payload, half_close=True):
    with socket.create_connection(("127.0.0.1", c.proxy.port), timeout=DEADLINE) as s:
        s.sendall(payload)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        got = read_all(s)
    return {"client": "socket", "received": got.hex()}


def sc_fail_reverse_garbage(c):
    srv = c.server()
    c.reverse(srv.port)
    return [raw_client(c, b"this is not TLS at all\r\n\r\n")]


def sc_fail_reverse_malformed_hello(c):
    srv = c.server()
    c.reverse(srv.port)
    # A handshake record whose ClientHello is cut short and malformed.
    body = b"\x01\x00\x00\x08\x03\x03" + b"\x00" * 6
    return [raw_client(c, b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body)]


def sc_fail_version_mismatch(c):
    srv = c.server("-tls1_2")
    c.reverse(srv.port, "--upstream-tls-min", "1.3")
    return [s_client(c)]


def sc_fail_client_closes_mid_handshake(c):
    srv = c.server()
    c.reverse(srv.port)
    hello = client_hello_bytes()
    with socket.create_connection(("127.0.0.1", c.proxy.port), timeout=DEADLINE) as s:
        s.sendall(hello)
        first = s.recv(5)     # the proxy's first flight has started: the upstream leg is done
        s.shutdown(socket.SHUT_WR)
        read_all(s)
    return [{"client": "socket", "first_record_type": first[:1].hex()}]


def sc_tls13_alpn(c):
    srv = c.server("-alpn", "http/1.1")
    c.reverse(srv.port)
    return [s_client(c, "-tls1_3", "-alpn", "h2,http/1.1")]


def sc_mirror_client(c):
    srv = c.server()
    c.reverse(srv.port, "--mirror-client")
    return [s_client(c)]


def sc_explicit_proxy_auth(c):
    srv = c.server()
    c.explicit("--proxy-auth", "user:secret")
    url = f"https://localhost:{srv.port}/index.txt"
    first = curl(c, url, "--http1.1")
    c.proxy.wait_closed(1)
    return [first, curl(c, url, "--http1.1", "--proxy-user", "user:secret")]


def sc_fail_explicit_bad_request(c):
    c.explicit()
    return [raw_client(c, b"CONNECT nowhere HTTP/1.1\r\n\r\n", half_close=False)]


def sc_fail_client_rejects_certificate(c):
    srv = c.server()
    c.reverse(srv.port)
    return [s_client(c, "-tls1_3", cafile=c.pki.ca)]   # the client does not trust the proxy's CA


def sc_fail_hostname_mismatch(c):
    srv = c.server()
    c.explicit()
    s, status = connect_via(c, f"127.0.0.1:{srv.port}")
    tls = ssl.create_default_context(cafile=c.pki.proxy_ca)
    try:
        with tls.wrap_socket(s, server_hostname="wrong.test") as t:
            t.sendall(REQUEST)
            read_all(t)
        result = "ok"
    except ssl.SSLError as e:
        result = e.reason
    finally:
        s.close()
    return [{"client": "python", "status": status, "result": result}]


def sc_fail_no_shared_cipher_upstream(c):
    srv = c.server("-tls1_2", "-cipher", "AES128-GCM-SHA256")
    c.reverse(srv.port, "--upstream-tls-max", "1.2", "--upstream-ciphers", "ECDHE-RSA-AES128-GCM-SHA256")
    return [s_client(c)]


def sc_fail_handshake_timeout(c):
    srv = c.server()
    c.reverse(srv.port, "--handshake-timeout", "0.5")
    with socket.create_connection(("127.0.0.1", c.proxy.port), timeout=DEADLINE) as s:
        got = read_all(s)   # nothing sent: the proxy gives up after 0.5 s
    return [{"client": "socket", "received": got.hex()}]


def not_tls_handler(c):
    """Reads the proxy's ClientHello and answers in plain HTTP (a TLS client pointed at an HTTP port)."""
    c.recv(65536)
    c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    c.shutdown(socket.SHUT_WR)
    read_all(c)


def sc_fail_upstream_not_tls(c):
    srv = c.tcp(not_tls_handler)
    c.reverse(srv.port)
    return [s_client(c, "-tls1_3")]


def python_tls_client(c):
    tls = ssl.create_default_context(cafile=c.pki.proxy_ca)
    s = socket.create_connection(("127.0.0.1", c.proxy.port), timeout=DEADLINE)
    conn = sum(1 for e in c.proxy.read_events() if e.get("event") == "conn.open") + 1
    t = tls.wrap_socket(s, server_hostname="localhost")
    c.proxy.wait_quiet(conn)
    return t


def sc_client_reset_after_handshake(c):
    srv = c.server()
    c.reverse(srv.port)
    t = python_tls_client(c)
    version = t.version()
    t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, (1).to_bytes(4, "little") + (0).to_bytes(4, "little"))
    t.close()   # RST with the connection established and idle
    return [{"client": "python", "version": version}]


def sc_idle_timeout(c):
    srv = c.server()
    # (--handshake-timeout 2 too: binaries before 2026-12-06 first looked at an idle connection when
    # the handshake's deadline came, so a short idle timeout alone took 10 s there.)
    c.reverse(srv.port, "--idle-timeout", "0.5", "--handshake-timeout", "2")
    t = python_tls_client(c)
    version = t.version()
    got = read_all(t)   # the proxy closes both legs after 0.5 s without traffic
    t.close()
    return [{"client": "python", "version": version, "received": len(got)}]


def sc_tls13_ec_leaf(c):
    srv = c.server()
    c.reverse(srv.port, leaf_key="ec")   # the default: an ECDSA P-256 forged leaf
    return [s_client(c, "-tls1_3")]


def ecdsa_lengths(e):
    """The client leg's CertificateVerify carries an ECDSA signature (70 to 72 bytes, DER): its
    length, and so the client leg's byte count, varies from run to run."""
    if e.get("leg") == "client" and e.get("type") == "CertificateVerify":
        e["length"] = "<ecdsa>"
        e["body"]["signature_length"] = "<ecdsa>"
    if e.get("leg") == "client" and e.get("event") == "tcp.close":
        e["bytes_out"] = "<ecdsa>"
    return e


def sc_trace_all_tls13(c):
    srv = c.origin()
    c.reverse(srv.port, "--trace", "all", "--log-secrets")
    return [s_client(c, "-tls1_3")]


def sc_trace_all_tls12(c):
    srv = c.origin(max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES128-GCM-SHA256")
    c.reverse(srv.port, "--trace", "all", "--log-secrets")
    return [s_client(c, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")]


def sc_trace_all_tls12_static_rsa(c):
    srv = c.origin(max_version=ssl.TLSVersion.TLSv1_2, ciphers="AES128-SHA256")
    c.reverse(srv.port, "--trace", "all", "--log-secrets")
    return [s_client(c, "-tls1_2", "-cipher", "AES128-SHA256")]


def sc_trace_all_explicit_plaintext(c):
    echo = c.tcp(echo_handler)
    c.explicit("--trace", "all", "--log-secrets")
    return plaintext_through(c, echo)


def plaintext_through(c, echo):
    """CONNECT to the echo server, a line of plain text, half-close, read to the end."""
    s, status = connect_via(c, f"127.0.0.1:{echo.port}")
    msg = b"hello, plain world\n"
    s.sendall(msg)
    got = b""
    for _ in range(100):
        if len(got) >= len(msg):
            break
        chunk = s.recv(100)
        if not chunk:
            break
        got += chunk
    s.shutdown(socket.SHUT_WR)
    rest = read_all(s)
    s.close()
    return [{"client": "socket", "status": status, "echoed": got == msg, "after_half_close": len(rest)}]


# (name, function, connections[, extra normalisation of each event]): run in this order, one
# connection at a time.
SCENARIOS = [
    ("tls13", sc_tls13, 1),
    ("tls13_hrr", sc_tls13_hrr, 1),
    ("tls12_ecdhe_rsa", sc_tls12_ecdhe_rsa, 1),
    ("tls12_dhe_rsa", sc_tls12_dhe_rsa, 1),
    ("tls12_static_rsa", sc_tls12_static_rsa, 1),
    ("tls12_resumption", sc_tls12_resumption, 2),
    ("tls13_resumption", sc_tls13_resumption, 2),
    ("tls13_ec_leaf", sc_tls13_ec_leaf, 1, ecdsa_lengths),
    ("tls13_alpn", sc_tls13_alpn, 1),
    ("mirror_client", sc_mirror_client, 1),
    ("explicit_curl_connect", sc_explicit_curl_connect, 1),
    ("explicit_curl_tls12", sc_explicit_curl_tls12, 1),
    ("explicit_absolute_http", sc_explicit_absolute_http, 1),
    ("explicit_connect_plaintext", sc_explicit_connect_plaintext, 1),
    ("explicit_proxy_auth", sc_explicit_proxy_auth, 2),
    ("fail_explicit_bad_request", sc_fail_explicit_bad_request, 1),
    ("fail_explicit_upstream_refused", sc_fail_explicit_upstream_refused, 1),
    ("fail_reverse_upstream_refused", sc_fail_reverse_upstream_refused, 1),
    ("fail_untrusted_upstream", sc_fail_untrusted_upstream, 1),
    ("fail_selfsigned_upstream", sc_fail_selfsigned_upstream, 1),
    ("fail_reverse_garbage", sc_fail_reverse_garbage, 1),
    ("fail_reverse_malformed_hello", sc_fail_reverse_malformed_hello, 1),
    ("fail_version_mismatch", sc_fail_version_mismatch, 1),
    ("fail_client_closes_mid_handshake", sc_fail_client_closes_mid_handshake, 1),
    ("fail_client_rejects_certificate", sc_fail_client_rejects_certificate, 1),
    ("fail_hostname_mismatch", sc_fail_hostname_mismatch, 1),
    ("fail_no_shared_cipher_upstream", sc_fail_no_shared_cipher_upstream, 1),
    ("fail_handshake_timeout", sc_fail_handshake_timeout, 1),
    ("fail_upstream_not_tls", sc_fail_upstream_not_tls, 1),
    ("client_reset_after_handshake", sc_client_reset_after_handshake, 1),
    ("idle_timeout", sc_idle_timeout, 1),
    ("trace_all_tls13", sc_trace_all_tls13, 1),
    ("trace_all_tls12", sc_trace_all_tls12, 1),
    ("trace_all_tls12_static_rsa", sc_trace_all_tls12_static_rsa, 1),
    ("trace_all_explicit_plaintext", sc_trace_all_explicit_plaintext, 1),
]


# ----------------------------------------------------------------------------------------------
# normalisation

# Values that are random per handshake or per run: replaced by "<hex:N>" (N = length in hex
# digits, which is stable) when a string, "<n>" when a number.
RANDOM_FIELDS = {
    "random", "session_id", "client_random", "secret", "key", "iv", "mac_key", "verify_data",
    "public", "server_public", "client_public", "age_add", "binders", "binder", "identity",
    "obfuscated_ticket_age", "cookie", "ticket",
}
# Certificate summaries: dates, fingerprints and signatures (ECDSA: of varying length) change with
# every generated certificate, and so do the key identifier extensions (RFC 5280 4.2.1.1, 4.2.1.2).
CERT_FIELDS = {"not_before", "not_after", "sha256", "signature"}
KEY_ID_OIDS = {"2.5.29.14", "2.5.29.35"}
HOSTPORT = re.compile(r"(?<![\w.])((?:\d{1,3}\.){3}\d{1,3}|localhost|\[[0-9a-fA-F:.]+\]):(\d{1,5})\b")
PORTWORD = re.compile(r"(\bport )(\d{1,5})\b")  # curl: "Failed to connect to localhost port 41803"
# tls.established resumption.age: whole seconds since the resumed session was made, 0 or 1 as the
# clock ticks.
RANDOM_FIELDS |= {"age"}


TCP_INFO_STABLE = {"conn", "leg", "event", "at", "sack", "timestamps", "ecn", "snd_wscale", "rcv_wscale"}


class Normaliser:
    def __init__(self, ports):
        self.ports = {str(p): r for p, r in ports.items()}
        self.failed = set()  # connections with an error, a refusal or a TLS alert so far

    def port(self, p):
        return f"<{self.ports[p]}-port>" if p in self.ports else "<port>"

    def text(self, s):
        # Only ports in a recognisable form: a bare number could be anything (a cipher suite id
        # in a JA3 string once matched the server's port).
        s = HOSTPORT.sub(lambda m: m.group(1) + ":" + self.port(m.group(2)), s)
        return PORTWORD.sub(lambda m: m.group(1) + self.port(m.group(2)), s)

    def blank(self, v):
        if isinstance(v, str):
            return f"<hex:{len(v)}>"
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, (int, float)):
            return "<n>"
        if isinstance(v, list):
            return [self.blank(x) for x in v]
        if isinstance(v, dict):
            return {k: self.blank(x) for k, x in v.items()}
        return v

    def value(self, k, v, path):
        if k is not None and (k.endswith("_ms") or k == "ts"):
            return "<ms>"
        if k == "signature" and isinstance(v, str):  # ECDSA signatures vary in length too
            return "<signature>"
        if k in RANDOM_FIELDS and not isinstance(v, dict) or (k == "key" and isinstance(v, str)):
            return self.blank(v)
        if isinstance(v, dict):
            out = {}
            is_cert = "subject" in v and "issuer" in v
            forged = is_cert and PROXY_CA_CN in str(v.get("issuer"))
            for kk, vv in v.items():
                if is_cert and kk in CERT_FIELDS or kk == "text" and v.get("oid") in KEY_ID_OIDS:
                    out[kk] = "<cert>"
                elif forged and kk == "serial":
                    out[kk] = self.blank(vv)
                else:
                    out[kk] = self.value(kk, vv, path + [kk])
            return out
        if isinstance(v, list):
            return [self.value(None, x, path) for x in v]
        if isinstance(v, str):
            return self.text(v)
        return v

    def event(self, e):
        e = dict(e)
        e.pop("ts", None)
        # After close_notify both ways, both sides FIN at once and whose FIN reaches the wire first
        # (tcp.close.by, from the kernel's state) changes from run to run; test_closing.py checks
        # it against a capture instead.
        if (e.get("event") == "tcp.close" and e.get("how") == "fin" and e.get("close_notify_in") is True
                and e.get("close_notify_out") is True):
            e["by"] = "<crossing>"
        # The same on a leg that never relayed TLS, of a connection that failed (an alert, a TLS
        # error, a proxy error answer, a refusal): the peer closes as soon as it reads the alert,
        # the error or the garbage it was sent (or has closed already), and the proxy's FIN
        # follows its last word by one step, so either FIN may be first. A peer that closes with
        # bytes of that last word still unread (curl reads a refused CONNECT's answer up to its
        # head, not the body) resets instead, and that reset may beat the proxy's FIN too (seen
        # in 11 of 20 runs on loopback). test_closing.py and test_tcp_states.py check `by` and
        # `how` against a capture and the kernel.
        if e.get("event") in ("tls.alert", "tls.error", "proxy.error", "conn.refused"):
            self.failed.add(e.get("conn"))
        if (e.get("event") == "tcp.close" and "close_notify_in" not in e and e.get("conn") in self.failed
                and (e.get("how") == "fin" or e.get("by") == "peer")):
            e["by"] = "<crossing>"
            e["how"] = "<fin or the peer's rst>"
        # The kernel's TCP facts: the ISN and timestamps are random, the measurements (RTT, cwnd,
        # segment and byte counts, the state at close) vary from run to run; what both SYNs agreed
        # on does not. test_tcp.py checks the values against a capture and ss.
        if e.get("event") == "tcp.syn":
            e = {k: ("<n>" if k in ("seq", "ts_val") else v) for k, v in e.items()}
            e["options"] = [{k: ("<n>" if k == "tsval" else v) for k, v in o.items()} for o in e.get("options", [])]
        if e.get("event") == "tcp.info":
            e = {k: (v if k in TCP_INFO_STABLE else "<n>") for k, v in e.items()}
        if e.get("event") == "tcp.listen":
            # Overflows are counted per network namespace: another program's listener may add some.
            if e.get("reason") != "start":
                return None
            e = {k: (v if k in ("conn", "event", "listen", "reason", "backlog") else "<n>") for k, v in e.items()}
        return self.value(None, e, [])


# ----------------------------------------------------------------------------------------------
# record / compare


def record(binary, out, only=None, keep_raw=False):
    binary = os.path.abspath(binary)
    os.makedirs(out, exist_ok=True)
    selected = [s for s in SCENARIOS if not only or s[0] in only]
    t0 = time.time()
    failures = []
    with tempfile.TemporaryDirectory(prefix="tlstrace-matrix-") as base:
        pki_dir = os.path.join(base, "pki")
        os.makedirs(pki_dir)
        pki = Pki(pki_dir)
        for i, (name, fn, conns, *extra) in enumerate(selected):
            d = os.path.join(base, name)
            os.makedirs(d)
            for f in ("index.txt",):
                shutil.copy(os.path.join(pki_dir, f), d)
            c = Ctx(binary, d, pki)
            t = time.time()
            peer, error = [], None
            try:
                peer = fn(c)
                c.proxy.wait_closed(conns)
            except Exception as ex:  # record what happened and go on with the next scenario
                error = f"{type(ex).__name__}: {ex}"
            rc = c.proxy.stop() if c.proxy else None
            for stop in reversed(c.stops):
                try:
                    stop()
                except Exception as ex:
                    print(f"{name}: clean-up: {ex}", file=sys.stderr)
            evs = c.proxy.read_events() if c.proxy else []
            norm = Normaliser(c.ports)
            with open(os.path.join(out, f"{name}.jsonl"), "w") as f:
                for e in evs:
                    n = norm.event(e)
                    if n is None:
                        continue
                    for f_ in extra:
                        n = f_(n)
                    f.write(json.dumps(n, separators=(",", ":")) + "\n")
            with open(os.path.join(out, f"{name}.peer.json"), "w") as f:
                json.dump(norm.value(None, {"peer": peer, "proxy_exit": rc, "error": error}, []), f, indent=1)
                f.write("\n")
            if keep_raw:
                shutil.copy(c.proxy.events, os.path.join(out, f"{name}.raw.jsonl"))
            status = "ok" if error is None and rc == 0 else f"ERROR {error or ''} (proxy exit {rc})"
            if status != "ok":
                failures.append(name)
            print(f"[{i + 1:2}/{len(selected)}] {name:36} {len(evs):4} events {time.time() - t:5.2f}s {status}",
                  flush=True)
    print(f"recorded {len(selected)} scenarios into {out} in {time.time() - t0:.1f}s")
    return 1 if failures else 0


def load(path):
    """A recorded events file; a line that is not a JSON object stops the comparison with FILE:LINE
    (exit status 2)."""
    evs = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                e = json.loads(raw.decode("utf-8")) if raw.strip() else None
            except ValueError as err:  # (UnicodeDecodeError and json.JSONDecodeError among them)
                e = err
            if e is None:
                continue
            if not isinstance(e, dict):
                print(f"{path}:{n}: not an event: {e if isinstance(e, ValueError) else 'not a JSON object'}",
                      file=sys.stderr)
                sys.exit(2)
            evs.append(e)
    return evs


def label(e):
    parts = [str(e.get("conn", "")), e.get("leg", "-"), e.get("event", "?")]
    for k in ("dir", "type", "label", "direction", "description", "cause"):
        if k in e:
            parts.append(str(e[k]))
    return " ".join(parts)


def field_diff(a, b, path=""):
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            p = f"{path}.{k}" if path else k
            if k not in b:
                out.append(f"    - {p}: {json.dumps(a[k])[:200]}")
            elif k not in a:
                out.append(f"    + {p}: {json.dumps(b[k])[:200]}")
            else:
                out += field_diff(a[k], b[k], p)
        if not out and list(a) != list(b):
            out.append(f"    ~ {path or '(event)'}: field order {list(a)} -> {list(b)}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            out += field_diff(x, y, f"{path}[{i}]")
    elif a != b or type(a) is not type(b):
        out.append(f"    ~ {path}: {json.dumps(a)[:200]} -> {json.dumps(b)[:200]}")
    return out


def diff_events(ea, eb):
    """Readable lines: events missing/added (by a short label), and field-level changes."""
    la, lb = [label(e) for e in ea], [label(e) for e in eb]
    lines = []
    sm = difflib.SequenceMatcher(a=la, b=lb, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2)):
                if json.dumps(ea[i]) != json.dumps(eb[j]):
                    lines.append(f"  event {i + 1}/{j + 1} {la[i]}:")
                    lines += field_diff(ea[i], eb[j])
            continue
        if op == "replace" and i2 - i1 == j2 - j1:
            for i, j in zip(range(i1, i2), range(j1, j2)):
                lines.append(f"  event {i + 1}/{j + 1} {la[i]}  ->  {lb[j]}:")
                lines += field_diff(ea[i], eb[j])
            continue
        for i in range(i1, i2):
            lines.append(f"  - event {i + 1}: {la[i]}")
        for j in range(j1, j2):
            lines.append(f"  + event {j + 1}: {lb[j]}")
    return lines


def compare(da, db):
    names = sorted({f for f in os.listdir(da) if f.endswith(".jsonl") and not f.endswith(".raw.jsonl")} |
                   {f for f in os.listdir(db) if f.endswith(".jsonl") and not f.endswith(".raw.jsonl")})
    differ = 0
    for n in names:
        pa, pb = os.path.join(da, n), os.path.join(db, n)
        scen = n[:-len(".jsonl")]
        if not os.path.exists(pa) or not os.path.exists(pb):
            print(f"== {scen}: only in {da if os.path.exists(pa) else db}")
            differ += 1
            continue
        lines = diff_events(load(pa), load(pb))
        peer_a, peer_b = (os.path.join(x, scen + ".peer.json") for x in (da, db))
        if os.path.exists(peer_a) and os.path.exists(peer_b):
            with open(peer_a) as fa, open(peer_b) as fb:
                pa_, pb_ = json.load(fa), json.load(fb)
            if pa_ != pb_:
                lines.append("  what the peer saw:")
                lines += field_diff(pa_, pb_)
        if lines:
            differ += 1
            print(f"== {scen}: DIFFERENT")
            print("\n".join(lines))
        else:
            print(f"== {scen}: same ({len(load(pa))} events)")
    print(f"{len(names)} scenarios, {differ} different")
    return 1 if differ else 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="run the matrix through a binary")
    r.add_argument("--bin", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--only", nargs="*", help="scenario names (default: all)")
    r.add_argument("--keep-raw", action="store_true", help="also keep the raw events files")
    c = sub.add_parser("compare", help="compare two recorded directories")
    c.add_argument("a")
    c.add_argument("b")
    sub.add_parser("list", help="print the scenario names")
    a = ap.parse_args(argv)
    if a.cmd == "record":
        return record(a.bin, a.out, a.only, a.keep_raw)
    if a.cmd == "compare":
        return compare(a.a, a.b)
    for name, _, conns, *_ in SCENARIOS:
        print(f"{name} ({conns} connection{'s' if conns > 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
