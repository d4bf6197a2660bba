// The TCP states one end of a connection goes through, derived from the segments a capture saw
// (RFC 9293 3.3.2, figure 5): the fallback for tcp.state events when --capture is on and the
// kernel's own transitions (eBPF, net/tcp_state_watch.h) are not available.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "trace/events.h"

namespace tlstrace::analysis {

// The kernel's numbering (include/net/tcp_states.h), so that eBPF and capture agree.
enum class TcpSt : std::uint8_t {
  Established = 1,
  SynSent = 2,
  SynRecv = 3,
  FinWait1 = 4,
  FinWait2 = 5,
  TimeWait = 6,
  Close = 7,
  CloseWait = 8,
  LastAck = 9,
  Listen = 10,
  Closing = 11,
  NewSynRecv = 12,
};
[[nodiscard]] std::string_view tcpStateName(int kernel_state);  // "ESTABLISHED"; "?" when unknown

// TCP header flag bits (RFC 9293 3.1).
inline constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;

// One captured segment as seen by the end being followed: `out` is a segment that end sent.
struct TcpSegment {
  bool out = false;
  std::uint8_t flags = 0;
  double time_ms = 0;  // any origin; only differences are used
};

struct TcpTransition {
  TcpSt from, to;
  double time_ms;
};

// The transitions of the end that sent the first SYN when `active_open`, else of the end that
// answered it (starting from LISTEN, as a child socket: SYN_RECV). Segments that do not change the
// state (data, pure ACKs, retransmissions) are skipped; an RST ends in CLOSE.
[[nodiscard]] std::vector<TcpTransition> deriveTcpStates(const std::vector<TcpSegment>& segments, bool active_open);

// The transitions as tcp.state events (source "capture"; local and peer are the caller's to set).
[[nodiscard]] std::vector<trace::ev::TcpState> tcpStateEvents(const std::vector<TcpTransition>& transitions);

}  // namespace tlstrace::analysis
