// Captured frames (tests/data/tcp/frames.txt, made by tools/tcp_segment_vectors.py): IPv6 on
// Linux's loopback (Ethernet link type, an urgent pointer, an RST), IPv4 in Linux cooked v2
// ("any" with -y LINUX_SLL2) and cooked v1 (tlstrace's own --capture pcapng), each line with
// tshark 4.0's dissection of the same bytes. The decoder must give tshark's values.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "../test_util.h"
#include "wire/tcp_segment.h"

using namespace tlstrace::wire;

namespace {

// cols: tshark's srcport dstport seq ack flags win urg len mss wscale ...
using Frame = tlstrace::testing::TcpVectorFrame;

std::vector<Frame> frames(const std::string& name) {
  return tlstrace::testing::tcpVectorFrames(std::string(TLSTRACE_TEST_DATA) + "/tcp/" + name);
}

std::uint64_t num(const std::string& s) { return std::stoull(s, nullptr, 0); }

}  // namespace

TEST_CASE("captured frames decode as tshark dissects them (Ethernet, cooked v1 and v2; IPv4 and IPv6)") {
  const auto all = frames("frames.txt");
  REQUIRE(all.size() > 40);
  std::map<std::uint32_t, int> links;
  bool v6 = false, urg = false, rst = false;
  for (const auto& fr : all) {
    CAPTURE(toHex(Bytes(fr.bytes.data(), fr.bytes.size())));
    const auto d = decodeFrame(fr.linktype, Bytes(fr.bytes.data(), fr.bytes.size()));
    REQUIRE_MESSAGE(d.segment, d.error);
    const TcpSyn& s = d.segment->tcp;
    ++links[fr.linktype];
    v6 |= s.v6;
    urg |= s.urgent != 0;
    rst |= (s.flags & 0x04) != 0;
    CHECK(s.src_port == num(fr.cols[0]));
    CHECK(s.dst_port == num(fr.cols[1]));
    CHECK(s.seq == num(fr.cols[2]));
    CHECK(s.ack == num(fr.cols[3]));
    CHECK(s.flags == num(fr.cols[4]));
    CHECK(s.window == num(fr.cols[5]));
    CHECK(s.urgent == num(fr.cols[6]));
    CHECK(s.payload_len == num(fr.cols[7]));
    if (fr.cols[8] != "-") CHECK(s.mss == num(fr.cols[8]));
    else CHECK(!s.mss);
    if (fr.cols[9] != "-") CHECK(s.wscale == num(fr.cols[9]));
    else CHECK(!s.wscale);
    // The payload is where the headers end, and the frame holds it whole here.
    CHECK(d.segment->tcp.payload_offset + s.payload_len == fr.bytes.size());
  }
  CHECK(links[kLinkEthernet] > 0);
  CHECK(links[kLinkLinuxSll] > 0);
  CHECK(links[kLinkLinuxSll2] > 0);
  CHECK(v6);
  CHECK(urg);
  CHECK(rst);
}

TEST_CASE("every truncation of a captured frame is an error value or a segment, never a read past it") {
  for (const auto& fr : frames("frames.txt")) {
    for (std::size_t n = 0; n < fr.bytes.size(); ++n) {
      std::vector<std::uint8_t> cut(fr.bytes.begin(), fr.bytes.begin() + static_cast<std::ptrdiff_t>(n));
      const auto d = decodeFrame(fr.linktype, Bytes(cut.data(), cut.size()));
      if (!d.segment) CHECK(!d.error.empty());
    }
  }
}

TEST_CASE("link types: unknown ones and non-IP frames are refused with a reason") {
  const auto all = frames("frames.txt");
  REQUIRE(!all.empty());
  const auto& fr = all.front();
  auto d = decodeFrame(147, Bytes(fr.bytes.data(), fr.bytes.size()));
  CHECK(!d.segment);
  CHECK(d.error == "link type 147 not decoded");
  std::vector<std::uint8_t> arp(fr.bytes);
  if (fr.linktype == kLinkEthernet) {
    arp[12] = 0x08, arp[13] = 0x06;  // EtherType ARP
    d = decodeFrame(kLinkEthernet, Bytes(arp.data(), arp.size()));
    CHECK(!d.segment);
    CHECK(d.error == "not IP (type 2054)");
  }
  // The same IP packet without a link header (LINKTYPE_RAW) and behind BSD loopback's.
  const auto eth = decodeFrame(fr.linktype, Bytes(fr.bytes.data(), fr.bytes.size()));
  REQUIRE(eth.segment);
  const std::vector<std::uint8_t> ip(fr.bytes.begin() + static_cast<std::ptrdiff_t>(eth.segment->ip_offset),
                                     fr.bytes.end());
  const auto raw = decodeFrame(kLinkRaw, Bytes(ip.data(), ip.size()));
  REQUIRE(raw.segment);
  CHECK(raw.segment->tcp.seq == eth.segment->tcp.seq);
  std::vector<std::uint8_t> null = {eth.segment->tcp.v6 ? std::uint8_t{30} : std::uint8_t{2}, 0, 0, 0};
  null.insert(null.end(), ip.begin(), ip.end());
  const auto bsd = decodeFrame(kLinkNull, Bytes(null.data(), null.size()));
  REQUIRE(bsd.segment);
  CHECK(bsd.segment->tcp.payload_len == eth.segment->tcp.payload_len);
}

TEST_CASE("sequence numbers compare modulo 2^32 (RFC 9293 3.4)") {
  CHECK(seqAfter(1, 0));
  CHECK(seqAfter(5, 0xfffffff0u));
  CHECK(!seqAfter(0xfffffff0u, 5));
  CHECK(!seqAfter(7, 7));
}
