// The TCP ladder of the text trace (trace/text_tcp.cpp) on a SYN a real stack saved (values as
// tshark decodes the same bytes: tests/data/tcp/saved_syns.txt), and its rendering after a JSON
// round trip (what `convert` does).
#include <doctest/doctest.h>

#include <fstream>

#include "trace/event.h"
#include "trace/tcp_events.h"
#include "trace/text.h"
#include "wire/byte_reader.h"

using namespace tlstrace;
using namespace tlstrace::trace;

namespace {

std::vector<std::uint8_t> savedSyn(const std::string& name) {
  std::ifstream f(std::string(TLSTRACE_TEST_DATA) + "/tcp/saved_syns.txt");
  std::string n, hex;
  while (f >> n >> hex)
    if (n == name) return wire::fromHex(hex);
  return {};
}

// The line without its time, connection and leg prefix.
std::string afterPrefix(const std::string& line) { return line.substr(line.find("<-")); }

Event roundTrip(const Event& e) {
  std::string line;
  appendJsonLine(e, line);
  Event back;
  std::string err;
  REQUIRE_MESSAGE(fromJson(*Json::parse(line), back, &err), err);
  return back;
}

}  // namespace

TEST_CASE("The client's SYN is one ladder line, tcpdump's option list included, also after convert") {
  const auto bytes = savedSyn("v4_tfo");
  REQUIRE_FALSE(bytes.empty());
  const Event e(Clock::now(), 1, Leg::Client, synEvent(bytes));
  const std::string text = renderText(e);
  // tshark: tcp.seq 3282344681, window 65495, options 2,4,8,1,3,34,1,1 (TSval 2879575910), ports
  // 46010 -> 39557, ip.ttl 64.
  CHECK(afterPrefix(text) ==
        "<- SYN seq=3282344681 win=65495 [mss 65495,sackOK,TS val 2879575910 ecr 0,nop,wscale 10,tfo (34),nop,nop] "
        "127.0.0.1:46010 > 127.0.0.1:39557, ttl 64\n");
  CHECK(renderText(roundTrip(e)) == text);
}

TEST_CASE("TCP_INFO at establishment names the handshake by who connected; the close names who ended it") {
  ev::TcpInfo i;
  i.at = "established";
  i.state = "ESTABLISHED";
  i.sack = i.timestamps = true;
  i.snd_wscale = 7;
  i.rcv_wscale = 10;
  i.snd_mss = 1448;
  i.rcv_mss = 536;
  i.rtt_ms = 0.25;
  i.rto_ms = 201;
  const Event upstream(Clock::now(), 1, Leg::Upstream, i);
  const std::string up = renderText(upstream);
  CHECK(up.find("-> SYN, <- SYN,ACK, -> ACK: ESTABLISHED [sackOK,TS,wscale snd 7 rcv 10,no ECN] mss 1448 out 536 in") !=
        std::string::npos);
  CHECK(up.find("rtt 0.25/0 ms, rto 201 ms") != std::string::npos);
  const std::string client = renderText(Event(Clock::now(), 1, Leg::Client, i));
  CHECK(client.find("-> SYN,ACK, <- ACK: ESTABLISHED") != std::string::npos);
  CHECK(renderText(roundTrip(upstream)) == up);

  ev::TcpClose c{"peer", "rst", 10, 20, 1.5, {}, {}, {}};
  const std::string closed = renderText(Event(Clock::now(), 1, Leg::Upstream, c));
  CHECK(closed.find("<- RST first, from the server\n") != std::string::npos);
  CHECK(closed.find("== tcp.close") != std::string::npos);  // the fields follow
}
