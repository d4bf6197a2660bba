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

  // At close: the out-of-order count only when there was one, and through convert too.
  i.at = "close";
  i.rcv_ooopack = 0;
  CHECK(renderText(Event(Clock::now(), 1, Leg::Client, i)).find("out of order") == std::string::npos);
  i.rcv_ooopack = 3;
  const Event reordered(Clock::now(), 1, Leg::Client, i);
  CHECK(renderText(reordered).find(", 3 received out of order\n") != std::string::npos);
  CHECK(renderText(roundTrip(reordered)) == renderText(reordered));

  ev::TcpClose c{"peer", "rst", 10, 20, 1.5, {}, {}, {}};
  const std::string closed = renderText(Event(Clock::now(), 1, Leg::Upstream, c));
  CHECK(closed.find("<- RST first, from the server\n") != std::string::npos);
  CHECK(closed.find("== tcp.close") != std::string::npos);  // the fields follow
}

TEST_CASE("A captured segment is one compact ladder line with relative numbers and its analysis flags") {
  // Real tcp.segment lines (docs/events.md's examples, from the namespace test), as convert reads them.
  const auto line = [](const char* json) {
    Event e;
    std::string err;
    REQUIRE_MESSAGE(fromJson(*Json::parse(json), e, &err), err);
    const std::string text = renderText(e);
    CHECK(renderText(roundTrip(e)) == text);
    const auto at = text.find(e.as<ev::TcpSegment>()->dir == "in" ? "<-" : "->");
    return text.substr(at);
  };
  CHECK(
      line(
          R"({"ts":"2026-12-04T19:22:55.641428Z","conn":1,"leg":"client","event":"tcp.segment","dir":"in","src":"127.0.0.1:41896","dst":"127.0.0.1:35903","flags":"SYN","seq":1549928168,"ack":0,"rel_seq":0,"len":0,"win":64240,"win_scaled":64240,"wscale":0,"urg":0,"options":[{"kind":2,"name":"mss","value":1460},{"kind":4,"name":"sack_perm"},{"kind":8,"name":"timestamps","tsval":3096999792,"tsecr":0},{"kind":1,"name":"nop"},{"kind":3,"name":"wscale","shift":10}],"analysis":[]})") ==
      "<- SYN seq=0 win=64240 [mss 1460, sackOK, TS, wscale 10]\n");
  CHECK(
      line(
          R"({"ts":"2026-12-04T19:22:58.095705Z","conn":1,"leg":"upstream","event":"tcp.segment","dir":"out","src":"127.0.0.1:59416","dst":"127.0.0.1:33399","flags":"ACK","seq":1316354281,"ack":4032424124,"rel_seq":486,"rel_ack":46784,"len":0,"win":73,"win_scaled":74752,"wscale":10,"urg":0,"options":[{"kind":1,"name":"nop"},{"kind":1,"name":"nop"},{"kind":8,"name":"timestamps","tsval":2752450567,"tsecr":2945440311},{"kind":1,"name":"nop"},{"kind":1,"name":"nop"},{"kind":5,"name":"sack","length":10,"data":"f059ee64f059f9b4"}],"analysis":["duplicate_ack"],"dup_ack_num":1})") ==
      "-> ACK seq=486 ack=46784 win=74752 [TS, sack] {duplicate_ack #1}\n");
  CHECK(
      line(
          R"({"ts":"2026-12-04T19:22:58.095732Z","conn":1,"leg":"upstream","event":"tcp.segment","dir":"in","src":"127.0.0.1:33399","dst":"127.0.0.1:59416","flags":"ACK","seq":4032424124,"ack":1316354281,"rel_seq":46784,"rel_ack":486,"len":1448,"win":64,"win_scaled":65536,"wscale":10,"urg":0,"options":[{"kind":1,"name":"nop"},{"kind":1,"name":"nop"},{"kind":8,"name":"timestamps","tsval":2945440311,"tsecr":2752450567}],"analysis":["fast_retransmission","retransmission"]})") ==
      "<- ACK seq=46784 ack=486 win=65536 len=1448 [TS] {fast_retransmission, retransmission}\n");
}
