#!/usr/bin/env python3
"""Capture the first TLS flight a real client sends (its ClientHello records) as hex, for fixtures.

Usage: capture_hello.py PORT_FILE OUT_HEX -- CLIENT COMMAND ({port} is replaced)
Listens on 127.0.0.1 with a port picked at run time, runs the client, writes what it sent.
"""
import socket, subprocess, sys

def main():
    out, cmd = sys.argv[1], sys.argv[3:]
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(10)
    port = srv.getsockname()[1]
    proc = subprocess.Popen([c.replace("{port}", str(port)) for c in cmd],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn, _ = srv.accept()
        conn.settimeout(5)
        data = b""
        while True:
            if len(data) >= 5:
                need, off = 0, 0
                # complete once the handshake message length is satisfied
                body = b""
                while off + 5 <= len(data):
                    ln = int.from_bytes(data[off + 3:off + 5], "big")
                    body += data[off + 5:off + 5 + ln]
                    off += 5 + ln
                if len(body) >= 4 and len(body) >= 4 + int.from_bytes(body[1:4], "big") and off <= len(data):
                    break
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        open(out, "w").write(data.hex() + "\n")
        conn.close()
    finally:
        proc.kill()
        proc.wait()

if __name__ == "__main__":
    main()
