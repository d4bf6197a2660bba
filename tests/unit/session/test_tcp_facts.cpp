// The TCP facts the driver gathers (net/tcp_probe.h) as the session turns them into events: the
// client's saved SYN (bytes a real stack saved: tests/data/tcp/saved_syns.txt, values as tshark
// decodes them) into tcp.syn, TCP_INFO into tcp.info, and the close-time probe asked just before
// each leg's tcp.close.
#include <fstream>

#include "tests/unit/session/playbook.h"
#include "wire/byte_reader.h"

using namespace tlstrace;
using namespace tlstrace::playbook;
using V = std::vector<std::string>;

namespace {

std::vector<std::uint8_t> savedSyn(const std::string& name) {
  std::ifstream f(std::string(TLSTRACE_TEST_DATA) + "/tcp/saved_syns.txt");
  std::string n, hex;
  while (f >> n >> hex)
    if (n == name) return wire::fromHex(hex);
  return {};
}

}  // namespace

TEST_CASE("tcp.syn and tcp.info come from the driver's facts; TCP_INFO at close is asked before tcp.close") {
  World w;
  Run r{w};
  struct Facts final : session::ProxySession::SocketFacts {
    std::vector<trace::Leg> asked;
    std::optional<trace::ev::TcpInfo> tcpInfoAtClose(trace::Leg leg) override {
      asked.push_back(leg);
      trace::ev::TcpInfo i;
      i.at = "close";
      i.state = "CLOSE_WAIT";
      return i;
    }
    session::ProxySession::PeerEnd peerEnd(trace::Leg) override { return session::ProxySession::PeerEnd::None; }
  } facts;
  std::vector<trace::Leg>& asked = facts.asked;
  r.s.setSocketFacts(&facts);
  in::Start start{"127.0.0.1:49550", "127.0.0.1:52717"};
  start.syn = savedSyn("v4_loopback");
  REQUIRE_FALSE(start.syn.empty());
  trace::ev::TcpInfo est;
  est.at = "established";
  est.state = "ESTABLISHED";
  est.snd_wscale = 10;
  est.rcv_wscale = 7;
  start.tcp = est;
  r.feed(std::move(start));
  CHECK(r.takeEvents() == V{"conn.open", "client tcp.syn", "client tcp.info"});
  const auto* syn = r.last<trace::ev::TcpSyn>();
  REQUIRE(syn);
  // tshark: tcp.srcport 49550, tcp.seq 2179967833, tcp.window_size_value 65495, mss 65495,
  // wscale 10, TSval 2758000459, kinds 2,4,8,1,3, ip.ttl 64.
  CHECK(syn->src == "127.0.0.1:49550");
  CHECK(syn->dst == "127.0.0.1:52717");
  CHECK(syn->seq == 2179967833u);
  CHECK(syn->win == 65495);
  CHECK(syn->mss == 65495u);
  CHECK(syn->wscale == 10u);
  CHECK(syn->sack_perm);
  CHECK(syn->ts_val == 2758000459u);
  CHECK(syn->ttl == 64);
  CHECK(syn->flags == "SYN");
  CHECK(syn->options.asArray().size() == 5);
  CHECK_FALSE(syn->error);
  CHECK(r.last<trace::ev::TcpInfo>()->snd_wscale == 10u);

  r.closed(Leg::Client, in::Closed::How::Fin);  // before any request: the session ends
  const V evs = r.takeEvents();
  const auto close = std::find(evs.begin(), evs.end(), "client tcp.close peer/fin");
  REQUIRE(close != evs.end());
  REQUIRE(close != evs.begin());
  CHECK(*(close - 1) == "client tcp.info");
  CHECK(asked == std::vector<trace::Leg>{trace::Leg::Client});  // the upstream leg never opened
}

TEST_CASE("A SYN that does not decode is a tcp.syn with the error and the bytes") {
  World w;
  Run r{w};
  in::Start start{"127.0.0.1:1", "127.0.0.1:2"};
  start.syn = {0x45, 0x00};
  r.feed(std::move(start));
  const auto* syn = r.last<trace::ev::TcpSyn>();
  REQUIRE(syn);
  CHECK(syn->error == "IPv4 header truncated at offset 2");
  CHECK(syn->hex == "4500");
}
