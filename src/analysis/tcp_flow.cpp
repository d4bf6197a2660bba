#include "analysis/tcp_flow.h"

#include <algorithm>

#include "trace/tcp_events.h"
#include "wire/tcp_syn.h"

namespace tlstrace::analysis {

namespace {

constexpr std::uint16_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;
using wire::seqAfter;

bool sameSender(const wire::TcpSyn& s, const std::array<std::uint8_t, 16>& addr, std::uint16_t port) {
  return s.src_port == port && std::equal(addr.begin(), addr.end(), s.src.begin());
}

}  // namespace

// RFC 7323 2.2, 2.3: scaling is on only when both SYNs carried the option; each side's windows
// are then shifted by the count it announced, and a SYN's own window never is.
void TcpFlowAnalyzer::noteSyn(Side& fwd, Side& rev, const wire::TcpSyn& s) {
  fwd.syn_seen = true;
  fwd.syn_wscale = s.wscale;
  if (!rev.syn_seen) return;
  const bool both = fwd.syn_wscale && rev.syn_wscale;
  fwd.win_scale = both ? std::min<int>(*fwd.syn_wscale, 14) : -2;
  rev.win_scale = both ? std::min<int>(*rev.syn_wscale, 14) : -2;
}

// Wireshark's relative numbers and calculated window (tcp.seq, tcp.ack, tcp.window_size).
void TcpFlowAnalyzer::relativeTo(SegmentAnalysis& out, const Side& fwd, const Side& rev, const wire::TcpSyn& s) {
  const bool syn = s.flags & kSyn;
  out.rel_seq = s.seq - fwd.base;
  if ((s.flags & kAck) && rev.seen) out.rel_ack = s.ack - rev.base;
  out.next_seq = s.seq + s.payload_len + (syn ? 1 : 0) + ((s.flags & kFin) ? 1 : 0) - fwd.base;
  if (syn) {
    out.window_scaled = s.window, out.wscale = 0;  // a SYN's window is never scaled
  } else if (fwd.win_scale != -1) {
    out.wscale = fwd.win_scale < 0 ? 0 : fwd.win_scale;
    out.window_scaled = std::uint64_t{s.window} << *out.wscale;
  }
}

// The checks and their order are Wireshark's (packet-tcp.c, tcp_analyze_sequence_number), so that
// a flag here is the flag tshark shows for the same segment.
SegmentAnalysis TcpFlowAnalyzer::add(const wire::TcpSyn& s, double t) {
  if (!started_) started_ = true, a_addr_ = s.src, a_port_ = s.src_port;
  SegmentAnalysis out;
  out.from_a = sameSender(s, a_addr_, a_port_);
  Side& fwd = out.from_a ? a_ : b_;
  Side& rev = out.from_a ? b_ : a_;
  const std::uint16_t flags = s.flags;
  const std::uint32_t seq = s.seq, ack = s.ack, seglen = s.payload_len;
  const std::uint32_t window = s.window;
  const bool syn = flags & kSyn, fin = flags & kFin, rst = flags & kRst, has_ack = flags & kAck;
  const bool sfr = flags & (kSyn | kFin | kRst);
  if (syn) {
    fwd.base = seq, fwd.seen = true;
    noteSyn(fwd, rev, s);
    if (!has_ack) syn_time_ = t;
  } else if (!fwd.seen) {
    fwd.base = seq - 1, fwd.seen = true;  // no SYN captured: the first byte is relative 1
  }
  // The other side not seen yet either: its next byte, acknowledged here, is relative 1 too.
  if (has_ack && !rev.seen) rev.base = ack - 1, rev.seen = true;
  // Wireshark's first RTT: the SYN to the ACK of the SYN,ACK (the out-of-order threshold).
  if (!syn && has_ack && first_rtt_ == 0 && syn_time_ != 0 && rev.syn_seen && fwd.syn_seen) first_rtt_ = t - syn_time_;
  auto flag = [&out](std::string_view f) { out.flags.push_back(f); };
  bool keep_alive = false, zwp = false, dup = false;

  if (seglen == 1 && fwd.next_seq && seq == fwd.next_seq && rev.window_known && rev.window == 0) {
    flag("zero_window_probe"), zwp = true;
  } else {
    if (window == 0 && !sfr) flag("zero_window");
    if (fwd.next_seq && seqAfter(seq, fwd.next_seq) && !rst) flag("lost_segment");
    if (seglen <= 1 && !sfr && fwd.next_seq && fwd.next_seq - 1 == seq) flag("keep_alive"), keep_alive = true;
    const bool same_place = fwd.window_known && seq == fwd.next_seq && ack == fwd.last_ack && !sfr;
    if (seglen == 0 && window && window != fwd.window && same_place) flag("window_update");
    if (seglen > 0 && rev.win_scale != -1 && rev.window_known && !sfr &&
        seq + seglen == rev.last_ack + (rev.window << (rev.win_scale < 0 ? 0 : rev.win_scale)))
      flag("window_full");
    if (seglen == 0 && window && window == fwd.window && same_place && rev.last_keep_alive) {
      flag("keep_alive_ack");
    } else if (seglen == 0 && window == 0 && window == fwd.window && same_place && rev.last_zero_window_probe) {
      flag("zero_window_probe_ack");
    } else if (seglen == 0 && window && window == fwd.window && same_place) {
      dup = true;
      out.dup_ack_num = ++fwd.dup_acks;
      flag("duplicate_ack");
    }
  }
  if (!dup) fwd.dup_acks = 0;
  if (rev.max_seq_to_be_acked && seqAfter(ack, rev.max_seq_to_be_acked) && has_ack) {
    flag("ack_lost_segment");
    rev.max_seq_to_be_acked = rev.next_seq;
  }
  if (!keep_alive && !zwp && (seglen > 0 || syn || fin)) {
    bool not_advanced = fwd.next_seq && seqAfter(fwd.next_seq, seq);
    // More than one byte from one below the highest sequence seen: new data after a possible
    // zero-window probe, not a resend (though it may still be spurious).
    if (seglen > 1 && fwd.next_seq - 1 == seq) not_advanced = false;
    const double ooo_threshold = first_rtt_ > 0 ? first_rtt_ : 0.003;
    const std::uint32_t end = seq + seglen + ((syn || fin) ? 1 : 0);
    // Wireshark 4.0 tests for data the receiver has already acknowledged first, then a fast
    // retransmission, then out-of-order.
    if (seglen > 0 && rev.last_ack && !seqAfter(seq + seglen, rev.last_ack)) flag("spurious_retransmission");
    else if (not_advanced && rev.dup_acks >= 2 && rev.last_ack == seq && t - rev.last_ack_time < 0.020)
      flag("fast_retransmission");
    else if (not_advanced && t - fwd.next_seq_time < ooo_threshold && fwd.next_seq != end) flag("out_of_order");
    else if (not_advanced) flag("retransmission");
    // Wireshark marks a fast or spurious retransmission as a retransmission too
    // (tcp.analysis.retransmission).
    if (!out.flags.empty() &&
        (out.flags.back() == "fast_retransmission" || out.flags.back() == "spurious_retransmission"))
      flag("retransmission");
  }
  std::uint32_t next = seq + seglen + (syn ? 1 : 0) + (fin ? 1 : 0);
  if ((seqAfter(next, fwd.next_seq) || !fwd.next_seq) && !rst && !zwp) {
    fwd.next_seq = next;
    fwd.next_seq_time = t;
  }
  if (!fwd.max_seq_to_be_acked || seq == fwd.max_seq_to_be_acked) fwd.max_seq_to_be_acked = fwd.next_seq;
  fwd.window = window, fwd.window_known = true;
  fwd.last_ack = ack, fwd.last_ack_time = t;
  fwd.last_keep_alive = keep_alive, fwd.last_zero_window_probe = zwp;

  relativeTo(out, fwd, rev, s);
  return out;
}

trace::ev::TcpSegment segmentEvent(const wire::TcpSyn& s, const SegmentAnalysis& a, bool inbound) {
  trace::ev::TcpSegment e;
  e.dir = inbound ? "in" : "out";
  e.src = trace::tcpEndpointText(s, true);
  e.dst = trace::tcpEndpointText(s, false);
  e.flags = wire::tcpFlagsText(s.flags);
  e.seq = s.seq;
  e.ack = s.ack;
  e.rel_seq = a.rel_seq;
  e.rel_ack = a.rel_ack;
  e.len = s.payload_len;
  e.win = s.window;
  e.win_scaled = a.window_scaled;
  if (a.wscale) e.wscale = static_cast<std::uint64_t>(*a.wscale);
  e.urg = s.urgent;
  for (const auto& o : s.options) e.options.push(trace::tcpOptionJson(o));
  for (auto f : a.flags) e.analysis.push(f);
  if (a.dup_ack_num) e.dup_ack_num = a.dup_ack_num;
  return e;
}

}  // namespace tlstrace::analysis
