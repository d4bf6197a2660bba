"""Peers for the server-speaks-first test and the hostile soak: a banner-first server (SSH-like), a
CONNECT helper that keeps what arrives after the 200, and hostile clients (slowloris, half-open,
garbage, a raw ClientHello with control characters and invalid UTF-8 in SNI and ALPN, a reset in
the middle of the handshake). Every wait is bounded; every socket is closed by its owner."""
import os
import socket
import ssl
import struct
import time

from harness import DEADLINE, ThreadedServer

BANNER = b"SSH-2.0-test\r\n"


class BannerServer(ThreadedServer):
    """Speaks first, like an SSH or SMTP server: BANNER on accept, then echoes every byte back.
    `sent` and `got` count, per server, what it really wrote and read (the independent side)."""

    def __init__(self):
        self.sent = 0
        self.got = 0
        super().__init__()
        self.sock.listen(256)

    def handle(self, c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with c:
            c.sendall(BANNER)
            self.sent += len(BANNER)
            while True:
                data = c.recv(65536)
                if not data:
                    break
                self.got += len(data)
                c.sendall(data)
                self.sent += len(data)


def connect(proxy_port, target, timeout=DEADLINE, source=None):
    """A socket tunnelled with CONNECT: (socket, the response head, bytes that came after it).
    source: the loopback address to connect from (all of 127/8 is ours)."""
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return s, head.decode(errors="replace"), rest


def recv_exactly(s, n, have=b""):
    """n bytes (what the caller has already counts), or fewer if the peer closes first."""
    data = have
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def drain(s, limit_s):
    """Reads until the peer closes or resets, at most limit_s seconds; the byte count."""
    n = 0
    end = time.time() + limit_s
    try:
        while time.time() < end:
            s.settimeout(max(0.05, end - time.time()))
            chunk = s.recv(65536)
            if not chunk:
                break
            n += len(chunk)
    except OSError:
        pass
    return n


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


# A raw ClientHello (RFC 8446 4.1.2) whose server_name (RFC 6066 3) and ALPN (RFC 7301 3.1) carry
# the bytes an attacker would use to forge a trace line or break JSON: ESC, BEL, CR/LF, NUL, DEL
# and invalid UTF-8.
HOSTILE_NAME = b"ev\x1b[31mil\x07\r\nfake line\x00\x7f\xff\xfe\xc3(.test"
HOSTILE_ALPN = [b"h2\x1b]0;x\x07", b"\xff\xfe\r\n\x00"]


def hostile_client_hello(name=HOSTILE_NAME, alpn=HOSTILE_ALPN):
    def u16(n):
        return struct.pack("!H", n)

    def ext(t, body):
        return u16(t) + u16(len(body)) + body

    sni = b"\x00" + u16(len(name)) + name
    protos = b"".join(bytes([len(p)]) + p for p in alpn)
    exts = (ext(0, u16(len(sni)) + sni) + ext(16, u16(len(protos)) + protos)
            + ext(10, u16(4) + u16(0x001d) + u16(0x0017))  # supported_groups
            + ext(13, u16(4) + u16(0x0403) + u16(0x0804))  # signature_algorithms
            + ext(43, b"\x04\x03\x04\x03\x03")  # supported_versions: TLS 1.3, 1.2
            + ext(51, u16(36) + u16(0x001d) + u16(32) + os.urandom(32)))  # key_share x25519
    suites = u16(0x1301) + u16(0xc02f)
    body = (b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32) + u16(len(suites)) + suites + b"\x01\x00"
            + u16(len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + u16(len(hs)) + hs


def real_client_hello(server_hostname="localhost"):
    """The first flight of Python's TLS client, without a socket."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()
