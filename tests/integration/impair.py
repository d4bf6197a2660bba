"""A small network impairment for the tests' namespaces, where the kernel has no netem: an NFQUEUE
consumer that speaks nfnetlink_queue itself (NETLINK_NETFILTER, include/uapi/linux/netfilter/
nfnetlink_queue.h; no libnetfilter_queue binding exists in Debian for Python) and gives each
queued packet its verdict later: NF_ACCEPT after --delay-ms (the packet goes on where it was
stopped), NF_DROP for the data packets numbered in --drop, and for those numbered in --reorder an
NF_ACCEPT only right after the next queued packet's (so exactly one packet overtakes it).

Run it in the namespace whose traffic it impairs, with an iptables rule that queues the packets
(nftables' own `queue` statement needs CONFIG_NFT_QUEUE, iptables' NFQUEUE target only the xt
one). "Data packets" are TCP segments with a payload, counted from 1 in the order they are queued;
SYNs and pure ACKs are never dropped or reordered, only delayed. It prints one line per decision
(`drop`/`reorder`; every packet with --verbose) and `ready` once bound; it ends on SIGTERM or
after --max-seconds.

    python3 impair.py --queue 0 --delay-ms 50 --drop 2,4 --reorder 3
"""
import argparse
import heapq
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NFQA_CFG_CMD, NFQA_CFG_PARAMS = 1, 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_PACKET = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_DROP, NF_ACCEPT = 0, 1
COPY_RANGE = 128  # the IP and TCP headers are all a decision needs


def attr(kind, payload):
    """One netlink attribute (struct nlattr), padded to 4 bytes."""
    a = struct.pack("=HH", 4 + len(payload), kind) + payload
    return a + b"\0" * (-len(a) % 4)


def message(msg_type, res_id, attrs, seq, flags=NLM_F_REQUEST):
    """nlmsghdr + nfgenmsg (family AF_UNSPEC, version 0, res_id big-endian: the queue number)."""
    body = struct.pack("!BBH", socket.AF_UNSPEC, 0, res_id) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0) + body


def attributes(data):
    out, off = {}, 0
    while off + 4 <= len(data):
        n, kind = struct.unpack_from("=HH", data, off)
        if n < 4:
            break
        out[kind & 0x3FFF] = data[off + 4:off + n]  # (NLA_F_NESTED, NLA_F_NET_BYTEORDER masked off)
        off += (n + 3) & ~3
    return out


def payload_length(ip):
    """The TCP payload length of an IPv4 or IPv6 packet (0 for anything else or a short copy)."""
    if len(ip) >= 20 and ip[0] >> 4 == 4 and ip[9] == 6:
        ihl = (ip[0] & 15) * 4
        if len(ip) >= ihl + 13:
            return struct.unpack_from("!H", ip, 2)[0] - ihl - (ip[ihl + 12] >> 4) * 4
    if len(ip) >= 53 and ip[0] >> 4 == 6 and ip[6] == 6:  # (no extension headers in these tests)
        return struct.unpack_from("!H", ip, 4)[0] - (ip[40 + 12] >> 4) * 4
    return 0


class Queue:
    def __init__(self, num):
        self.num, self.seq = num, 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind((0, 0))
        self.config(attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)))
        self.config(attr(NFQA_CFG_PARAMS, struct.pack("!IB", COPY_RANGE, NFQNL_COPY_PACKET)))

    def config(self, a):
        """Sends one NFQNL_MSG_CONFIG and waits for the kernel's acknowledgement."""
        self.seq += 1
        self.sock.send(message(NFQNL_MSG_CONFIG, self.num, [a], self.seq, NLM_F_REQUEST | NLM_F_ACK))
        while True:
            data = self.sock.recv(65536)
            n, kind, _, seq, _ = struct.unpack_from("=IHHII", data)
            if kind == NLMSG_ERROR and seq == self.seq:
                err = struct.unpack_from("=i", data, 16)[0]
                if err:
                    raise OSError(-err, "nfnetlink_queue config: " + os.strerror(-err))
                return

    def verdict(self, packet_id, verdict):
        self.seq += 1
        self.sock.send(message(NFQNL_MSG_VERDICT, self.num,
                               [attr(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet_id))], self.seq))

    def packets(self):
        """The packets one recv brings: [(id, ip header bytes)]."""
        data, out, off = self.sock.recv(1 << 16), [], 0
        while off + 16 <= len(data):
            n, kind = struct.unpack_from("=IH", data, off)
            if n < 16:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                a = attributes(data[off + 20:off + n])
                if NFQA_PACKET_HDR in a:
                    out.append((struct.unpack_from("!I", a[NFQA_PACKET_HDR])[0], a.get(NFQA_PAYLOAD, b"")))
            off += (n + 3) & ~3
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queue", type=int, default=0)
    ap.add_argument("--delay-ms", type=float, default=0)
    ap.add_argument("--drop", default="", help="data packet numbers to drop, e.g. 2,5")
    ap.add_argument("--reorder", default="", help="data packet numbers to release after the next packet")
    ap.add_argument("--max-seconds", type=float, default=60)
    ap.add_argument("--verbose", action="store_true", help="a line for every packet")
    args = ap.parse_args()
    numbers = lambda s: {int(x) for x in s.split(",") if x}
    drop, reorder = numbers(args.drop), numbers(args.reorder)
    q = Queue(args.queue)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("ready", flush=True)
    due, held, order, data_n = [], None, 0, 0  # due: heap of (release time, order, id)
    end = time.monotonic() + args.max_seconds
    while not stop and time.monotonic() < end:
        now = time.monotonic()
        timeout = min(max(due[0][0] - now, 0) if due else 0.05, 0.05)
        if select.select([q.sock], [], [], timeout)[0]:
            for pid, ip in q.packets():
                data = payload_length(ip) > 0
                data_n += data
                if args.verbose:
                    print(f"queued id={pid} len={payload_length(ip)}" + (f" data={data_n}" if data else ""), flush=True)
                if data and data_n in drop:
                    q.verdict(pid, NF_DROP)
                    print(f"drop {data_n} id={pid}", flush=True)
                    continue
                order += 1
                if data and data_n in reorder and held is None:
                    held = (order, pid, data_n, time.monotonic())
                    continue
                heapq.heappush(due, (time.monotonic() + args.delay_ms / 1000, order, pid))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, o, pid = heapq.heappop(due)
            q.verdict(pid, NF_ACCEPT)
            if held and held[0] < o:  # the held packet goes right behind one queued after it
                q.verdict(held[1], NF_ACCEPT)
                print(f"reorder {held[2]} id={held[1]}", flush=True)
                held = None
        if held and now - held[3] > args.delay_ms / 1000 + 0.5:  # nothing came after it: no reorder
            q.verdict(held[1], NF_ACCEPT)
            print(f"alone {held[2]} id={held[1]}", flush=True)
            held = None
    # Whatever is still held goes on: the namespace is usually deleted right after.
    for _, _, pid in due:
        q.verdict(pid, NF_ACCEPT)
    if held:
        q.verdict(held[1], NF_ACCEPT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
