#include "wire/tcp_segment.h"

namespace tlstrace::wire {

namespace {

constexpr std::uint16_t kEtherIpv4 = 0x0800, kEtherIpv6 = 0x86dd, kEtherVlan = 0x8100, kEtherQinQ = 0x88a8;

// Ethernet II (IEEE 802.3): destination, source, then the EtherType; 802.1Q/802.1ad tags
// (4 bytes each) before the real one.
bool skipEthernet(ByteReader& r, std::uint16_t& type) {
  if (!r.skip(12) || !r.readU16(type)) return false;
  for (int tags = 0; (type == kEtherVlan || type == kEtherQinQ) && tags < 2; ++tags)
    if (!r.skip(2) || !r.readU16(type)) return false;
  return true;
}

// https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html: packet type, ARPHRD type, address
// length, 8 address bytes, protocol.
bool skipSll(ByteReader& r, std::uint16_t& type, std::optional<std::uint16_t>& pkttype) {
  std::uint16_t pt = 0;
  if (!r.readU16(pt) || !r.skip(12) || !r.readU16(type)) return false;
  pkttype = pt;
  return true;
}

// LINKTYPE_LINUX_SLL2: protocol, reserved, interface index, ARPHRD type, packet type, address
// length, 8 address bytes.
bool skipSll2(ByteReader& r, std::uint16_t& type, std::optional<std::uint16_t>& pkttype) {
  std::uint8_t pt = 0;
  if (!r.readU16(type) || !r.skip(8) || !r.readU8(pt) || !r.skip(9)) return false;
  pkttype = pt;
  return true;
}

// The BSD loopback header's address family: AF_INET is 2 everywhere, AF_INET6 24, 28 or 30.
bool skipNull(ByteReader& r, bool network_order, std::uint16_t& type) {
  Bytes b;
  if (!r.readBytes(4, b)) return false;
  const std::uint32_t af = network_order ? (std::uint32_t{b[0]} << 24 | b[1] << 16 | b[2] << 8 | b[3])
                                         : (std::uint32_t{b[3]} << 24 | b[2] << 16 | b[1] << 8 | b[0]);
  const std::uint32_t swapped = (af >> 24) | ((af >> 8) & 0xff00) | ((af << 8) & 0xff0000) | (af << 24);
  const auto is = [&](std::uint32_t v) { return af == v || swapped == v; };
  type = is(2) ? kEtherIpv4 : (is(24) || is(28) || is(30)) ? kEtherIpv6 : 0;
  return true;
}

}  // namespace

SegmentDecode decodeFrame(std::uint32_t linktype, Bytes frame) {
  SegmentDecode out;
  ByteReader r(frame);
  std::uint16_t type = 0;
  TcpSegment seg;
  bool ok = true;
  switch (linktype) {
    case kLinkEthernet: ok = skipEthernet(r, type); break;
    case kLinkLinuxSll: ok = skipSll(r, type, seg.packet_type); break;
    case kLinkLinuxSll2: ok = skipSll2(r, type, seg.packet_type); break;
    case kLinkNull: ok = skipNull(r, false, type); break;
    case kLinkLoop: ok = skipNull(r, true, type); break;
    case kLinkRaw:
    case kLinkIpv4:
    case kLinkIpv6: type = frame.empty() ? 0 : (frame[0] >> 4) == 6 ? kEtherIpv6 : kEtherIpv4; break;
    default: return out.error = "link type " + std::to_string(linktype) + " not decoded", out;
  }
  if (!ok) return out.error = "link header truncated", out;
  if (type != kEtherIpv4 && type != kEtherIpv6) return out.error = "not IP (type " + std::to_string(type) + ")", out;
  seg.ip_offset = r.offset();
  auto d = decodeIpTcp(r.rest());
  if (!d.syn) return out.error = std::move(d.error), out;
  seg.tcp = std::move(*d.syn);
  seg.tcp.payload_offset += seg.ip_offset;
  out.segment = std::move(seg);
  return out;
}

}  // namespace tlstrace::wire
