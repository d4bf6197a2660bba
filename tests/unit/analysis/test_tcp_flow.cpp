// Wireshark's TCP analysis, reproduced: the frames of tests/data/tcp/analysis.txt are a real
// capture (tshark on lo in a network namespace, MSS-sized segments, made by
// tests/integration/test_capture.py's scenario: keep-alives, a data segment dropped once at the
// receiver so that duplicate ACKs and a fast retransmission follow, a reader that stops with a
// tiny receive buffer so that the window closes, an RST), each line with tshark 4.0's relative
// numbers, window and tcp.analysis.* flags for that frame (tools/tcp_segment_vectors.py). Fed to
// the analyser in capture order, one per connection, every frame must get tshark's values.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "../test_util.h"
#include "analysis/tcp_flow.h"

using namespace tlstrace;

namespace {

using Frame = testing::TcpVectorFrame;

std::vector<Frame> frames(const std::string& name) {
  return testing::tcpVectorFrames(std::string(TLSTRACE_TEST_DATA) + "/tcp/" + name);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  if (s == "-") return out;
  std::istringstream in(s);
  for (std::string x; std::getline(in, x, ',');) out.push_back(x);
  return out;
}

void replay(const std::string& file, std::set<std::string>& seen) {
  std::map<std::pair<int, int>, analysis::TcpFlowAnalyzer> flows;
  for (const auto& fr : frames(file)) {
    const auto d = wire::decodeFrame(fr.linktype, wire::Bytes(fr.bytes.data(), fr.bytes.size()));
    REQUIRE_MESSAGE(d.segment, d.error);
    const auto& s = d.segment->tcp;
    const std::pair<int, int> key = std::minmax<int>(s.src_port, s.dst_port);  // copied: minmax gives references
    const auto a = flows[key].add(s, fr.time);
    const auto& c =
        fr.cols;  // srcport dstport seq ack flags win urg len mss wscale rel_seq rel_ack win_scaled dup flags
    CAPTURE(fr.time);
    CAPTURE(c[0]);
    CAPTURE(c[2]);
    CHECK(a.rel_seq == std::stoul(c[10]));
    if (s.flags & 0x10) CHECK(a.rel_ack == std::stoul(c[11]));
    // tshark's tcp.window_size is the field as written while the scale is unknown (no SYNs seen).
    CHECK(a.window_scaled.value_or(s.window) == std::stoull(c[12]));
    std::vector<std::string> mine(a.flags.begin(), a.flags.end());
    CHECK(mine == split(c[14]));
    if (c[13] != "-") CHECK(a.dup_ack_num == std::stoul(c[13]));
    seen.insert(mine.begin(), mine.end());
  }
}

}  // namespace

TEST_CASE("a real capture's segments get tshark's relative numbers, windows and analysis flags") {
  std::set<std::string> seen;
  replay("analysis.txt", seen);
  // The capture has the trouble it was made for (else this test would prove little).
  for (const char* f : {"duplicate_ack", "fast_retransmission", "retransmission", "zero_window", "window_update",
                        "window_full", "keep_alive", "keep_alive_ack"})
    CHECK_MESSAGE(seen.count(f), f);
}

TEST_CASE(
    "a lossy, reordering path: spurious retransmissions, out-of-order segments and fast retransmissions "
    "as tshark tells them apart") {
  std::set<std::string> seen;
  replay("loss.txt", seen);
  for (const char* f : {"spurious_retransmission", "out_of_order", "fast_retransmission", "lost_segment"})
    CHECK_MESSAGE(seen.count(f), f);
  // A FIN sent again soon after the first is a retransmission, not out of order: its sequence
  // number counts for one byte.
  std::set<std::string> fin;
  replay("fin_resend.txt", fin);
  CHECK(fin == std::set<std::string>{"retransmission"});
}

TEST_CASE("the wire test frames (no trouble in them) get no flags and tshark's numbers") {
  std::set<std::string> seen;
  replay("frames.txt", seen);
  CHECK(seen.empty());
}

TEST_CASE("tcp.segment from a segment and its analysis") {
  const auto all = frames("frames.txt");
  REQUIRE(!all.empty());
  const auto d = wire::decodeFrame(all[0].linktype, wire::Bytes(all[0].bytes.data(), all[0].bytes.size()));
  REQUIRE(d.segment);
  analysis::TcpFlowAnalyzer flow;
  const auto a = flow.add(d.segment->tcp, 0);
  const auto e = analysis::segmentEvent(d.segment->tcp, a, true);
  CHECK(e.dir == "in");
  CHECK(e.flags == "SYN");
  CHECK(e.src == "[::1]:" + all[0].cols[0]);
  CHECK(e.rel_seq == 0);
  CHECK(!e.rel_ack);
  CHECK(e.win_scaled == e.win);
  CHECK(e.options.asArray().size() == 5);
  CHECK(e.analysis.asArray().empty());
}
