// A captured frame (libpcap's link types) down to its TCP segment: the link header, then the IP
// and TCP headers through the same decoder as a saved SYN (wire/tcp_syn.h). Pure: bytes in,
// values out; a frame that is not TCP over IP, or is malformed, is an error value.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "wire/byte_reader.h"
#include "wire/tcp_syn.h"

namespace tlstrace::wire {

// The LINKTYPE_ values of https://www.tcpdump.org/linktypes.html that a Linux capture gives.
enum LinkType : std::uint32_t {
  kLinkNull = 0,        // BSD loopback: a 4-byte address family in the writer's byte order
  kLinkEthernet = 1,    // IEEE 802.3 (Linux's loopback device too, with zero addresses)
  kLinkRaw = 101,       // IPv4 or IPv6, no link header
  kLinkLoop = 108,      // OpenBSD loopback: the family in network byte order
  kLinkLinuxSll = 113,  // Linux cooked capture v1 ("any" device)
  kLinkIpv4 = 228,
  kLinkIpv6 = 229,
  kLinkLinuxSll2 = 276,  // Linux cooked capture v2
};

struct TcpSegment {
  TcpSyn tcp;                 // IP and TCP header fields, options decoded; payload_offset is into the frame
  std::size_t ip_offset = 0;  // where the IP header starts in the frame
  // Linux cooked captures: the packet type (0 to us, 4 sent by us), else absent.
  std::optional<std::uint16_t> packet_type;
};

struct SegmentDecode {
  std::optional<TcpSegment> segment;
  std::string error;  // when !segment: what was wrong
};

[[nodiscard]] SegmentDecode decodeFrame(std::uint32_t linktype, Bytes frame);

// Sequence-number arithmetic modulo 2^32 (RFC 9293 3.4): a is after b.
[[nodiscard]] constexpr bool seqAfter(std::uint32_t a, std::uint32_t b) { return static_cast<std::int32_t>(a - b) > 0; }

}  // namespace tlstrace::wire
