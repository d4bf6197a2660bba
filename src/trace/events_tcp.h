// The TCP half's event kinds (docs/events.md, category tcp): the client's SYN, TCP_INFO, the
// listener's health, kernel state transitions and captured segments.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "trace/events_base.h"

namespace tlstrace::trace::ev {

// The client's SYN as the proxy's kernel received it (TCP_SAVED_SYN): one per client leg.
struct TcpSyn {
  std::string src, dst;          // "ip:port"
  std::uint32_t seq = 0;         // the client's initial sequence number
  std::uint64_t win = 0;         // as written (a SYN's window is never scaled)
  std::string flags;             // "SYN", "SYN,ECE,CWR"
  std::uint64_t ttl = 0;         // IPv4 TTL / IPv6 hop limit
  Json options = Json::array();  // in wire order: {kind, name?, value | shift | tsval, tsecr | length, data}
  std::optional<std::uint64_t> mss, wscale;
  bool sack_perm = false;
  std::optional<std::uint32_t> ts_val, ts_ecr;
  std::optional<std::string> error;  // the bytes did not decode (then `hex` has them)
  std::optional<std::string> hex;
  TLSTRACE_EVENT("tcp.syn", kTcp);
};

// The kernel's TCP_INFO of a leg's socket, as `ss -ti` shows it: at establishment and at close.
struct TcpInfo {
  std::string at;     // "established" or "close"
  std::string state;  // the kernel's state then: ESTABLISHED, CLOSE_WAIT, FIN_WAIT2, ...
  double rtt_ms = 0, rttvar_ms = 0, rto_ms = 0;
  std::uint64_t snd_mss = 0, rcv_mss = 0, advmss = 0, pmtu = 0;
  std::uint64_t cwnd = 0;
  std::optional<std::uint64_t> ssthresh;  // absent while still "infinite" (slow start)
  std::uint64_t retransmits = 0, total_retrans = 0;
  std::uint64_t bytes_acked = 0, bytes_received = 0, segs_out = 0, segs_in = 0;
  bool sack = false, timestamps = false, ecn = false;
  std::optional<std::uint64_t> snd_wscale, rcv_wscale;  // both present when window scaling is on
  std::optional<std::uint64_t> rcv_ooopack;             // out-of-order segments received (Linux 5.4+)
  TLSTRACE_EVENT("tcp.info", kTcp);
};

// The listener's health (conn 0): at start, whenever the network namespace's listen overflows or
// drops grow, and at stop when they grew.
struct TcpListen {
  std::string listen, reason;                            // reason: "start", "overflow", "stop"
  std::uint64_t backlog = 0;                             // asked of listen(2)
  std::uint64_t accept_queue = 0, accept_queue_max = 0;  // sock_diag: waiting for accept, and the cap
  std::uint64_t somaxconn = 0, tcp_max_syn_backlog = 0;
  std::uint64_t listen_overflows = 0, listen_drops = 0;  // since start (/proc/net/netstat TcpExt)
  std::uint64_t new_overflows = 0, new_drops = 0;        // since the previous tcp.listen
  TLSTRACE_EVENT("tcp.listen", kTcp);
};

// --tcp-states: one kernel TCP state transition of a leg's socket (net/tcp_state_watch.h), or one
// derived from captured segments (analysis/tcp_states.h).
struct TcpState {
  std::string from, to;
  std::string source;              // "ebpf" or "capture"
  std::optional<double> since_ms;  // since the leg's previous transition
  std::optional<std::string> local, peer;
  std::optional<bool> reset;  // the socket closed on a reset (sk_err set)
  TLSTRACE_EVENT("tcp.state", kTcp);
};

// --capture: one segment of a leg as the capture saw it, with Wireshark's analysis of it.
struct TcpSegment {
  std::string dir;       // "in": received by the proxy, "out": sent by it
  std::string src, dst;  // "ip:port"
  std::string flags;     // "SYN,ACK", "PSH,ACK"
  std::uint32_t seq = 0, ack = 0;
  std::uint64_t rel_seq = 0;                 // seq minus the sender's initial sequence number
  std::optional<std::uint64_t> rel_ack;      // with ACK set: ack minus the other side's
  std::uint64_t len = 0;                     // payload bytes
  std::uint64_t win = 0;                     // as written
  std::optional<std::uint64_t> win_scaled;   // in bytes, when the scale is known (both SYNs seen)
  std::optional<std::uint64_t> wscale;       // the shift applied to win
  std::uint64_t urg = 0;                     // the urgent pointer
  Json options = Json::array();              // as tcp.syn's
  Json analysis = Json::array();             // Wireshark's tcp.analysis.* names: "retransmission", ...
  std::optional<std::uint64_t> dup_ack_num;  // with "duplicate_ack": its number (#n)
  TLSTRACE_EVENT("tcp.segment", kTcp);
};

// The field lists, in the documented order.
template <class S, class V>
void TcpSyn::fields(S& s, V& v) {
  v("src", s.src);
  v("dst", s.dst);
  v("seq", s.seq);
  v("win", s.win);
  v("flags", s.flags);
  v("ttl", s.ttl);
  v("options", s.options);
  v("mss", s.mss);
  v("wscale", s.wscale);
  v("sack_perm", s.sack_perm);
  v("ts_val", s.ts_val);
  v("ts_ecr", s.ts_ecr);
  v("error", s.error);
  v("hex", s.hex);
}
template <class S, class V>
void TcpInfo::fields(S& s, V& v) {
  v("at", s.at);
  v("state", s.state);
  v("rtt_ms", s.rtt_ms);
  v("rttvar_ms", s.rttvar_ms);
  v("rto_ms", s.rto_ms);
  v("snd_mss", s.snd_mss);
  v("rcv_mss", s.rcv_mss);
  v("advmss", s.advmss);
  v("pmtu", s.pmtu);
  v("cwnd", s.cwnd);
  v("ssthresh", s.ssthresh);
  v("retransmits", s.retransmits);
  v("total_retrans", s.total_retrans);
  v("bytes_acked", s.bytes_acked);
  v("bytes_received", s.bytes_received);
  v("segs_out", s.segs_out);
  v("segs_in", s.segs_in);
  v("sack", s.sack);
  v("timestamps", s.timestamps);
  v("ecn", s.ecn);
  v("snd_wscale", s.snd_wscale);
  v("rcv_wscale", s.rcv_wscale);
  v("rcv_ooopack", s.rcv_ooopack);
}
template <class S, class V>
void TcpListen::fields(S& s, V& v) {
  v("listen", s.listen);
  v("reason", s.reason);
  v("backlog", s.backlog);
  v("accept_queue", s.accept_queue);
  v("accept_queue_max", s.accept_queue_max);
  v("somaxconn", s.somaxconn);
  v("tcp_max_syn_backlog", s.tcp_max_syn_backlog);
  v("listen_overflows", s.listen_overflows);
  v("listen_drops", s.listen_drops);
  v("new_overflows", s.new_overflows);
  v("new_drops", s.new_drops);
}
template <class S, class V>
void TcpState::fields(S& s, V& v) {
  v("from", s.from);
  v("to", s.to);
  v("source", s.source);
  v("since_ms", s.since_ms);
  v("local", s.local);
  v("peer", s.peer);
  v("reset", s.reset);
}
template <class S, class V>
void TcpSegment::fields(S& s, V& v) {
  v("dir", s.dir);
  v("src", s.src);
  v("dst", s.dst);
  v("flags", s.flags);
  v("seq", s.seq);
  v("ack", s.ack);
  v("rel_seq", s.rel_seq);
  v("rel_ack", s.rel_ack);
  v("len", s.len);
  v("win", s.win);
  v("win_scaled", s.win_scaled);
  v("wscale", s.wscale);
  v("urg", s.urg);
  v("options", s.options);
  v("analysis", s.analysis);
  v("dup_ack_num", s.dup_ack_num);
}

}  // namespace tlstrace::trace::ev
