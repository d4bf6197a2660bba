#!/usr/bin/env python3
"""Runs tlstrace through a scenario that produces every kind of event and prints one real example
line per event (JSON Lines), for docs/events.md. Usage: tools/event_examples.py [BUILD_DIR]"""
import json
import os
import socket
import ssl
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "build")
os.environ.setdefault("TLSTRACE_BIN", os.path.join(build, "tlstrace"))
import harness  # noqa: E402


def main():
    with tempfile.TemporaryDirectory() as d:
        pki = harness.Pki(d)
        srv = harness.SServer(d, pki.cert, pki.key)
        bad = harness.SServer(d, pki.bad_cert, pki.bad_key, name="bad")
        echo = harness.EchoServer()
        p = harness.Tlstrace(d, "--upstream-ca", pki.ca, "--trace", "all", "--log-secrets", "--mirror-client",
                             "--max-connections", "1000")
        try:
            for target, maxv in ((f"localhost:{srv.port}", ssl.TLSVersion.TLSv1_3),
                                 (f"localhost:{srv.port}", ssl.TLSVersion.TLSv1_2),
                                 (f"localhost:{bad.port}", ssl.TLSVersion.TLSv1_3)):
                s = socket.create_connection(("127.0.0.1", p.port))
                s.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
                s.recv(1024)
                ctx = ssl.create_default_context(cafile=p.ca)
                ctx.maximum_version = maxv
                try:
                    with ctx.wrap_socket(s, server_hostname="localhost") as t:
                        t.sendall(b"GET / HTTP/1.0\r\n\r\n")
                        while t.recv(65536):
                            pass
                except (ssl.SSLError, OSError):
                    pass
            s = socket.create_connection(("127.0.0.1", p.port))
            s.sendall(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\n\r\n".encode())
            s.recv(1024)
            s.sendall(b"ping\n")
            s.recv(100)
            s.close()
            s = socket.create_connection(("127.0.0.1", p.port))
            s.sendall(b"CONNECT nowhere HTTP/1.1\r\n\r\n")
            s.recv(1024)
            s.close()
            p.conn_closed(5)
        finally:
            p.stop()
            srv.stop()
            bad.stop()
            echo.stop()
        seen = {}
        for e in p.read_events():
            if e["event"] == "tls.message" and e["type"] != "ServerHello":
                continue  # a ServerHello shows a body and a fingerprint in reasonable length
            seen.setdefault(e["event"], e)
        for name, e in seen.items():
            print(json.dumps(e, separators=(",", ":")))


if __name__ == "__main__":
    main()
