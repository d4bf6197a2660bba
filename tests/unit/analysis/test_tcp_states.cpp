// analysis::deriveTcpStates against RFC 9293 3.3.2 (figure 5). The segment lists are real: tshark
// on lo (`-T fields -e frame.time_relative -e tcp.srcport -e tcp.flags.str`) for a Python client
// and server in one process; the expected sequences are read off the RFC's state diagram.
#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "analysis/tcp_states.h"
#include "trace/event.h"
#include "trace/text.h"

using namespace tlstrace::analysis;

namespace {

// tshark's tcp.flags.str is 12 positions, "·" or a letter: ...A P R S F at the end.
std::uint8_t flagsOf(const std::string& s) {
  std::uint8_t f = 0;
  for (char c : s) {
    if (c == 'F') f |= kFin;
    if (c == 'S') f |= kSyn;
    if (c == 'R') f |= kRst;
    if (c == 'P') f |= kPsh;
    if (c == 'A') f |= kAck;
  }
  return f;
}

// Lines "time srcport flags" seen from the end whose port is `me`.
std::vector<TcpSegment> segments(const std::string& capture, const std::string& me) {
  std::vector<TcpSegment> out;
  std::istringstream in(capture);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    double t = 0;
    std::string port, flags;
    if (!(f >> t >> port >> flags)) continue;
    out.push_back({port == me, flagsOf(flags), t * 1000});
  }
  return out;
}

std::string names(const std::vector<TcpTransition>& ts) {
  std::string s;
  for (const auto& t : ts) {
    if (s.empty()) s = std::string(tcpStateName(static_cast<int>(t.from)));
    s += " > ";
    s += tcpStateName(static_cast<int>(t.to));
  }
  return s;
}

// Client 51630 shuts down first; the server (53857) acks late (delayed ACK), then closes.
const char* kClientFirst = R"(0.011114915	51630	··········S·
0.011121385	53857	·······A··S·
0.011128145	51630	·······A····
0.011162416	51630	·······AP···
0.011165571	53857	·······A····
0.011175666	53857	·······AP···
0.011178280	51630	·······A····
0.011186382	51630	·······A···F
0.051871765	53857	·······A····
0.068223237	53857	·······A···F
0.068243037	51630	·······A····
)";
// The server (48073) closes first.
const char* kServerFirst = R"(0.817657908	42354	··········S·
0.817668053	48073	·······A··S·
0.817681473	42354	·······A····
0.817719149	42354	·······AP···
0.817723435	48073	·······A····
0.817735533	48073	·······AP···
0.817738037	42354	·······A····
0.817748973	48073	·······A···F
0.885239942	42354	·······A···F
0.885248225	48073	·······A····
)";
// The client (50096) aborts (SO_LINGER 0): an RST.
const char* kClientRst = R"(0.310067636	50096	··········S·
0.310075658	45859	·······A··S·
0.310085342	50096	·······A····
0.310120675	50096	·······AP···
0.310124160	45859	·······A····
0.310134475	45859	·······AP···
0.310137019	50096	·······A····
0.310162617	50096	·······A·R··
)";
// Both shut down at once: the server's FIN carries the ACK of the client's (55960).
const char* kBoth = R"(0.813142950	55960	··········S·
0.813156229	55159	·······A··S·
0.813170771	55960	·······A····
0.813216900	55960	·······AP···
0.813221897	55159	·······A····
0.813234926	55159	·······AP···
0.813237460	55960	·······A····
0.813247655	55960	·······A···F
0.813253434	55159	·······A···F
0.813259924	55960	·······A····
)";

}  // namespace

TEST_CASE("TCP states from captured segments follow RFC 9293 figure 5") {
  struct Case {
    const char* name;
    const char* capture;
    const char* me;
    bool active;
    const char* expected;
  };
  const Case cases[] = {
      {"client first, client", kClientFirst, "51630", true,
       "CLOSE > SYN_SENT > ESTABLISHED > FIN_WAIT1 > FIN_WAIT2 > TIME_WAIT"},
      {"client first, server", kClientFirst, "53857", false,
       "LISTEN > SYN_RECV > ESTABLISHED > CLOSE_WAIT > LAST_ACK > CLOSE"},
      {"server first, client", kServerFirst, "42354", true,
       "CLOSE > SYN_SENT > ESTABLISHED > CLOSE_WAIT > LAST_ACK > CLOSE"},
      {"server first, server", kServerFirst, "48073", false,
       "LISTEN > SYN_RECV > ESTABLISHED > FIN_WAIT1 > FIN_WAIT2 > TIME_WAIT"},
      {"rst, client", kClientRst, "50096", true, "CLOSE > SYN_SENT > ESTABLISHED > CLOSE"},
      {"rst, server", kClientRst, "45859", false, "LISTEN > SYN_RECV > ESTABLISHED > CLOSE"},
      // The FIN,ACK answer skips FIN_WAIT2 in the RFC; the kernel reports it, and so does this.
      {"both, first FIN", kBoth, "55960", true, "CLOSE > SYN_SENT > ESTABLISHED > FIN_WAIT1 > FIN_WAIT2 > TIME_WAIT"},
      {"both, second FIN", kBoth, "55159", false, "LISTEN > SYN_RECV > ESTABLISHED > CLOSE_WAIT > LAST_ACK > CLOSE"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(names(deriveTcpStates(segments(c.capture, c.me), c.active)) == c.expected);
  }
}

TEST_CASE("TCP state times are those of the segments that moved them") {
  const auto ts = deriveTcpStates(segments(kClientFirst, "51630"), true);
  REQUIRE(ts.size() == 5);
  CHECK(ts[2].time_ms == doctest::Approx(11.186382));  // our FIN
  CHECK(ts[3].time_ms == doctest::Approx(51.871765));  // the (delayed) ACK of it
  CHECK(ts[4].time_ms == doctest::Approx(68.223237));  // their FIN
}

TEST_CASE("TCP states: simultaneous close goes through CLOSING (RFC 9293 figure 13)") {
  // Both FINs cross: each end sees the other's FIN (without the ACK of its own) in FIN_WAIT1.
  const std::vector<TcpSegment> segs = {{true, kSyn, 0},        {false, kSyn | kAck, 1}, {true, kAck, 2},
                                        {true, kFin | kAck, 3}, {false, kFin, 4},        {true, kAck, 5},
                                        {false, kAck, 6}};
  CHECK(names(deriveTcpStates(segs, true)) == "CLOSE > SYN_SENT > ESTABLISHED > FIN_WAIT1 > CLOSING > TIME_WAIT");
}

TEST_CASE("TCP state names use the kernel's numbering") {
  CHECK(tcpStateName(1) == "ESTABLISHED");
  CHECK(tcpStateName(6) == "TIME_WAIT");
  CHECK(tcpStateName(11) == "CLOSING");
  CHECK(tcpStateName(0) == "?");
  CHECK(tcpStateName(99) == "?");
}

TEST_CASE("Derived TCP states become tcp.state events, drawn on one line each") {
  const auto evs = tcpStateEvents(deriveTcpStates(segments(kServerFirst, "48073"), false));
  REQUIRE(evs.size() == 5);
  CHECK(evs[0].source == "capture");
  CHECK_FALSE(evs[0].since_ms.has_value());
  CHECK(*evs[3].since_ms == doctest::Approx((0.885239942 - 0.817748973) * 1000));  // our FIN -> their FIN,ACK
  CHECK(*evs[4].since_ms == 0);  // the same FIN,ACK: FIN_WAIT2 and TIME_WAIT at once
  const tlstrace::trace::Event e({}, 1, tlstrace::trace::Leg::Upstream, evs[3]);
  const std::string line = tlstrace::trace::renderText(e, tlstrace::trace::TextFormat::Default);
  CHECK(line.find("proxy\u21c4server  FIN_WAIT1 \u2192 FIN_WAIT2 (+67.5 ms) [capture]\n") != std::string::npos);
}
