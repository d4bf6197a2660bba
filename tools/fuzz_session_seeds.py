#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_session.cpp from real captured bytes.

The target reads its input with libFuzzer's FuzzedDataProvider: integers (world, operation codes,
lengths, cuts) from the end of the input, byte strings from the front. A seed is written as a
script of operations; this module lays it out the same way (integers reversed at the end).

Real bytes: the ClientHellos of tests/data/ch_*.hex (curl, GnuTLS, Java, Node, OpenSSL, Python,
captured by tools/capture_hello.py), the server flights of tests/data/msgs_*.txt (captured by
tools/capture_messages.py) wrapped in handshake records, and the explicit-proxy requests of
tests/fuzz/corpus/connect. The rest are the real in-memory OpenSSL client and server the target
runs, in scripted orders (handshakes, data, close_notify, KeyUpdate, renegotiation, FIN, RST,
timeouts, failed connects, shutdown).

Usage: tools/fuzz_session_seeds.py [OUT_DIR]   (default tests/fuzz/corpus/session)
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"

# Operation codes: enum Op of tests/fuzz/fuzz_session.cpp.
(CLIENT_BYTES, UPSTREAM_BYTES, CLIENT_PEER, SERVER_PEER, WRITTEN, CONNECTED, CONNECT_FAILED, CLOSED,
 WRITE_FAILED, TIMER, ADVANCE, STOP, CLIENT_ACT, SERVER_ACT) = range(14)
CLIENT, UPSTREAM = 0, 1
FIN, RST, ERROR = 0, 1, 2
# The world byte: bit 0 explicit front end, 1 full trace, 2 verify upstream (and Proxy-Authorization
# when explicit), 3 client max TLS 1.2, 4 server max TLS 1.2, 5 no SNI from the real client.
EXPLICIT, FULL, VERIFY, CLIENT12, SERVER12, NO_SNI = 1, 2, 4, 8, 16, 32


class Script:
    def __init__(self, world):
        self.front = bytearray()
        self.tail = [world]  # in consumption order

    def u8(self, v):
        self.tail.append(v & 0xFF)

    def u16(self, v):  # ConsumeIntegral<uint16_t> and ranges above 255: high byte first
        self.tail += [(v >> 8) & 0xFF, v & 0xFF]

    def op(self, code):
        self.u8(code)
        return self

    def raw(self, leg, data, code=CLIENT_BYTES):
        self.op(code).u8(leg)
        self.u16(len(data))
        self.front += data
        return self

    def peer(self, server, cut=0):
        self.op(SERVER_PEER if server else CLIENT_PEER).u16(cut)
        self.u8(0)  # no byte flipped
        return self

    def written(self, leg):
        self.op(WRITTEN).u8(leg)
        return self

    def connected(self):
        self.op(CONNECTED).u8(1)
        return self

    def connect_failed(self, timeout):
        self.op(CONNECT_FAILED).u8(0)
        self.u8(1 if timeout else 0)
        return self

    def closed(self, leg, how, peer_fin_first=False):
        self.op(CLOSED).u8(leg)
        self.u8(how)
        self.u8(1 if peer_fin_first else 0)
        return self

    def write_failed(self, leg, reset):
        self.op(WRITE_FAILED).u8(leg)
        self.u8(1 if reset else 0)
        return self

    def timer(self):
        return self.op(TIMER)

    def advance(self, ms):
        self.op(ADVANCE).u16(ms // 8)
        return self

    def stop(self):
        return self.op(STOP)

    def act(self, server, what, data=b""):  # what: 0 data, 1 close_notify, 2 KeyUpdate, 3 renegotiate
        self.op(SERVER_ACT if server else CLIENT_ACT).u8(1 if server else 0)
        self.u8(what)
        self.u16(len(data))
        self.front += data
        return self

    def pump(self, rounds=8):
        """Moves bytes both ways like the playbook tests' pump(): writes done, peers fed."""
        for _ in range(rounds):
            self.written(CLIENT).written(UPSTREAM).peer(True).written(UPSTREAM).written(CLIENT).peer(False)
        return self

    def bytes(self):
        return bytes(self.front) + bytes(reversed(self.tail))


def hexfile(p):
    return bytes.fromhex("".join(p.read_text().split()))


def records(msgs, version=b"\x03\x03"):
    body = b"".join(msgs)
    out = b""
    for i in range(0, len(body), 16384):
        chunk = body[i:i + 16384]
        out += b"\x16" + version + len(chunk).to_bytes(2, "big") + chunk
    return out


def server_flight(txt):
    """The server's first flight of a capture (its messages up to the client's next one)."""
    msgs, started = [], False
    for line in txt.read_text().splitlines():
        parts = line.split()
        if len(parts) != 2:
            break
        if parts[0] == "in":
            started = True
            msgs.append(bytes.fromhex(parts[1]))
        elif started:
            break
    return msgs


def client_hello_msg(txt):
    for line in txt.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "out" and parts[1].startswith("01"):
            return bytes.fromhex(parts[1])
    return None


def seeds():
    out = {}
    # Real handshakes through the session, in each world.
    for world in (0, FULL, VERIFY, CLIENT12 | FULL, SERVER12 | FULL, CLIENT12 | SERVER12, NO_SNI | FULL):
        s = Script(world).peer(False).connected().pump()
        s.act(False, 0, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").pump(3)
        s.act(True, 0, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").pump(3)
        s.act(False, 2, b"after key update").act(True, 2, b"after key update").pump(3)
        s.act(False, 1).pump(2).act(True, 1).pump(2).closed(CLIENT, FIN).closed(UPSTREAM, FIN).pump(2)
        out[f"handshake_w{world}"] = s.bytes()
    # Explicit proxy: CONNECT, its 200, then TLS; and with the Proxy-Authorization the world wants.
    for world, auth in ((EXPLICIT, b""), (EXPLICIT | FULL | VERIFY, b"Proxy-Authorization: Basic dTpw\r\n")):
        req = b"CONNECT localhost:4433 HTTP/1.1\r\nHost: localhost:4433\r\n" + auth + b"\r\n"
        s = Script(world).raw(CLIENT, req).connected().written(CLIENT).peer(False).pump()
        s.act(False, 0, b"ping").pump(3).act(True, 0, b"pong").pump(3).closed(CLIENT, RST).pump(2)
        out[f"explicit_w{world}"] = s.bytes()
    # The explicit-proxy requests of the connect corpus, as a client's first bytes.
    for p in sorted((ROOT / "tests" / "fuzz" / "corpus" / "connect").iterdir()):
        s = Script(EXPLICIT).raw(CLIENT, p.read_bytes()).connected().written(CLIENT).written(UPSTREAM)
        s.raw(UPSTREAM, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", UPSTREAM_BYTES).pump(2)
        out[f"explicit_{p.name}"] = s.bytes()
    # ClientHellos of real stacks on the client leg (records), then the real server upstream.
    for p in sorted(DATA.glob("ch_*.hex")):
        for world in (0, FULL):
            s = Script(world).raw(CLIENT, hexfile(p)).connected().pump(4).timer()
            out[f"{p.stem}_w{world}"] = s.bytes()
        # The same hello one byte per read.
        s = Script(FULL)
        for b in hexfile(p)[:64]:
            s.raw(CLIENT, bytes([b]))
        out[f"{p.stem}_bytewise"] = s.bytes()
    # Real servers' first flights (as records) on the upstream leg, after the real client's hello.
    for p in sorted(DATA.glob("msgs_*.txt")):
        flight = server_flight(p)
        for world in (FULL, FULL | VERIFY):
            s = Script(world).peer(False).connected().written(UPSTREAM)
            s.raw(UPSTREAM, records(flight), UPSTREAM_BYTES).pump(2).closed(UPSTREAM, FIN).pump(1)
            out[f"{p.stem}_server_w{world}"] = s.bytes()
        hello = client_hello_msg(p)
        if hello:
            s = Script(FULL).raw(CLIENT, records([hello], b"\x03\x01")).connected().pump(3)
            out[f"{p.stem}_hello"] = s.bytes()
    for p in sorted(DATA.glob("sh_*.hex")):
        s = Script(FULL).peer(False).connected().written(UPSTREAM).raw(UPSTREAM, hexfile(p), UPSTREAM_BYTES).pump(2)
        out[f"{p.stem}_upstream"] = s.bytes()
    # Failures and timing: connect refused or timed out, handshake timeout, idle timeout, resets,
    # write failures, renegotiation, a shutdown mid-handshake, plain text instead of TLS.
    for timeout in (False, True):
        out[f"connect_failed_{int(timeout)}"] = Script(FULL).peer(False).connect_failed(timeout).pump(2).bytes()
    out["handshake_timeout"] = Script(FULL).peer(False).connected().advance(11000).timer().pump(2).timer().bytes()
    out["idle_timeout"] = Script(FULL).peer(False).connected().pump().advance(60000).timer().pump(2).timer().bytes()
    out["reset_mid_handshake"] = Script(FULL).peer(False).connected().pump(1).closed(UPSTREAM, RST).pump(2).bytes()
    out["write_failed"] = Script(FULL).peer(False).connected().pump().act(False, 0, b"x" * 100).pump(1) \
        .write_failed(UPSTREAM, True).pump(2).bytes()
    out["renegotiate_tls12"] = Script(CLIENT12 | SERVER12 | FULL).peer(False).connected().pump() \
        .act(True, 3).pump(4).act(False, 3).pump(4).bytes()
    out["stop_mid_handshake"] = Script(FULL).peer(False).connected().pump(1).stop().pump(3).advance(3000).timer().bytes()
    out["stop_relaying"] = Script(0).peer(False).connected().pump().stop().pump(3).closed(CLIENT, FIN, True).bytes()
    out["plaintext_explicit"] = Script(EXPLICIT).raw(CLIENT, b"CONNECT localhost:22 HTTP/1.1\r\n\r\n").connected() \
        .written(CLIENT).raw(CLIENT, b"SSH-2.0-OpenSSH_9.2\r\n").written(UPSTREAM) \
        .raw(UPSTREAM, b"SSH-2.0-OpenSSH_9.2\r\n", UPSTREAM_BYTES).pump(2).bytes()
    out["not_tls_reverse"] = Script(0).raw(CLIENT, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").pump(2).bytes()
    return out


def main():
    dest = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "fuzz" / "corpus" / "session"
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (dest / f"seed_{name}").write_bytes(data)
    print(f"{len(seeds())} seeds in {dest}")


if __name__ == "__main__":
    main()
