// A TCP SYN as the kernel saved it (TCP_SAVE_SYN / TCP_SAVED_SYN: the IPv4 or IPv6 header, then
// the TCP header with its options), decoded field by field. Pure: bytes in, values out; a
// malformed header is an error value, never an exception.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "wire/byte_reader.h"

namespace tlstrace::wire {

// One TCP option in wire order (RFC 9293 3.1, 3.2). Kinds decoded by value: 2 MSS (RFC 9293
// 3.2), 3 window scale and 8 timestamps (RFC 7323 2.2, 3.2), 4 SACK permitted (RFC 2018 2);
// any other kind keeps its number and its data.
struct TcpOption {
  std::uint8_t kind = 0;
  std::uint8_t length = 0;         // as written (1 for EOL and NOP)
  std::vector<std::uint8_t> data;  // the bytes after kind and length
};

struct TcpSyn {
  bool v6 = false;
  std::array<std::uint8_t, 16> src{}, dst{};  // IPv4 in the first 4 bytes
  std::uint8_t ttl = 0;                       // IPv4 TTL / IPv6 hop limit
  std::uint8_t ip_ecn = 0;                    // the ECN bits of the TOS / traffic class (RFC 3168 5)
  std::uint16_t src_port = 0, dst_port = 0;
  std::uint32_t seq = 0, ack = 0;
  std::uint16_t flags = 0;   // the 12 bits after the data offset: CWR 0x80, ECE 0x40, ... SYN 0x02, FIN 0x01
  std::uint16_t window = 0;  // as written (never scaled in a SYN, RFC 7323 2.2)
  std::vector<TcpOption> options;
  bool options_truncated = false;  // an option ran past the header: the rest is not decoded
  // The decoded values of the options above (the last one of a kind wins, as in Linux).
  std::optional<std::uint16_t> mss;
  std::optional<std::uint8_t> wscale;
  bool sack_perm = false;
  std::optional<std::uint32_t> ts_val, ts_ecr;
};

struct SynDecode {
  std::optional<TcpSyn> syn;
  std::string error;  // when !syn: what was wrong, with the offset
};

// `bytes` start at the IP header (TCP_SAVE_SYN = 1).
[[nodiscard]] SynDecode decodeSavedSyn(Bytes bytes);

// "SYN", "SYN,ECE,CWR", ... in tcpdump's order of bits from FIN up.
[[nodiscard]] std::string tcpFlagsText(std::uint16_t flags);
// The IANA name of a TCP option kind ("mss", "wscale", "sack_perm", "timestamps", "nop", "eol",
// "sack", "md5", "tcp_ao", "mptcp", "tfo"), or "" for others.
[[nodiscard]] std::string_view tcpOptionName(std::uint8_t kind);

}  // namespace tlstrace::wire
