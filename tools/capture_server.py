#!/usr/bin/env python3
"""Send a captured ClientHello (hex file) to a real TLS server and save its first flight as hex.

Usage: capture_server.py CLIENTHELLO.hex HOST:PORT OUT.hex
"""
import socket, sys, time

def main():
    hello = bytes.fromhex(open(sys.argv[1]).read().strip())
    host, port = sys.argv[2].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(hello)
    data, deadline = b"", time.time() + 2
    s.settimeout(0.5)
    while time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    open(sys.argv[3], "w").write(data.hex() + "\n")

if __name__ == "__main__":
    main()
