// SYNs saved by a real Linux stack (TCP_SAVE_SYN on a listener, TCP_SAVED_SYN on the accepted
// socket: tests/data/tcp/capture_syns.py, some in a network namespace with tcp_timestamps,
// tcp_sack, tcp_window_scaling off, tcp_ecn=1 or tcp_fastopen=1). The expected values are
// tshark 4.0's decoding of the same bytes (written to a LINKTYPE_RAW pcap, `tshark -T fields -e
// tcp.seq -e tcp.window_size_value -e tcp.flags -e tcp.options.mss_val ...`), not our output.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "wire/tcp_syn.h"

using namespace tlstrace::wire;

namespace {

std::map<std::string, std::vector<std::uint8_t>> savedSyns() {
  std::map<std::string, std::vector<std::uint8_t>> out;
  std::ifstream f(std::string(TLSTRACE_TEST_DATA) + "/tcp/saved_syns.txt");
  std::string name, hex;
  while (f >> name >> hex) out[name] = fromHex(hex);
  return out;
}

struct Expected {
  const char* name;
  bool v6;
  std::uint16_t sport, dport;
  std::uint32_t seq;
  std::uint16_t win, flags;
  std::optional<std::uint16_t> mss;
  bool sack_perm;
  std::optional<std::uint8_t> wscale;
  std::optional<std::uint32_t> tsval;
  std::vector<std::uint8_t> kinds;  // tshark's tcp.option_kind, in order
};

}  // namespace

TEST_CASE("Saved SYNs of a real stack decode as tshark decodes them") {
  const auto syns = savedSyns();
  REQUIRE(syns.size() == 8);
  using K = std::vector<std::uint8_t>;
  const Expected table[] = {
      {"v4_loopback", false, 49550, 52717, 2179967833u, 65495, 0x002, 65495, true, 10, 2758000459u, K{2, 4, 8, 1, 3}},
      {"v6_loopback", true, 39054, 45325, 4123778584u, 65476, 0x002, 65476, true, 10, 1103483559u, K{2, 4, 8, 1, 3}},
      {"v4_maxseg536", false, 40686, 53635, 3861166758u, 65392, 0x002, 536, true, 10, 2245738427u, K{2, 4, 8, 1, 3}},
      {"v4_smallrcvbuf", false, 48342, 45149, 418860035u, 2048, 0x002, 65495, true, 0, 3376701640u, K{2, 4, 8, 1, 3}},
      {"v4_nots_nosack_nows", false, 57980, 54599, 1042140322u, 65495, 0x002, 65495, false, {}, {}, K{2}},
      {"v4_ecn", false, 42496, 57467, 4282178233u, 65495, 0x0c2, 65495, true, 10, 3816624796u, K{2, 4, 8, 1, 3}},
      {"v4_tfo", false, 46010, 39557, 3282344681u, 65495, 0x002, 65495, true, 10, 2879575910u,
       K{2, 4, 8, 1, 3, 34, 1, 1}},
      {"v4_nots", false, 36534, 48631, 189578779u, 65495, 0x002, 65495, true, 10, {}, K{2, 1, 1, 4, 1, 3}},
  };
  for (const auto& e : table) {
    CAPTURE(e.name);
    REQUIRE(syns.count(e.name) == 1);
    const auto d = decodeSavedSyn(syns.at(e.name));
    REQUIRE_MESSAGE(d.syn, d.error);
    const TcpSyn& s = *d.syn;
    CHECK(s.v6 == e.v6);
    CHECK(s.src_port == e.sport);
    CHECK(s.dst_port == e.dport);
    CHECK(s.seq == e.seq);
    CHECK(s.ack == 0);
    CHECK(s.window == e.win);
    CHECK(s.flags == e.flags);
    CHECK(s.mss == e.mss);
    CHECK(s.sack_perm == e.sack_perm);
    CHECK(s.wscale == e.wscale);
    CHECK(s.ts_val == e.tsval);
    if (e.tsval) CHECK(s.ts_ecr == 0u);
    CHECK(s.ttl == 64);  // tshark's ip.ttl / ipv6.hlim
    CHECK(s.ip_ecn == 0);
    CHECK_FALSE(s.options_truncated);
    std::vector<std::uint8_t> kinds;
    for (const auto& o : s.options) kinds.push_back(o.kind);
    CHECK(kinds == e.kinds);
  }
}

TEST_CASE("An unknown option kind keeps its number and data; the addresses are the IP header's") {
  const auto d = decodeSavedSyn(savedSyns().at("v4_tfo"));
  REQUIRE(d.syn);
  const auto& tfo = d.syn->options.at(5);
  CHECK(tfo.kind == 34);
  CHECK(tfo.length == 2);  // a Fast Open cookie request: no cookie (RFC 7413 4.1.1)
  CHECK(tfo.data.empty());
  CHECK(tcpOptionName(34) == "tfo");
  CHECK(tcpOptionName(253).empty());
  CHECK(d.syn->src[0] == 127);
  CHECK(d.syn->dst[3] == 1);
  CHECK(tcpFlagsText(d.syn->flags) == "SYN");
  CHECK(tcpFlagsText(0x0c2) == "SYN,ECE,CWR");
  CHECK(tcpFlagsText(0x012) == "SYN,ACK");
}

TEST_CASE("A malformed saved SYN is an error value with the offset, never a read past the end") {
  const auto good = savedSyns().at("v4_loopback");
  // Every truncation of the IP or TCP header fails with a reason (options are cut at the header's
  // own length, so a cut inside them is a header truncation too).
  for (std::size_t n = 0; n < good.size(); ++n) {
    const auto d = decodeSavedSyn(Bytes(good.data(), n));
    CAPTURE(n);
    CHECK_FALSE(d.syn);
    CHECK_FALSE(d.error.empty());
  }
  auto bad = good;
  bad[9] = 17;  // UDP
  CHECK(decodeSavedSyn(bad).error == "IPv4 protocol 17 is not TCP");
  bad = good;
  bad[0] = 0x75;
  CHECK(decodeSavedSyn(bad).error == "IP version 7 is neither 4 nor 6");
  // An option whose length runs past the header: kept with its kind, marked truncated.
  bad = good;
  bad[20 + 20 + 1] = 40;  // the MSS option's length byte
  const auto d = decodeSavedSyn(bad);
  REQUIRE(d.syn);
  CHECK(d.syn->options_truncated);
  CHECK(d.syn->options.size() == 1);
  CHECK_FALSE(d.syn->mss);
  // A length below 2 cannot be skipped either.
  bad[20 + 20 + 1] = 1;
  CHECK(decodeSavedSyn(bad).syn->options_truncated);
}
