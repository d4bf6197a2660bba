"""Misbehaving peers for the fault tests: TCP servers that reset, stall or send garbage at chosen
points, and a TLS server that resets in the middle of a transfer. Each runs in a thread on a
run-time port and stops when asked."""
import os
import socket
import ssl
import struct
import time

from harness import ThreadedServer


def rst_close(sock):
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultServer(ThreadedServer):
    """mode: reset_on_hello, stall, garbage, reset_mid_transfer (needs cert/key)."""

    def __init__(self, mode, cert=None, key=None):
        self.mode = mode
        self.ctx = None
        if mode == "reset_mid_transfer":
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert, key)
        super().__init__()

    def handle(self, c):
        if self.mode == "reset_on_hello":
            c.recv(65536)
            rst_close(c)
        elif self.mode == "stall":
            c.recv(65536)
            self.held.append(c)  # never answers; closed at stop()
        elif self.mode == "garbage":
            c.recv(65536)
            c.sendall(os.urandom(3000))
            c.close()
        elif self.mode == "reset_mid_transfer":
            t = self.ctx.wrap_socket(c, server_side=True)
            t.recv(65536)
            t.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 50000)
            time.sleep(0.5)  # let the proxy read it: a RST discards what is still unread
            t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            t.close()
