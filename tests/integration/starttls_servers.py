"""Small protocol-faithful STARTTLS servers for the tests: SMTP (RFC 3207), IMAP (RFC 9051 6.2.1),
POP3 (RFC 2595 4), PostgreSQL (SSLRequest), MySQL (HandshakeV10 + SSLRequest) and LDAP (RFC 4511
4.14 StartTLS). Each logs what it received before TLS (`preamble`) and over TLS (`tls_lines`),
upgrades with Python's ssl, and answers every line it reads over TLS with `tls-ok: LINE`. With
refuse=True it says no the protocol's own way (454, NO, -ERR, 'N', resultCode 53)."""
import socket
import ssl
import struct
import threading

from harness import ThreadedServer

LDAP_STARTTLS = b"1.3.6.1.4.1.1466.20037"


class StartTlsServer(ThreadedServer):
    def __init__(self, proto, cert, key, refuse=False):
        self.proto, self.refuse = proto, refuse
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.preamble = []   # (who, bytes) in order: "c" from the client, "s" from us
        self.tls_lines = []  # lines read over TLS
        self.tls_version = self.tls_cipher = None
        self.upgraded = threading.Event()
        self.done = threading.Event()
        super().__init__()

    # --- plumbing
    def send(self, c, data):
        self.preamble.append(("s", data))
        c.sendall(data)

    def line(self, c):
        data = b""
        while not data.endswith(b"\n"):
            ch = c.recv(1)
            if not ch:
                break
            data += ch
        self.preamble.append(("c", data))
        return data

    def exact(self, c, n):
        data = b""
        while len(data) < n:
            ch = c.recv(n - len(data))
            if not ch:
                break
            data += ch
        self.preamble.append(("c", data))
        return data

    def handle(self, c):
        try:
            getattr(self, self.proto)(c)
        finally:
            self.done.set()
            c.close()

    def over_tls(self, c):
        t = self.ctx.wrap_socket(c, server_side=True)
        self.tls_version, self.tls_cipher = t.version(), t.cipher()[0]  # the server's own view
        self.upgraded.set()
        f = t.makefile("rb")
        for raw in f:
            self.tls_lines.append(raw)
            t.sendall(b"tls-ok: " + raw.rstrip(b"\r\n") + b"\r\n")
        try:
            t.unwrap()
        except (OSError, ValueError):
            pass
        t.close()

    # --- protocols
    def smtp(self, c):
        self.send(c, b"220 localhost ESMTP tlstrace-test\r\n")
        while True:
            cmd = self.line(c)
            verb = cmd.split(b" ")[0].strip().upper()
            if not cmd:
                return
            if verb in (b"EHLO", b"HELO"):
                self.send(c, b"250-localhost greets you\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n")
            elif verb == b"STARTTLS":
                if self.refuse:
                    self.send(c, b"454 4.7.0 TLS not available due to temporary reason\r\n")
                    continue
                self.send(c, b"220 2.0.0 Ready to start TLS\r\n")
                return self.over_tls(c)
            elif verb == b"QUIT":
                return self.send(c, b"221 2.0.0 Bye\r\n")
            else:
                self.send(c, b"530 5.7.0 Must issue a STARTTLS command first\r\n")

    def imap(self, c):
        self.send(c, b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] tlstrace-test ready\r\n")
        while True:
            cmd = self.line(c)
            if not cmd:
                return
            tag, _, rest = cmd.rstrip(b"\r\n").partition(b" ")
            verb = rest.split(b" ")[0].upper()
            if verb == b"CAPABILITY":
                self.send(c, b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n" + tag + b" OK CAPABILITY completed\r\n")
            elif verb == b"STARTTLS":
                if self.refuse:
                    self.send(c, tag + b" NO [UNAVAILABLE] TLS not available now\r\n")
                    continue
                self.send(c, tag + b" OK Begin TLS negotiation now\r\n")
                return self.over_tls(c)
            elif verb == b"LOGOUT":
                return self.send(c, b"* BYE logging out\r\n" + tag + b" OK LOGOUT completed\r\n")
            else:
                self.send(c, tag + b" BAD command unknown or not allowed before STARTTLS\r\n")

    def pop3(self, c):
        self.send(c, b"+OK tlstrace-test POP3 server ready\r\n")
        while True:
            cmd = self.line(c)
            if not cmd:
                return
            verb = cmd.split(b" ")[0].strip().upper()
            if verb == b"CAPA":
                self.send(c, b"+OK Capability list follows\r\nSTLS\r\nTOP\r\nUIDL\r\n.\r\n")
            elif verb == b"STLS":
                if self.refuse:
                    self.send(c, b"-ERR TLS not available now\r\n")
                    continue
                self.send(c, b"+OK Begin TLS negotiation\r\n")
                return self.over_tls(c)
            elif verb == b"QUIT":
                return self.send(c, b"+OK bye\r\n")
            else:
                self.send(c, b"-ERR STLS first\r\n")

    def postgres(self, c):
        while True:
            head = self.exact(c, 8)
            if len(head) < 8:
                return
            length, code = struct.unpack("!II", head)
            if code == 80877104:  # GSSENCRequest: not here
                self.send(c, b"N")
                continue
            if code != 80877103:
                return
            if self.refuse:
                self.send(c, b"N")
                # The client goes on in plaintext (a StartupMessage) or gives up; either way, bye.
                rest = c.recv(65536)
                if rest:
                    self.preamble.append(("c", rest))
                    msg = b"SFATAL\0C28000\0Mno TLS, no entry\0\0"
                    self.send(c, b"E" + struct.pack("!I", 4 + len(msg)) + msg)
                return
            self.send(c, b"S")
            return self.over_tls(c)

    def mysql(self, c):
        caps = 0x0001 | 0x0200 | 0x8000 | 0x00080000  # LONG_PASSWORD, PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH
        if not self.refuse:
            caps |= 0x0800  # CLIENT_SSL
        payload = (b"\x0a" + b"8.0.36-tlstrace-test\0" + struct.pack("<I", 42) + b"abcdefgh" + b"\0" +
                   struct.pack("<H", caps & 0xffff) + b"\xff" + struct.pack("<H", 2) +
                   struct.pack("<H", caps >> 16) + bytes([21]) + b"\0" * 10 + b"ijklmnopqrst\0" +
                   b"mysql_native_password\0")
        self.send(c, struct.pack("<I", len(payload))[:3] + b"\x00" + payload)
        head = self.exact(c, 4)
        if len(head) < 4:
            return
        n = int.from_bytes(head[:3], "little")
        body = self.exact(c, n)
        if n == 32 and int.from_bytes(body[:4], "little") & 0x0800:
            return self.over_tls(c)

    def ldap(self, c):
        head = self.exact(c, 2)
        if len(head) < 2 or head[0] != 0x30 or head[1] >= 0x80:
            return
        body = self.exact(c, head[1])
        msg_id = body[2]
        if LDAP_STARTTLS not in body:
            return
        code, diag = (53, b"TLS not available now") if self.refuse else (0, b"")
        op = bytes([0x0a, 1, code, 0x04, 0, 0x04, len(diag)]) + diag + bytes([0x8a, len(LDAP_STARTTLS)]) + LDAP_STARTTLS
        msg = bytes([0x02, 1, msg_id, 0x78, len(op)]) + op
        self.send(c, bytes([0x30, len(msg)]) + msg)
        if not self.refuse:
            return self.over_tls(c)
        self.exact(c, 1)  # the client closes (or sends an unbind)
