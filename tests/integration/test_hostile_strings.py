"""Peer-supplied strings with every byte value 0x00-0xff (issue [8] item 3): an SNI and ALPN
protocols from a raw ClientHello built here and from openssl s_client, and certificate names
(subject RDNs, SAN DNS/URI/email) from an origin whose certificate this test builds. Both outputs
must stay well-formed: every events line strict UTF-8 JSON, every text trace (--log, -v console,
convert in the three formats) free of raw control bytes; and each value must come back from its
escaped form equal to the bytes this test sent (the independent source)."""
import base64
import datetime
import json
import os
import re
import socket
import subprocess
import unittest

from harness import DEADLINE, TLSTRACE, ProxyTestCase, of, run

from cryptography import x509  # python3-cryptography (tools/deps.sh)
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ALL = bytes(range(256))


def chunks(payload, marker, size):
    """`payload` cut in pieces of `size` bytes (the last padded with '_'), each framed as
    b"<marker><i><" ... b"><marker><i>" so that its escaped form can be found in a text trace."""
    out = []
    for i in range(0, len(payload), size):
        p = payload[i:i + size].ljust(size, b"_")
        tag = f"{marker}{i // size}".encode()
        out.append(tag + b"<" + p + b">" + tag)
    return out


# --- the text trace's escapes (docs/events.md "Peer-supplied strings"), read back ---------------

def unescape(s):
    """`\\\\` `\\n` `\\r` `\\t` `\\xHH`, as docs/events.md defines them; bytes."""
    out, i = bytearray(), 0
    b = s.encode("utf-8")
    while i < len(b):
        c = b[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        n = b[i + 1:i + 2]
        if n == b"x":
            out.append(int(b[i + 2:i + 4], 16))
            i += 4
        else:
            out += {b"\\": b"\\", b"n": b"\n", b"r": b"\r", b"t": b"\t"}[n]
            i += 2
    return bytes(out)


def recover(obj, key):
    """A field's bytes from an events line: `key_hex` when the value was not UTF-8, else the text."""
    hexed = obj.get(key + "_hex")
    v = obj[key]
    if isinstance(v, list):
        return [bytes.fromhex(h) if hexed and h is not None else x.encode("utf-8")
                for x, h in zip(v, hexed or [None] * len(v))]
    return bytes.fromhex(hexed) if hexed is not None else v.encode("utf-8")


def rfc2253_values(dn):
    """OpenSSL's RFC 2253 subject ("L=..,CN=..", with \\, \\XX escapes) as {attr: bytes}; the
    T61 strings it printed as escaped UTF-8 of their Latin-1 characters go back to their bytes."""
    parts, cur, i = [], bytearray(), 0
    while i < len(dn):
        c = dn[i]
        if c == "\\":
            if re.match(r"[0-9A-Fa-f]{2}", dn[i + 1:i + 3]):
                cur.append(int(dn[i + 1:i + 3], 16))
                i += 3
            else:
                cur += dn[i + 1].encode()
                i += 2
        elif c == ",":
            parts.append(bytes(cur))
            cur = bytearray()
            i += 1
        else:
            cur += c.encode()
            i += 1
    parts.append(bytes(cur))
    out = {}
    for p in parts:
        k, v = p.split(b"=", 1)
        out[k.decode()] = v.decode("utf-8").encode("latin-1")
    return out


# --- the peers' bytes ------------------------------------------------------------------------

def client_hello(sni, alpn):
    """A TLS 1.2 ClientHello (RFC 5246 7.4.1.2) with server_name (RFC 6066 3) and ALPN (RFC 7301
    3.1) holding exactly the given bytes."""
    u16 = lambda n: n.to_bytes(2, "big")
    ext = lambda t, body: u16(t) + u16(len(body)) + body
    names = b"\x00" + u16(len(sni)) + sni
    protos = b"".join(bytes([len(p)]) + p for p in alpn)
    exts = (ext(0, u16(len(names)) + names) + ext(16, u16(len(protos)) + protos) +
            ext(10, b"\x00\x04\x00\x1d\x00\x17") + ext(13, b"\x00\x04\x04\x03\x08\x04") + ext(11, b"\x01\x00"))
    body = b"\x03\x03" + os.urandom(32) + b"\x00" + b"\x00\x04\xc0\x2b\xc0\x2f" + b"\x01\x00" + u16(len(exts)) + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + u16(len(hs)) + hs


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der_span(buf, off):
    """(content start, end) of the DER element at `off`."""
    n, at = buf[off + 1], off + 2
    if n & 0x80:
        k = n & 0x7F
        n, at = int.from_bytes(buf[at:at + k], "big"), at + k
    return at, at + n


NAME_ATTRS = [NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME,
              NameOID.LOCALITY_NAME, NameOID.STATE_OR_PROVINCE_NAME]
NAME_KEYS = ["CN", "O", "OU", "L", "ST"]


def hostile_certificate(values, cert_path, key_path):
    """A self-signed certificate whose subject (CN, O, OU, L, ST) and SAN DNS, URI and email names
    are the 64-byte `values` (five of them), whatever bytes they hold: built with placeholders,
    which are then overwritten in the DER (same length) and the TBSCertificate signed again. The
    names are T61Strings (one byte a character: OpenSSL refuses a certificate whose UTF8String
    name is not UTF-8); the SAN's strings are IA5 on the wire and carry the bytes as they are."""
    key = ec.generate_private_key(ec.SECP256R1())
    ph = lambda i: ("P%02d" % i + "q" * 61)
    name = x509.Name([x509.NameAttribute(oid, ph(i)) for i, oid in enumerate(NAME_ATTRS)])
    san = ([x509.DNSName(ph(5 + i)) for i in range(5)] + [x509.UniformResourceIdentifier(ph(10 + i)) for i in range(5)]
           + [x509.RFC822Name(ph(15 + i)) for i in range(5)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(san), critical=False).sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    c0, _ = der_span(der, 0)
    _, t1 = der_span(der, c0)
    tbs = der[c0:t1]
    for i in range(20):
        v, p = values[i % 5], ph(i).encode()
        assert len(v) == 64 and p in tbs
        tbs = tbs.replace(b"\x0c\x40" + p, b"\x14\x40" + v).replace(p, v)
    _, a1 = der_span(der, t1)
    sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    body = tbs + der[t1:a1] + b"\x03" + der_len(len(sig) + 1) + b"\x00" + sig
    out = b"\x30" + der_len(len(body)) + body
    b64 = base64.encodebytes(out).decode().replace("\n", "")
    with open(cert_path, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\n" + "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)) +
                "\n-----END CERTIFICATE-----\n")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def assert_text_safe(test, raw, what):
    """No byte a terminal acts on: below 0x20 only \\n, no DEL, and valid UTF-8 (no C1 either)."""
    bad = sorted({b for b in raw if (b < 0x20 and b != 0x0A) or b == 0x7F})
    test.assertEqual(bad, [], f"{what}: raw control bytes {bad}")
    text = raw.decode("utf-8")  # strict
    test.assertFalse(re.search("[\u0080-\u009f\u202a-\u202e\u2066-\u2069\u2028\u2029]", text), what)
    return text


class HostileStrings(ProxyTestCase):
    def test_every_byte_in_every_peer_string(self):
        d = self.dir
        # Certificate names: five 64-byte values framed "K<i><...>K<i>" (58 bytes of payload each)
        # cover 0x00-0xff. Origin A's names hold them all; NUL makes OpenSSL refuse to print the
        # SAN extension (CVE-2021-3712's fix), so origin B has the same names without NUL (0x01)
        # and its SAN text carries the DNS, URI and email names too.
        names_a = chunks(ALL, "K", 58)
        names_b = [v.replace(b"\x00", b"\x01") for v in names_a]
        hostile_certificate(names_a, f"{d}/a.pem", f"{d}/a.key")
        hostile_certificate(names_b, f"{d}/b.pem", f"{d}/b.key")
        # s_client/s_server take their SNI and ALPN from argv: no NUL, and ',' separates ALPN
        # protocols. The raw ClientHello below carries those two.
        sni_s = chunks(ALL[1:], "S", 128)
        alpn_s = chunks(bytes(b for b in ALL[1:] if b != 0x2C), "A", 127)
        origins = [self.s_server("-alpn", b",".join(alpn_s), cert=f"{d}/a.pem", key=f"{d}/a.key"),
                   self.s_server("-alpn", b",".join(alpn_s), cert=f"{d}/b.pem", key=f"{d}/b.key")]
        p = self.proxy("--insecure", "-v", log=True)

        sent_established = []  # (sni, alpn) of the handshakes that complete
        for i, (sni, alpn) in enumerate(zip(sni_s, alpn_s)):
            r = subprocess.run(["openssl", "s_client", "-proxy", p.addr, "-connect", f"127.0.0.1:{origins[i].port}",
                                "-servername", sni, "-alpn", alpn], input=b"", capture_output=True, timeout=DEADLINE)
            self.assertIn(b"ALPN protocol: " + alpn, r.stdout, r.stderr[-2000:])
            sent_established.append((sni, alpn))

        # The raw ClientHello: the SNI with every byte (NUL too: OpenSSL turns it away, the decoder
        # has traced it by then) and ALPN protocols with every byte.
        sni_raw = b"R<" + ALL + b">R"
        alpn_raw = chunks(ALL, "Q", 128)
        with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as c:
            target = f"127.0.0.1:{origins[0].port}".encode()
            c.sendall(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = c.recv(4096)
                self.assertTrue(chunk, head)
                head += chunk
            self.assertIn(b" 200 ", head.split(b"\r\n")[0])
            c.sendall(client_hello(sni_raw, alpn_raw))
            c.settimeout(5)
            try:
                while c.recv(65536):
                    pass
            except (socket.timeout, ConnectionError):
                pass
        # A CONNECT target or header with such bytes: refused (RFC 9110 5.5, 7.1), or no origin
        # there; nothing of them reaches the outputs raw (checked with the rest below).
        refused = [b"C0<" + ALL[0x80:] + b">C0", b"C1<\x1b[2J\r>C1"]
        for target, header in [(refused[0] + b":443", b"ok"), (refused[1] + b":443", b"ok"),
                               (b"127.0.0.1:443", b"\x1b]0;x\x07\xff")]:
            with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as c:
                c.sendall(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\nX-Evil: " + header + b"\r\n\r\n")
                self.assertRegex(c.recv(4096).split(b"\r\n")[0], rb" [45]\d\d ")  # 400, or 502: no :443 here
        p.conn_closed(6)
        p.stop()

        # --- JSON: strict UTF-8, strict JSON, the checker, and every value back ---
        with open(p.events, "rb") as f:
            raw_lines = f.read().splitlines()
        evs = [json.loads(line.decode("utf-8")) for line in raw_lines]
        self.check_events_file(p.events)
        hellos = [e for e in of(evs, "tls.message", "client") if e["type"] == "ClientHello"]
        got = sorted((recover(h["body"], "sni"), recover(h["body"], "alpn")) for h in hellos)
        self.assertEqual(got, sorted([(s, [a]) for s, a in sent_established] + [(sni_raw, alpn_raw)]))
        est = [(recover(e, "sni"), recover(e, "alpn")) for e in of(evs, "tls.established", "client")]
        self.assertEqual(sorted(est), sorted(sent_established))
        certs = [e["body"]["chain"][0] for e in of(evs, "tls.message", "upstream") if e["type"] == "Certificate"]
        self.assertEqual(len(certs), 2)
        for cert in certs:
            names = names_a if any(b"DNS:" + names_a[0] == s for s in recover(cert, "san")) else names_b
            self.assertEqual(recover(cert, "san"), [b"DNS:" + v for v in names])
            for field in ("subject", "issuer"):
                self.assertEqual(rfc2253_values(cert[field]), dict(zip(NAME_KEYS, names)), field)
            if names is names_b:
                san_ext = [x for x in cert["x509_extensions"] if x["oid"] == "2.5.29.17"][0]
                text = recover(san_ext, "text")
                for kind in (b"DNS:", b"URI:", b"email:"):
                    for v in names:
                        self.assertIn(kind + v, text)

        # --- text: the live trace file, the -v console, convert in the three formats ---
        with open(p.trace, "rb") as f:
            live = assert_text_safe(self, f.read(), "--log")
        with open(p.proc.log_path, "rb") as f:
            console = assert_text_safe(self, f.read(), "-v console")
        converted = {}
        for fmt in ("default", "jsse", "openssl"):
            r = run([TLSTRACE, "convert", "--format", fmt, p.events])
            self.assertEqual(r.returncode, 0, r.stderr)
            converted[fmt] = assert_text_safe(self, r.stdout, f"convert --format {fmt}")
        self.assertEqual(converted["default"], live)  # convert read the _hex bytes back
        sent = {m.group(1): v for v in [*names_a, *names_b, *sni_s, *alpn_s, sni_raw, *alpn_raw]
                for m in [re.match(rb"([A-Z]\d*)<", v)]}
        for what, text in [("--log", live), ("-v console", console), *converted.items()]:
            found = {}
            for m in re.finditer(r"([A-Z]\d*)<(.*?)>\1", text):
                if "\\u" in m.group(2) or '\\"' in m.group(2):
                    # Inside a JSON dump (the openssl format shows some trees so): JSON's escapes,
                    # and U+FFFD where the bytes were not UTF-8 (a _hex sibling carries those).
                    shown = json.loads('"' + m.group(2) + '"')
                    if "\ufffd" in shown:
                        continue
                    value = m.group(1).encode() + b"<" + shown.encode() + b">" + m.group(1).encode()
                else:
                    value = m.group(1).encode() + b"<" + unescape(m.group(2)) + b">" + m.group(1).encode()
                found.setdefault(m.group(1).encode(), set()).add(value)
            for tag, values in found.items():  # each occurrence is one of the values sent, exactly
                self.assertTrue(values <= {*names_a, *names_b, *sni_s, *alpn_s, sni_raw, *alpn_raw, *refused},
                                f"{what}: {tag} shown as {values}")
            # every value in the trace; the console's connection lines name the SNI
            required = sent if what in ("--log", "default") else [v[:2] for v in sni_s] if what == "-v console" else []
            for tag in required:
                self.assertIn(tag, found, f"{what}: {tag} not shown")

if __name__ == "__main__":
    unittest.main()
