#include "wire/tcp_syn.h"

#include <algorithm>

namespace tlstrace::wire {

namespace {

constexpr std::uint8_t kProtoTcp = 6;

std::string at(const ByteReader& r, const char* what) {
  return std::string(what) + " at offset " + std::to_string(r.offset());
}

// RFC 791 3.1: version/IHL, TOS, total length, id, flags/fragment, TTL, protocol, checksum,
// addresses, then options up to IHL * 4 bytes.
bool readIpv4(ByteReader& r, TcpSyn& s, std::string& error) {
  ByteReader h = r;
  std::uint8_t vihl = 0, tos = 0, proto = 0;
  Bytes src, dst;
  if (!h.readU8(vihl) || !h.readU8(tos) || !h.skip(6) || !h.readU8(s.ttl) || !h.readU8(proto) || !h.skip(2) ||
      !h.readBytes(4, src) || !h.readBytes(4, dst))
    return error = at(h, "IPv4 header truncated"), false;
  const std::size_t ihl = (vihl & 0x0f) * 4u;
  if (ihl < 20) return error = "IPv4 header length " + std::to_string(ihl) + " below 20", false;
  if (proto != kProtoTcp) return error = "IPv4 protocol " + std::to_string(proto) + " is not TCP", false;
  if (!r.skip(ihl)) return error = at(r, "IPv4 options truncated"), false;
  s.ip_ecn = tos & 0x03;
  std::copy(src.begin(), src.end(), s.src.begin());
  std::copy(dst.begin(), dst.end(), s.dst.begin());
  return true;
}

// RFC 8200 3 and 4: the fixed header, then extension headers (hop-by-hop 0, routing 43,
// fragment 44, destination options 60) until TCP.
bool readIpv6(ByteReader& r, TcpSyn& s, std::string& error) {
  std::uint32_t vtcfl = 0;
  std::uint8_t next = 0;
  Bytes src, dst;
  if (!r.readU32(vtcfl) || !r.skip(2) || !r.readU8(next) || !r.readU8(s.ttl) || !r.readBytes(16, src) ||
      !r.readBytes(16, dst))
    return error = at(r, "IPv6 header truncated"), false;
  s.v6 = true;
  s.ip_ecn = static_cast<std::uint8_t>((vtcfl >> 20) & 0x03);
  std::copy(src.begin(), src.end(), s.src.begin());
  std::copy(dst.begin(), dst.end(), s.dst.begin());
  for (int hops = 0; next != kProtoTcp; ++hops) {
    if (hops == 8 || (next != 0 && next != 43 && next != 44 && next != 60))
      return error = "IPv6 next header " + std::to_string(next) + " is not TCP", false;
    std::uint8_t len = 0;
    if (!r.readU8(next) || !r.readU8(len) || !r.skip(next == 44 ? 6 : len * 8u + 6))
      return error = at(r, "IPv6 extension header truncated"), false;
  }
  return true;
}

void noteOption(TcpSyn& s, const TcpOption& o) {
  const auto& d = o.data;
  switch (o.kind) {
    case 2:
      if (d.size() == 2) s.mss = static_cast<std::uint16_t>(d[0] << 8 | d[1]);
      break;
    case 3:
      if (d.size() == 1) s.wscale = d[0];
      break;
    case 4: s.sack_perm = true; break;
    case 8:
      if (d.size() == 8) {
        ByteReader v(Bytes(d.data(), d.size()));
        std::uint32_t val = 0, ecr = 0;
        if (v.readU32(val) && v.readU32(ecr)) s.ts_val = val, s.ts_ecr = ecr;
      }
      break;
    default: break;
  }
}

// RFC 9293 3.1: kind 0 (end of list) and 1 (no-op) are one byte; every other kind has a length
// byte that counts kind and length too.
void readOptions(ByteReader r, TcpSyn& s) {
  while (!r.empty()) {
    TcpOption o;
    if (!r.readU8(o.kind)) break;
    if (o.kind == 0 || o.kind == 1) {
      o.length = 1;
      s.options.push_back(std::move(o));
      if (s.options.back().kind == 0) break;  // the rest is padding
      continue;
    }
    Bytes body;
    if (!r.readU8(o.length) || o.length < 2 || !r.readBytes(o.length - 2u, body)) {
      s.options_truncated = true;
      s.options.push_back(std::move(o));
      break;
    }
    o.data.assign(body.begin(), body.end());
    noteOption(s, o);
    s.options.push_back(std::move(o));
  }
}

}  // namespace

SynDecode decodeSavedSyn(Bytes bytes) {
  SynDecode out;
  ByteReader r(bytes);
  TcpSyn s;
  if (bytes.empty()) return out.error = "no bytes", out;
  const int version = bytes[0] >> 4;
  if (version == 4 ? !readIpv4(r, s, out.error) : version == 6 ? !readIpv6(r, s, out.error) : true) {
    if (out.error.empty()) out.error = "IP version " + std::to_string(version) + " is neither 4 nor 6";
    return out;
  }
  // RFC 9293 3.1: ports, sequence, acknowledgment, data offset and flags, window, checksum,
  // urgent pointer, then options up to the data offset.
  ByteReader t = r;
  std::uint16_t off_flags = 0;
  if (!t.readU16(s.src_port) || !t.readU16(s.dst_port) || !t.readU32(s.seq) || !t.readU32(s.ack) ||
      !t.readU16(off_flags) || !t.readU16(s.window) || !t.skip(4))
    return out.error = at(t, "TCP header truncated"), out;
  const std::size_t data_offset = (off_flags >> 12) * 4u;
  s.flags = off_flags & 0x0fff;
  ByteReader opts;
  if (data_offset < 20 || !r.skip(20) || !r.readReader(data_offset - 20, opts))
    return out.error = "TCP data offset " + std::to_string(data_offset) + " does not fit the header", out;
  readOptions(opts, s);
  out.syn = std::move(s);
  return out;
}

std::string tcpFlagsText(std::uint16_t flags) {
  static constexpr const char* kNames[] = {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "AE"};
  std::string out;
  // SYN first, as a reader names the segment ("SYN,ACK"), then the rest from FIN up.
  static constexpr int kOrder[] = {1, 0, 2, 3, 4, 5, 6, 7, 8};
  for (int bit : kOrder) {
    if (!(flags & (1u << bit))) continue;
    if (!out.empty()) out += ',';
    out += kNames[bit];
  }
  return out;
}

std::string_view tcpOptionName(std::uint8_t kind) {
  switch (kind) {
    case 0: return "eol";
    case 1: return "nop";
    case 2: return "mss";
    case 3: return "wscale";
    case 4: return "sack_perm";
    case 5: return "sack";
    case 8: return "timestamps";
    case 19: return "md5";     // RFC 2385
    case 29: return "tcp_ao";  // RFC 5925
    case 30: return "mptcp";   // RFC 8684
    case 34: return "tfo";     // RFC 7413
    default: return {};
  }
}

}  // namespace tlstrace::wire
