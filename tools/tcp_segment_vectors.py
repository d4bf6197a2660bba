#!/usr/bin/env python3
"""Test vectors for wire/tcp_segment and analysis/tcp_flow from real captures: each frame's bytes
(from the pcapng itself, cut at --snap bytes: the IP lengths still give the payload length) and
what tshark makes of the same frame (its dissection and its tcp.analysis.* flags), one line per
frame. The unit tests decode and analyse the bytes and compare with tshark's columns.

Usage: tools/tcp_segment_vectors.py [--snap N] CAPTURE.pcapng... > tests/data/tcp/NAME.txt"""
import argparse
import struct
import subprocess
import sys

FLAGS = ["zero_window_probe", "zero_window", "lost_segment", "keep_alive", "window_update", "window_full",
         "keep_alive_ack", "zero_window_probe_ack", "duplicate_ack", "ack_lost_segment", "fast_retransmission",
         "out_of_order", "spurious_retransmission", "retransmission"]
FIELDS = ["frame.time_epoch", "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags",
          "tcp.window_size_value", "tcp.urgent_pointer", "tcp.len", "tcp.options.mss_val", "tcp.options.wscale.shift",
          "tcp.seq", "tcp.ack", "tcp.window_size", "tcp.analysis.duplicate_ack_num",
          *(f"tcp.analysis.{f}" for f in FLAGS)]


def frames(path):
    """(linktype, bytes) of every packet block, in order (little-endian pcapng, as tshark writes)."""
    data = open(path, "rb").read()
    at, links, out = 0, [], []
    while at + 8 <= len(data):
        btype, blen = struct.unpack_from("<II", data, at)
        body = data[at + 8:at + blen - 4]
        if btype == 1:
            links.append(struct.unpack_from("<H", body, 0)[0])
        elif btype == 6:
            iface, _, _, caplen, _ = struct.unpack_from("<IIIII", body, 0)
            out.append((links[iface], body[20:20 + caplen]))
        at += blen
    return out


def tshark(path):
    r = subprocess.run(["tshark", "-r", path, "-n", "-T", "json", *sum((["-e", f] for f in FIELDS), [])],
                       capture_output=True, check=True)
    import json
    return [{k: v[0] for k, v in p["_source"]["layers"].items()} for p in json.loads(r.stdout)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--snap", type=int, default=0, help="keep only the first N bytes of each frame")
    ap.add_argument("captures", nargs="+")
    a = ap.parse_args()
    print("# linktype time hex | srcport dstport seq ack flags win urg len mss wscale rel_seq rel_ack "
          "win_scaled dup_ack_num analysis (tshark " + subprocess.run(["tshark", "-v"], capture_output=True,
                                                                       text=True).stdout.split()[2] + ")")
    for path in a.captures:
        for (link, raw), t in zip(frames(path), tshark(path)):
            if "tcp.srcport" not in t:
                continue
            if a.snap:
                raw = raw[:a.snap]
            cols = [t.get(f, "-") for f in FIELDS[1:15]]
            flags = ",".join(f for f in FLAGS if f"tcp.analysis.{f}" in t) or "-"
            print(link, t["frame.time_epoch"], raw.hex(), "|", *cols, flags)


if __name__ == "__main__":
    sys.exit(main())
