// Wireshark-style analysis of one TCP connection's captured segments, in capture order: relative
// sequence numbers, the scaled window, and the tcp.analysis.* flags (retransmission, duplicate
// ACK, zero window, ...) under Wireshark's own names and rules (epan/dissectors/packet-tcp.c,
// tcp_analyze_sequence_number), so that a trace reads like the capture it came from. Pure: the
// segments and their times in, values out; no sockets, no clock.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "trace/events.h"
#include "wire/tcp_segment.h"

namespace tlstrace::analysis {

// One segment's place in its connection.
struct SegmentAnalysis {
  bool from_a = true;                    // sent by the side whose segment came first (the SYN's)
  std::uint32_t rel_seq = 0;             // seq minus the sender's initial sequence number
  std::optional<std::uint32_t> rel_ack;  // ack minus the other side's, when ACK is set and known
  std::uint32_t next_seq = 0;            // relative: rel_seq + payload (+1 for SYN, FIN)
  // The window in bytes when the sender's scale is known (both SYNs seen): Wireshark's
  // tcp.window_size; absent when unknown (then only the raw value).
  std::optional<std::uint64_t> window_scaled;
  std::optional<int> wscale;            // the shift applied (0 when the SYNs did not both agree on scaling)
  std::vector<std::string_view> flags;  // Wireshark's tcp.analysis.* names, in its order
  std::uint32_t dup_ack_num = 0;        // tcp.analysis.duplicate_ack_num
};

class TcpFlowAnalyzer {
 public:
  // `t_s`: the capture time in seconds (any origin, the same for every segment of the flow).
  SegmentAnalysis add(const wire::TcpSyn& s, double t_s);

 private:
  struct Side {
    bool seen = false;
    std::uint32_t base = 0;      // initial sequence number (the SYN's, else the first seq - 1)
    std::uint32_t next_seq = 0;  // highest seq + len seen (0: none yet, as Wireshark)
    double next_seq_time = 0;
    std::uint32_t last_ack = 0;
    double last_ack_time = 0;
    std::uint32_t window = 0;  // raw window of its last segment
    bool window_known = false;
    int win_scale = -1;  // -1 unknown (no SYN seen), -2 no scaling, else the shift it announced
    std::optional<std::uint8_t> syn_wscale;
    bool syn_seen = false;
    std::uint32_t dup_acks = 0;
    std::uint32_t max_seq_to_be_acked = 0;
    bool last_keep_alive = false, last_zero_window_probe = false;
  };
  void noteSyn(Side& fwd, Side& rev, const wire::TcpSyn& s);
  static void relativeTo(SegmentAnalysis& out, const Side& fwd, const Side& rev, const wire::TcpSyn& s);

  std::array<std::uint8_t, 16> a_addr_{};
  std::uint16_t a_port_ = 0;
  bool started_ = false;
  Side a_, b_;
  double first_rtt_ = 0;  // SYN to the first ACK of the SYN,ACK (Wireshark's ts_first_rtt)
  double syn_time_ = 0;
};

// tcp.segment from a decoded segment and its analysis; `inbound`: received by the proxy.
[[nodiscard]] trace::ev::TcpSegment segmentEvent(const wire::TcpSyn& s, const SegmentAnalysis& a, bool inbound);

}  // namespace tlstrace::analysis
