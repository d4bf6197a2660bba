"""Resumption on the client leg (the client resumes with the proxy) and received ChangeCipherSpec
messages, against `openssl s_client -sess_out/-sess_in -trace`: the client's own trace says what it
sent (session ID, session_ticket, pre_shared_key identity and its obfuscated age, ChangeCipherSpec
records), what it received (the NewSessionTicket's lifetime hint, the server's key share) and
whether the session was reused; the upstream s_server's -trace says what CCS it sent and got."""
import re
import time

from harness import DEADLINE, ProxyTestCase, of, run


def sent_records(trace):
    """The client's records in s_client -trace order: [(sent, content_type name, text)]."""
    out = []
    for block in re.split(r"\n(?=(?:Sent|Received) Record\n)", trace):
        m = re.match(r"(Sent|Received) Record\nHeader:\n.*?Content Type = (\w+)", block, re.S)
        if m:
            out.append((m.group(1) == "Sent", m.group(2), block))
    return out


def hex_dump(block, ext):
    """The bytes of an extension that -trace prints as a hex dump (e.g. psk(41))."""
    m = re.search(r"extension_type=" + re.escape(ext) + r", length=(\d+)\n((?:\s+[0-9a-f]{4} - .*\n)+)", block)
    if not m:
        return None
    data = bytearray()
    for line in m.group(2).splitlines():
        hexpart = line.split(" - ", 1)[1].split("  ")[0]
        data += bytes.fromhex(hexpart.replace("-", " ").replace(" ", ""))
    return bytes(data[: int(m.group(1))])


class Resumption(ProxyTestCase):
    def resume(self, *client_args):
        """Two s_client connections through a reverse proxy, the second resuming the first's
        session: (events of the second connection, first client trace, second client trace)."""
        srv = self.s_server("-trace")
        self.srv = srv
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--insecure")
        sess = f"{self.dir}/sess.pem"
        traces = []
        for i, flag in enumerate(("-sess_out", "-sess_in")):
            r = run(["openssl", "s_client", "-connect", p.addr, "-servername", "localhost", "-CAfile", p.ca,
                     "-ign_eof", "-trace", flag, sess, *client_args],
                    input=b"GET / HTTP/1.0\r\n\r\n", timeout=DEADLINE)
            traces.append(r.stdout.decode(errors="replace"))
            self.assertIn("HTTP/1.0 200", traces[-1])
            p.conn_closed(i + 1)
            if i == 0:
                time.sleep(1.1)  # a session age of at least one second
        self.assertIn("Reused,", traces[1], "the client did not resume")
        self.assertIn("New,", traces[0])
        evs = p.read_events()
        # The upstream leg (full handshakes both times): the server's own trace of its CCS records.
        recs = sent_records(srv.proc.output())
        up = [e for e in of(evs, "tls.message", "upstream") if e["type"] == "ChangeCipherSpec"]
        self.assertEqual(sum(1 for e in up if e["dir"] == "in"),
                         sum(1 for s, t, _ in recs if s and t == "ChangeCipherSpec"))
        self.assertEqual(sum(1 for e in up if e["dir"] == "out"),
                         sum(1 for s, t, _ in recs if not s and t == "ChangeCipherSpec"))
        self.assertGreaterEqual(len(up), 2)
        return [e for e in evs if e.get("conn") == 2], evs, traces

    def check_ccs(self, evs, trace, conn):
        """The proxy's received (sent) CCS on the client leg are the client's sent (received) ones."""
        recs = sent_records(trace)
        client_sent = sum(1 for s, t, _ in recs if s and t == "ChangeCipherSpec")
        client_got = sum(1 for s, t, _ in recs if not s and t == "ChangeCipherSpec")
        msgs = [e for e in of(evs, "tls.message", "client", conn=conn) if e["type"] == "ChangeCipherSpec"]
        self.assertEqual(sum(1 for e in msgs if e["dir"] == "in"), client_sent)
        self.assertEqual(sum(1 for e in msgs if e["dir"] == "out"), client_got)
        self.assertGreaterEqual(client_sent, 1)
        for e in msgs:
            self.assertEqual((e["length"], e["body"]), (1, {}))

    def lifetime_hint(self, trace):
        hints = re.findall(r"ticket_lifetime_hint=(\d+)", trace)
        self.assertTrue(hints, "no NewSessionTicket in the first connection")
        return int(hints[0])

    def check_established(self, evs, trace):
        est = of(evs, "tls.established", "client")[0]
        self.assertTrue(est["resumed"])
        hello = sent_records(trace)[0][2]
        sni = hex_dump(hello, "server_name(0)")
        self.assertEqual(est["sni"], sni[5:].decode())  # RFC 6066 3: list length, type, name length
        res = est["resumption"]
        self.assertGreaterEqual(res["age"], 1)
        self.assertLessEqual(res["age"], 1 + DEADLINE)
        summary = of(evs, "conn.summary")[0]["client"]
        self.assertEqual((summary["resumed"], summary["resumption"]), (True, res))
        return est, res, hello

    def test_tls12_session_id(self):
        evs, all_evs, (t1, t2) = self.resume("-tls1_2", "-no_ticket")
        self.check_ccs(all_evs, t1, 1)
        self.check_ccs(evs, t2, 2)
        est, res, hello = self.check_established(evs, t2)
        self.assertNotIn("session_ticket(35)", hello)
        sid_len = int(re.search(r"session_id \(len=(\d+)\)", hello).group(1))
        self.assertEqual(res["mechanism"], "session_id")
        self.assertEqual(res["session_id_length"], sid_len)
        self.assertIsNone(est["group"])
        self.assertEqual(of(evs, "tls.key_exchange", "client"), [])
        summary = of(evs, "conn.summary")[0]["client"]
        self.assertNotIn("kex", summary)
        self.assertNotIn("key_exchange_rating", summary)
        # The full handshake before it had one.
        self.assertEqual(len(of(all_evs, "tls.key_exchange", "client", conn=1)), 1)

    def test_tls12_ticket(self):
        evs, all_evs, (t1, t2) = self.resume("-tls1_2")
        self.check_ccs(evs, t2, 2)
        est, res, hello = self.check_established(evs, t2)
        ticket_len = int(re.search(r"extension_type=session_ticket\(35\), length=(\d+)", hello).group(1))
        self.assertGreater(ticket_len, 0)
        self.assertEqual(res["mechanism"], "ticket")
        self.assertEqual(res["ticket_length"], ticket_len)
        self.assertEqual(res["lifetime"], self.lifetime_hint(t1))
        self.assertIsNone(est["group"])
        self.assertEqual(of(evs, "tls.key_exchange", "client"), [])
        # The first connection offered no ticket (only asked for one); a full handshake did.
        first = of(all_evs, "tls.key_exchange", "client", conn=1)[0]
        self.assertFalse(first["psk_offered"])

    def check_tls13(self, group, temp_key, full_kex, psk_kex):
        evs, all_evs, (t1, t2) = self.resume("-tls1_3", "-groups", group)
        self.check_ccs(all_evs, t1, 1)  # TLS 1.3's compatibility CCS (RFC 8446 D.4)
        self.check_ccs(evs, t2, 2)
        est, res, hello = self.check_established(evs, t2)
        self.assertIn(f"Server Temp Key: {temp_key}", t2)
        psk = hex_dump(hello, "psk(41)")
        # RFC 8446 4.2.11: identities<7..2^16-1> of (identity<1..2^16-1>, obfuscated_ticket_age u32).
        id_len = int.from_bytes(psk[2:4], "big")
        age = int.from_bytes(psk[4 + id_len:8 + id_len], "big")
        self.assertEqual(res["mechanism"], "psk")
        self.assertEqual(res["ticket_length"], id_len)
        self.assertEqual(res["obfuscated_ticket_age"], age)
        self.assertIn("age_add", res["note"])
        self.assertEqual(res["lifetime"], self.lifetime_hint(t1))
        kex = of(evs, "tls.key_exchange", "client")[0]
        self.assertEqual(kex["kex"], psk_kex)
        self.assertTrue(kex["psk_offered"])
        self.assertTrue(kex["resumed"])
        self.assertEqual(kex["group"], est["group"])
        first = of(all_evs, "tls.key_exchange", "client", conn=1)[0]
        self.assertEqual((first["kex"], first["group"]), (full_kex, kex["group"]))
        self.assertEqual(of(evs, "conn.summary")[0]["client"]["kex"], psk_kex)

    def test_tls13_psk_x25519(self):
        self.check_tls13("X25519", "X25519", "ECDHE", "PSK_ECDHE")

    def test_tls13_psk_ffdhe2048(self):
        self.check_tls13("ffdhe2048", "DH, 2048 bits", "DHE", "PSK_DHE")
