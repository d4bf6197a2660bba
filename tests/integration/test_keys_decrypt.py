"""tls.keys checked against the records themselves. For every cipher suite OpenSSL 3.0 negotiates at
@SECLEVEL=0 (TLS 1.0, 1.1, 1.2: AEAD, CBC with SHA-1/SHA-256/SHA-384 MACs, NULL, ChaCha20; TLS 1.3:
all five RFC 8446 B.4 suites) openssl s_client talks to openssl s_server through tlstrace, with a
TCP relay of this test's own on each leg that keeps the raw bytes. Every encrypted record of both
directions on both legs is then decrypted AND authenticated (AEAD tag or HMAC, with Python's
`cryptography`, or OpenSSL's EVP through ctypes for ARIA-GCM) with the keys the proxy reported, and
the application data must equal what s_client sent and what it printed as received.

The suite list and each suite's cipher, MAC and ID come from `openssl ciphers -s -V`, the
negotiated version, suite and encrypt_then_mac from the captured ServerHello: nothing is taken from
tlstrace but the keys under test."""
import ctypes
import ctypes.util
import hashlib
import hmac
import re
import socket
import struct
import sys
import threading
import warnings

from harness import DEADLINE, ProxyTestCase, ThreadedServer, of, run
from test_kex import rsa_cert

from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.ciphers.algorithms import AES

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:  # cryptography >= 43 keeps Camellia among the "decrepit" algorithms
        from cryptography.hazmat.decrepit.ciphers.algorithms import Camellia
    except ImportError:
        from cryptography.hazmat.primitives.ciphers.algorithms import Camellia

CIPHERS = "ALL:COMPLEMENTOFALL:@SECLEVEL=0"
TLS13 = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
         "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"]
VERSIONS = {"-tls1": 0x0301, "-tls1_1": 0x0302, "-tls1_2": 0x0303, "-tls1_3": 0x0304}
REQUEST = b"GET / HTTP/1.0\r\n\r\n"
MAC_HASH = {"SHA1": "sha1", "SHA256": "sha256", "SHA384": "sha384", "MD5": "md5"}
# Named in the project's issue as wrong before; the table must keep covering them.
MUST_COVER = {("ECDHE-ECDSA-AES256-SHA", "-tls1_2"), ("AES128-SHA256", "-tls1_2"), ("DHE-RSA-AES256-SHA", "-tls1_2"),
              ("AES128-SHA", "-tls1"), ("ECDHE-RSA-AES256-SHA384", "-tls1_2"),
              ("ECDHE-RSA-CHACHA20-POLY1305", "-tls1_2"), ("TLS_AES_256_GCM_SHA384", "-tls1_3")}


class Suite:
    """One row of `openssl ciphers -V`: 0xC0,0x2C - NAME VERSION Kx=.. Au=.. Enc=..(bits) Mac=.."""

    def __init__(self, line, flag):
        f = line.split()
        self.id = int(f[0].split(",")[0], 16) << 8 | int(f[0].split(",")[1], 16)
        self.name, self.flag = f[2], flag
        kv = dict(x.split("=", 1) for x in f[4:])
        self.kx, self.au, self.mac = kv["Kx"], kv["Au"], kv["Mac"]
        m = re.match(r"([A-Za-z0-9/]+?)(?:\((\d+)\))?$", kv["Enc"])
        self.enc, bits = m.group(1), int(m.group(2) or 0)
        self.key_len = bits // 8

    def __repr__(self):
        return f"{self.name} {self.flag}"


def suite_table():
    """Every suite `openssl ciphers -s` says it can negotiate, per version, and those left out."""
    rows, left_out = [], []
    for flag in ("-tls1", "-tls1_1", "-tls1_2"):
        r = run(["openssl", "ciphers", "-s", "-V", flag, CIPHERS])
        assert r.returncode == 0, r.stderr
        for line in r.stdout.decode().splitlines():
            s = Suite(line, flag)
            if s.au == "DSS":  # tlstrace forges EC or RSA leaves only
                left_out.append(s)
            elif "PSK" in s.kx or "SRP" in s.kx:  # no PSK/SRP identities in a proxy
                left_out.append(s)
            else:
                rows.append(s)
    r = run(["openssl", "ciphers", "-s", "-V", "-tls1_3", "-ciphersuites", ":".join(TLS13), "NULL"])
    rows += [Suite(l, "-tls1_3") for l in r.stdout.decode().splitlines() if "TLSv1.3" in l]
    return rows, left_out


# --- raw bytes -------------------------------------------------------------------------------------

class Capture:
    def __init__(self):
        self.c2s, self.s2c = bytearray(), bytearray()
        self.done = threading.Event()


class Relay(ThreadedServer):
    """A TCP forwarder to 127.0.0.1:target that keeps every byte of each direction."""

    def __init__(self):
        self.target, self.captures = None, []
        super().__init__()

    def handle(self, c):
        cap = Capture()
        self.captures.append(cap)
        u = socket.create_connection(("127.0.0.1", self.target), timeout=DEADLINE)
        back = threading.Thread(target=self._pump, args=(u, c, cap.s2c), daemon=True)
        back.start()
        self._pump(c, u, cap.c2s)
        back.join(DEADLINE)
        c.close()
        u.close()
        cap.done.set()

    @staticmethod
    def _pump(src, dst, buf):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                buf += d
                dst.sendall(d)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def records(stream):
    """RFC 5246 6.2.1: type(1) version(2) length(2) fragment."""
    out, i = [], 0
    while i + 5 <= len(stream):
        n = struct.unpack(">H", stream[i + 3:i + 5])[0]
        out.append((stream[i], bytes(stream[i + 1:i + 3]), bytes(stream[i + 5:i + 5 + n])))
        i += 5 + n
    assert i == len(stream), "a truncated record"
    return out


def handshake_messages(buf):
    """RFC 5246 7.4: type(1) length(3) body; complete messages and the rest."""
    msgs, i = [], 0
    while i + 4 <= len(buf):
        n = int.from_bytes(buf[i + 1:i + 4], "big")
        if i + 4 + n > len(buf):
            break
        msgs.append((buf[i], buf[i + 4:i + 4 + n]))
        i += 4 + n
    return msgs, buf[i:]


def hello(recs):
    """The first handshake message of a direction (ClientHello or ServerHello, in the clear)."""
    buf = b""
    for ctype, _, frag in recs:
        if ctype == 22:
            buf += frag
            msgs, _ = handshake_messages(buf)
            if msgs:
                return msgs[0][1]
    raise AssertionError("no hello")


def server_hello(body):
    """RFC 5246 7.4.1.3 / RFC 8446 4.1.3: (version, cipher suite, extension types)."""
    version = struct.unpack(">H", body[0:2])[0]
    sid = body[34]
    i = 35 + sid
    suite = struct.unpack(">H", body[i:i + 2])[0]
    i += 3
    exts = {}
    if i + 2 <= len(body):
        end = i + 2 + struct.unpack(">H", body[i:i + 2])[0]
        i += 2
        while i + 4 <= end:
            t, n = struct.unpack(">HH", body[i:i + 4])
            exts[t] = body[i + 4:i + 4 + n]
            i += 4 + n
    if 43 in exts:  # supported_versions
        version = struct.unpack(">H", exts[43])[0]
    return version, suite, set(exts)


# --- record protection -----------------------------------------------------------------------------

class AuthError(Exception):
    pass


_libcrypto = None


def ossl_aead_open(name, key, nonce, ct, tag, aad):
    """ARIA-GCM, which `cryptography` lacks, through libcrypto's EVP interface."""
    global _libcrypto
    if _libcrypto is None:
        _libcrypto = ctypes.CDLL(ctypes.util.find_library("crypto"))
        L, P, I = _libcrypto, ctypes.c_void_p, ctypes.c_int
        L.EVP_CIPHER_fetch.restype, L.EVP_CIPHER_fetch.argtypes = P, [P, ctypes.c_char_p, ctypes.c_char_p]
        L.EVP_CIPHER_CTX_new.restype = P
        L.EVP_CIPHER_CTX_free.argtypes = [P]
        L.EVP_CIPHER_free.argtypes = [P]
        L.EVP_DecryptInit_ex.argtypes = [P, P, P, ctypes.c_char_p, ctypes.c_char_p]
        L.EVP_CIPHER_CTX_ctrl.argtypes = [P, I, I, P]
        L.EVP_DecryptUpdate.argtypes = [P, P, ctypes.POINTER(I), ctypes.c_char_p, I]
        L.EVP_DecryptFinal_ex.argtypes = [P, P, ctypes.POINTER(I)]
    L = _libcrypto
    c = L.EVP_CIPHER_fetch(None, name.encode(), None)
    x = L.EVP_CIPHER_CTX_new()
    try:
        out = ctypes.create_string_buffer(len(ct) + 32)
        n, m = ctypes.c_int(0), ctypes.c_int(0)
        tagbuf = ctypes.create_string_buffer(tag, len(tag))
        ok = (c and L.EVP_DecryptInit_ex(x, c, None, None, None) == 1
              and L.EVP_CIPHER_CTX_ctrl(x, 0x9, len(nonce), None) == 1  # EVP_CTRL_AEAD_SET_IVLEN
              and L.EVP_DecryptInit_ex(x, None, None, key, nonce) == 1
              and L.EVP_DecryptUpdate(x, None, ctypes.byref(n), aad, len(aad)) == 1
              and L.EVP_DecryptUpdate(x, out, ctypes.byref(n), ct, len(ct)) == 1
              and L.EVP_CIPHER_CTX_ctrl(x, 0x11, len(tag), ctypes.cast(tagbuf, ctypes.c_void_p)) == 1  # SET_TAG
              and L.EVP_DecryptFinal_ex(x, ctypes.byref(out, n.value), ctypes.byref(m)) == 1)
        if not ok:
            raise AuthError("ARIA-GCM tag")
        return out.raw[:n.value + m.value]
    finally:
        L.EVP_CIPHER_CTX_free(x)
        if c:
            L.EVP_CIPHER_free(c)


def aead_open(suite, key, nonce, data, aad):
    """AEAD_* open of ciphertext||tag; AuthError when the tag does not verify."""
    enc = suite.enc
    try:
        if enc == "AESGCM":
            return AESGCM(key).decrypt(nonce, data, aad)
        if enc in ("AESCCM", "AESCCM8"):
            return AESCCM(key, tag_length=8 if enc == "AESCCM8" else 16).decrypt(nonce, data, aad)
        if enc == "CHACHA20/POLY1305":
            return ChaCha20Poly1305(key).decrypt(nonce, data, aad)
    except Exception as e:  # cryptography.exceptions.InvalidTag
        raise AuthError(f"{enc} tag: {type(e).__name__}")
    if enc == "ARIAGCM":
        return ossl_aead_open(f"ARIA-{len(key) * 8}-GCM", key, nonce, data[:-16], data[-16:], aad)
    raise AssertionError(f"no AEAD for {enc}")


def tag_len(suite):
    return 8 if suite.enc == "AESCCM8" else 16


def xor_seq(iv, seq):
    """RFC 8446 5.3 / RFC 7905 2: the 64-bit sequence number left-padded to the IV and XORed in."""
    s = seq.to_bytes(len(iv), "big")
    return bytes(a ^ b for a, b in zip(iv, s))


class Tls12Direction:
    """One direction's record protection after its ChangeCipherSpec: RFC 5246 6.2.3 (CBC with
    MAC-then-encrypt, or encrypt-then-MAC per RFC 7366), RFC 5288/6655 (GCM, CCM), RFC 7905
    (ChaCha20-Poly1305); TLS 1.0 chains the CBC IV across records (RFC 2246 6.2.3.2)."""

    def __init__(self, suite, version, keys, etm):
        self.s, self.version, self.etm, self.seq = suite, version, etm, 0
        self.key, self.iv = bytes.fromhex(keys["key"]), bytes.fromhex(keys["iv"])
        self.mac_key = bytes.fromhex(keys.get("mac_key", ""))
        self.mac = MAC_HASH.get(suite.mac)

    def _hmac(self, ctype, ver, data):
        h = struct.pack(">QB", self.seq, ctype) + ver + struct.pack(">H", len(data))
        return hmac.new(self.mac_key, h + data, self.mac).digest()

    def _check_mac(self, ctype, ver, data, mac):
        if not hmac.compare_digest(self._hmac(ctype, ver, data), mac):
            raise AuthError(f"HMAC-{self.mac} of record {self.seq}")

    def _cbc(self, iv, ct):
        alg = AES(self.key) if self.s.enc == "AES" else Camellia(self.key)
        d = Cipher(alg, modes.CBC(iv)).decryptor()
        padded = d.update(ct) + d.finalize()
        pad = padded[-1]
        if pad + 1 > len(padded) or padded[-1 - pad:] != bytes([pad]) * (pad + 1):
            raise AuthError(f"CBC padding of record {self.seq}")
        return padded[:-1 - pad]

    def open(self, ctype, ver, frag):
        try:
            return self._open(ctype, ver, frag)
        finally:
            self.seq += 1

    def _open(self, ctype, ver, frag):
        s, seq8 = self.s, struct.pack(">Q", self.seq)
        if s.mac == "AEAD":
            if s.enc == "CHACHA20/POLY1305":
                nonce, data = xor_seq(self.iv, self.seq), frag
            else:
                nonce, data = self.iv + frag[:8], frag[8:]
            aad = seq8 + bytes([ctype]) + ver + struct.pack(">H", len(data) - tag_len(s))
            return aead_open(s, self.key, nonce, data, aad)
        n = hashlib.new(self.mac).digest_size
        if s.enc == "None":
            pt, mac = frag[:-n], frag[-n:]
            self._check_mac(ctype, ver, pt, mac)
            return pt
        if self.etm:  # RFC 7366 3: MAC over the IV and ciphertext
            body, mac = frag[:-n], frag[-n:]
            self._check_mac(ctype, ver, body, mac)
        else:
            body = frag
        if self.version >= 0x0302:
            iv, ct = body[:16], body[16:]
        else:
            iv, ct = self.iv, body
            self.iv = ct[-16:]
        pt = self._cbc(iv, ct)
        if not self.etm:
            pt, mac = pt[:-n], pt[-n:]
            self._check_mac(ctype, ver, pt, mac)
        return pt


def open_tls12(recs, suite, version, keys, etm):
    """Application data of one direction; every record after ChangeCipherSpec must authenticate."""
    d, out, n = None, b"", 0
    for ctype, ver, frag in recs:
        if d is None:
            if ctype == 20:
                d = Tls12Direction(suite, version, keys, etm)
            continue
        pt = d.open(ctype, ver, frag)
        n += 1
        if ctype == 23:
            out += pt
    return out, n


def open_tls13(recs, suite, epochs):
    """RFC 8446 5.2: protected records are opaque_type 23; the sender moves from its handshake to
    its application keys after its Finished. Every such record must authenticate."""
    keys = [(bytes.fromhex(e["key"]), bytes.fromhex(e["iv"])) for e in epochs]
    epoch, seq, hs, out, n = 0, 0, b"", b"", 0
    for ctype, ver, frag in recs:
        if ctype != 23:  # the hellos, compatibility ChangeCipherSpec
            continue
        key, iv = keys[epoch]
        inner = aead_open(suite, key, xor_seq(iv, seq), frag, bytes([ctype]) + ver + struct.pack(">H", len(frag)))
        seq += 1
        n += 1
        inner = inner.rstrip(b"\0")
        itype, content = inner[-1], inner[:-1]
        if itype == 23:
            out += content
        elif itype == 22 and epoch == 0:
            msgs, hs = handshake_messages(hs + content)
            if any(t == 20 for t, _ in msgs):  # Finished
                epoch, seq = 1, 0
    return out, n


def check_leg(cap, evs, suite, request, response):
    """Decrypts one leg's capture with that leg's tls.keys; returns (problems, etm or None)."""
    c2s, s2c = records(cap.c2s), records(cap.s2c)
    ch = hello(c2s)
    random = ch[2:34].hex()
    secrets = [e for e in of(evs, "tls.secret") if e["client_random"] == random]
    if not secrets:
        return ["no tls.secret for this client_random"], None
    conn, leg = secrets[0]["conn"], secrets[0]["leg"]
    version, suite_id, exts = server_hello(hello(s2c))
    problems = []
    if version != VERSIONS[suite.flag] or suite_id != suite.id:
        problems.append(f"negotiated {version:#06x}/{suite_id:#06x}")
        return problems, None
    keys = of(evs, "tls.keys", leg, conn)
    etm = 22 in exts if version < 0x0304 else None  # encrypt_then_mac (RFC 7366)
    for direction, recs, want in (("client_write", c2s, request), ("server_write", s2c, response)):
        mine = [e for e in keys if e["direction"] == direction]
        try:
            if version == 0x0304:
                by = {e["epoch"]: e for e in mine}
                if "handshake" not in by or "application" not in by:
                    problems.append(f"{leg} {direction}: epochs {sorted(by)}")
                    continue
                got, n = open_tls13(recs, suite, [by["handshake"], by["application"]])
            else:
                if len(mine) != 1:
                    problems.append(f"{leg} {direction}: {len(mine)} tls.keys events")
                    continue
                got, n = open_tls12(recs, suite, version, mine[0], etm)
        except (AuthError, ValueError, IndexError) as e:
            problems.append(f"{leg} {direction}: {type(e).__name__}: {e}")
            continue
        if got != want:
            problems.append(f"{leg} {direction}: {n} records opened, plaintext differs ({len(got)} vs {len(want)} bytes)")
    return problems, (leg, etm)


def keys_complete(evs, randoms, tls13):
    """Have both legs' secrets and every tls.keys event they will get been written? (The writer
    flushes in passes: the secrets can be in the file before the last keys are.)"""
    legs = {(e["conn"], e["leg"]) for e in of(evs, "tls.secret") if e["client_random"] in randoms}
    if len(legs) != 2:
        return False
    want = {("client_write", "handshake"), ("client_write", "application"), ("server_write", "handshake"),
            ("server_write", "application")} if tls13 else None
    for conn, leg in legs:
        got = [e for e in of(evs, "tls.keys", leg, conn)]
        if tls13 and not want <= {(e["direction"], e.get("epoch")) for e in got}:
            return False
        if not tls13 and {e["direction"] for e in got} != {"client_write", "server_write"}:
            return False
    return True


class DerivedKeysDecrypt(ProxyTestCase):
    def test_every_suite_and_version_decrypts_and_authenticates(self):
        rows, left_out = suite_table()
        self.assertTrue(MUST_COVER <= {(s.name, s.flag) for s in rows}, MUST_COVER - {(s.name, s.flag) for s in rows})
        self.assertGreater(len(rows), 100)
        rsa, rsa_key = rsa_cert(self.dir)
        dh = f"{self.dir}/ffdhe2048.pem"
        self.assertEqual(run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
                              "dh_param:ffdhe2048", "-out", dh]).returncode, 0)
        common = ["-dcert", self.pki.cert, "-dkey", self.pki.key, "-dhparam", dh, "-cipher", CIPHERS,
                  "-ciphersuites", ":".join(TLS13)]
        servers = {True: self.s_server(*common, cert=rsa, key=rsa_key),
                   False: self.s_server(*common, "-no_etm", cert=rsa, key=rsa_key)}
        front, back = Relay(), Relay()
        self._stops += [front.stop, back.stop]
        proxy_args = ["-m", "reverse", "-u", f"127.0.0.1:{back.port}", "--insecure", "--mirror-client",
                      "--client-tls-min", "1.0", "--client-ciphers", CIPHERS, "--client-ciphersuites", ":".join(TLS13),
                      "--trace", "keys", "--log-secrets"]
        proxies = {"rsa": self.proxy(*proxy_args, "--leaf-key", "rsa", "--dhparam", dh),
                   "ec": self.proxy(*proxy_args, "--leaf-key", "ec")}
        failures, modes_seen, i = [], set(), 0
        for s in rows:
            p = proxies["ec" if s.au in ("ECDSA", "any") else "rsa"]
            cbc = s.mac != "AEAD"
            # CBC suites cycle through encrypt-then-MAC and MAC-then-encrypt on each leg.
            client_etm, server_etm = ((True, True), (False, False), (True, False), (False, True))[i % 4]
            i += cbc
            front.target, back.target = p.port, servers[server_etm or not cbc].port
            n_front, n_back = len(front.captures), len(back.captures)
            cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{front.port}", "-quiet", s.flag]
            cmd += ["-ciphersuites", s.name] if s.flag == "-tls1_3" else ["-cipher", f"{s.name}:@SECLEVEL=0"]
            if cbc and not client_etm:
                cmd.append("-no_etm")
            r = run(cmd, input=REQUEST, timeout=DEADLINE)
            response = r.stdout
            if r.returncode != 0 or not response.startswith(b"HTTP/1.0 200 ok"):
                failures.append(f"{s}: s_client rc {r.returncode}: {r.stderr.decode(errors='replace')[-300:]}")
                continue
            caps = front.captures[n_front:], back.captures[n_back:]
            if len(caps[0]) != 1 or len(caps[1]) != 1:
                failures.append(f"{s}: {len(caps[0])}/{len(caps[1])} connections relayed")
                continue
            for cap in (caps[0][0], caps[1][0]):
                self.assertTrue(cap.done.wait(DEADLINE))
            randoms = {hello(records(c[0].c2s))[2:34].hex() for c in caps}
            evs = p.wait_events(lambda evs: keys_complete(evs, randoms, s.flag == "-tls1_3"))
            for cap in (caps[0][0], caps[1][0]):
                problems, mode = check_leg(cap, evs, s, REQUEST, response)
                failures += [f"{s}: {x}" for x in problems]
                if mode and cbc and s.enc != "None":
                    modes_seen.add(mode)
        print(f"\n{len(rows)} suite/version rows checked on both legs; left out (no DSA leaf, no PSK/SRP): "
              f"{len(left_out)}: " + " ".join(sorted({x.name for x in left_out})), file=sys.stderr)
        for f in failures:
            print("FAIL", f, file=sys.stderr)
        self.assertEqual(failures, [])
        # Both CBC record formats were exercised on both legs.
        self.assertEqual(modes_seen, {(leg, etm) for leg in ("client", "upstream") for etm in (True, False)})
        for p in proxies.values():
            self.check_events_file(p.events, ["tls.keys"])


if __name__ == "__main__":
    import unittest
    unittest.main()
