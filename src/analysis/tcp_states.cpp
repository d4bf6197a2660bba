#include "analysis/tcp_states.h"

#include <array>

namespace tlstrace::analysis {

std::string_view tcpStateName(int s) {
  static constexpr std::array<std::string_view, 13> kNames = {
      "?",     "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",   "TIME_WAIT",
      "CLOSE", "CLOSE_WAIT",  "LAST_ACK", "LISTEN",   "CLOSING",   "NEW_SYN_RECV"};
  return s > 0 && s < static_cast<int>(kNames.size()) ? kNames[static_cast<std::size_t>(s)] : kNames[0];
}

namespace {

// One step of RFC 9293 figure 5 for one segment; returns the state after it. `fin_acked` is
// whether this end's FIN has been acknowledged by an ACK from the peer (an ACK segment received
// after our FIN was sent acknowledges it: captures of a single connection carry no reordering
// that matters here, and the test sequences come from real captures).
TcpSt step(TcpSt s, const TcpSegment& g) {
  const bool syn = (g.flags & kSyn) != 0, fin = (g.flags & kFin) != 0, ack = (g.flags & kAck) != 0;
  if ((g.flags & kRst) != 0) return s == TcpSt::TimeWait ? s : TcpSt::Close;  // 3.10.7 (TIME-WAIT: RFC 1337)
  switch (s) {
    case TcpSt::Close:  // active open: our SYN
      return g.out && syn && !ack ? TcpSt::SynSent : s;
    case TcpSt::Listen:  // passive open: their SYN
      return !g.out && syn && !ack ? TcpSt::SynRecv : s;
    case TcpSt::SynSent:
      if (!g.out && syn && ack) return TcpSt::Established;  // their SYN,ACK (we ACK it)
      if (!g.out && syn) return TcpSt::SynRecv;             // simultaneous open
      return s;
    case TcpSt::SynRecv:
      if (!g.out && ack && !syn) return fin ? TcpSt::CloseWait : TcpSt::Established;
      return s;
    case TcpSt::Established:
      if (g.out && fin) return TcpSt::FinWait1;
      if (!g.out && fin) return TcpSt::CloseWait;
      return s;
    case TcpSt::FinWait1:                                // our FIN is out
      if (!g.out && fin && ack) return TcpSt::TimeWait;  // their FIN with the ACK of ours (FIN_WAIT2 skipped)
      if (!g.out && fin) return TcpSt::Closing;
      if (!g.out && ack) return TcpSt::FinWait2;
      return s;
    case TcpSt::FinWait2: return !g.out && fin ? TcpSt::TimeWait : s;
    case TcpSt::Closing: return !g.out && ack ? TcpSt::TimeWait : s;
    case TcpSt::CloseWait: return g.out && fin ? TcpSt::LastAck : s;
    case TcpSt::LastAck: return !g.out && ack ? TcpSt::Close : s;
    default: return s;
  }
}

}  // namespace

std::vector<TcpTransition> deriveTcpStates(const std::vector<TcpSegment>& segments, bool active_open) {
  std::vector<TcpTransition> out;
  TcpSt s = active_open ? TcpSt::Close : TcpSt::Listen;
  for (const auto& g : segments) {
    const TcpSt next = step(s, g);
    if (next == s) continue;
    // The kernel reports the FIN_WAIT1 -> TIME_WAIT shortcut as two steps (FIN_WAIT2 first):
    // so does this, so that the two sources give the same sequence.
    if (s == TcpSt::FinWait1 && next == TcpSt::TimeWait) {
      out.push_back({s, TcpSt::FinWait2, g.time_ms});
      s = TcpSt::FinWait2;
    }
    out.push_back({s, next, g.time_ms});
    s = next;
  }
  return out;
}

std::vector<trace::ev::TcpState> tcpStateEvents(const std::vector<TcpTransition>& transitions) {
  std::vector<trace::ev::TcpState> out;
  const TcpTransition* prev = nullptr;
  for (const auto& t : transitions) {
    trace::ev::TcpState e;
    e.from = tcpStateName(static_cast<int>(t.from));
    e.to = tcpStateName(static_cast<int>(t.to));
    e.source = "capture";
    if (prev) e.since_ms = t.time_ms - prev->time_ms;
    out.push_back(std::move(e));
    prev = &t;
  }
  return out;
}

}  // namespace tlstrace::analysis
