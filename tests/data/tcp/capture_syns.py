# Captures real SYNs via TCP_SAVE_SYN and prints name + hex.
import socket, sys, os
TCP_SAVE_SYN, TCP_SAVED_SYN = 27, 28
MSG_FASTOPEN = 0x20000000
def one(name, fam, host, tweak=None, fastopen=False):
    l = socket.socket(fam, socket.SOCK_STREAM)
    l.setsockopt(socket.IPPROTO_TCP, TCP_SAVE_SYN, 1)
    l.bind((host, 0)); l.listen(4)
    port = l.getsockname()[1]
    c = socket.socket(fam, socket.SOCK_STREAM)
    if tweak: tweak(c)
    if fastopen:
        c.sendto(b"x", MSG_FASTOPEN, (host, port))
    else:
        c.connect((host, port))
    a, _ = l.accept()
    syn = a.getsockopt(socket.IPPROTO_TCP, TCP_SAVED_SYN, 512)
    print(name, syn.hex())
    a.close(); c.close(); l.close()
mode = sys.argv[1]
if mode == "default":
    one("v4_loopback", socket.AF_INET, "127.0.0.1")
    one("v6_loopback", socket.AF_INET6, "::1")
    one("v4_maxseg536", socket.AF_INET, "127.0.0.1", lambda c: c.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536))
    one("v4_smallrcvbuf", socket.AF_INET, "127.0.0.1", lambda c: c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048))
else:
    one("v4_" + mode, socket.AF_INET, "127.0.0.1", fastopen=(mode == "tfo"))
