#!/usr/bin/env python3
"""Capture every plaintext handshake message (TLS 1.3's encrypted ones too) that Python's OpenSSL
client exchanges with a real server, as fixtures: one line per message, "<dir> <hex>", dir being
`out` (client to server) or `in`.

Usage: capture_messages.py HOST:PORT OUT [--tls12] [--cert C --key K] [--ciphers LIST] [--resume]
"""
import argparse, socket, ssl

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr"); ap.add_argument("out")
    ap.add_argument("--tls12", action="store_true"); ap.add_argument("--ciphers")
    ap.add_argument("--cert"); ap.add_argument("--key"); ap.add_argument("--resume", action="store_true")
    ap.add_argument("--groups")
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if a.tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if a.ciphers:
        ctx.set_ciphers(a.ciphers)
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    lines = []
    def cb(conn, direction, version, content_type, msg_type, data):
        if content_type == ssl._TLSContentType.HANDSHAKE:
            lines.append(f"{'out' if direction == 'write' else 'in'} {bytes(data).hex()}")
    ctx._msg_callback = cb
    session = None
    for i in range(2 if a.resume else 1):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="localhost", session=session) as t:
                t.sendall(b"GET / HTTP/1.0\r\n\r\n")
                try:
                    while t.recv(65536):
                        pass
                except (ssl.SSLError, OSError):
                    pass
                session = t.session
        lines.append("--")
    open(a.out, "w").write("\n".join(lines) + "\n")

if __name__ == "__main__":
    main()
