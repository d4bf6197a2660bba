#include "wire/socks5_client.h"

#include <arpa/inet.h>

#include <array>

namespace tlstrace::wire::socks5 {

// The protocol's numbers are the server side's (wire/socks.h).
using socks::kAtypDomain;
using socks::kAtypIPv4;
using socks::kAtypIPv6;
using socks::kAuthVersion;
using socks::kVersion;

std::vector<std::uint8_t> greeting(bool password) {
  if (password) return {kVersion, 2, kMethodNone, kMethodPassword};
  return {kVersion, 1, kMethodNone};
}

MethodReply parseMethodReply(Bytes in) {
  MethodReply r;
  ByteReader rd(in);
  std::uint8_t ver = 0;
  if (!rd.readU8(ver) || !rd.readU8(r.method)) return r;
  if (ver != kVersion) {
    r.parse = Parse::Malformed;
    r.error = "not a SOCKS5 reply (version " + std::to_string(ver) + ")";
    return r;
  }
  r.parse = Parse::Done;
  r.length = rd.offset();
  return r;
}

std::vector<std::uint8_t> passwordRequest(std::string_view user, std::string_view password) {
  std::vector<std::uint8_t> out{kAuthVersion};  // RFC 1929 2
  for (std::string_view s : {user.substr(0, 255), password.substr(0, 255)}) {
    out.push_back(static_cast<std::uint8_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
  }
  return out;
}

PasswordReply parsePasswordReply(Bytes in) {
  PasswordReply r;
  ByteReader rd(in);
  std::uint8_t ver = 0;
  if (!rd.readU8(ver) || !rd.readU8(r.status)) return r;
  // RFC 1929 names version 1; some servers answer with 5: the status is what counts.
  if (ver != kAuthVersion && ver != kVersion) {
    r.parse = Parse::Malformed;
    r.error = "not a username/password reply (version " + std::to_string(ver) + ")";
    return r;
  }
  r.parse = Parse::Done;
  r.length = rd.offset();
  return r;
}

std::vector<std::uint8_t> connectRequest(std::string_view host, std::uint16_t port) {
  std::vector<std::uint8_t> out{kVersion, 1 /* CONNECT */, 0 /* RSV */};
  const std::string h(host);
  std::array<std::uint8_t, 16> addr{};
  if (::inet_pton(AF_INET, h.c_str(), addr.data()) == 1) {
    out.push_back(kAtypIPv4);
    out.insert(out.end(), addr.begin(), addr.begin() + 4);
  } else if (::inet_pton(AF_INET6, h.c_str(), addr.data()) == 1) {
    out.push_back(kAtypIPv6);
    out.insert(out.end(), addr.begin(), addr.end());
  } else {
    if (host.empty() || host.size() > 255) return {};
    out.push_back(kAtypDomain);
    out.push_back(static_cast<std::uint8_t>(host.size()));
    out.insert(out.end(), host.begin(), host.end());
  }
  out.push_back(static_cast<std::uint8_t>(port >> 8));
  out.push_back(static_cast<std::uint8_t>(port & 0xff));
  return out;
}

ConnectReply parseConnectReply(Bytes in) {
  ConnectReply r;
  ByteReader rd(in);
  std::uint8_t ver = 0, rsv = 0, atyp = 0;
  if (!rd.readU8(ver)) return r;
  if (ver != kVersion) {
    r.parse = Parse::Malformed;
    r.error = "not a SOCKS5 reply (version " + std::to_string(ver) + ")";
    return r;
  }
  if (!rd.readU8(r.rep) || !rd.readU8(rsv) || !rd.readU8(atyp)) return r;
  std::string text;
  if (atyp == kAtypIPv4 || atyp == kAtypIPv6) {
    if (!socks::readIpAddress(rd, atyp, text)) return r;
    if (atyp == kAtypIPv6) text = "[" + text + "]";
  } else if (atyp == kAtypDomain) {
    ByteReader name;
    if (!rd.readU8Prefixed(name)) return r;
    text.assign(name.rest().begin(), name.rest().end());
  } else {
    r.parse = Parse::Malformed;
    r.error = "SOCKS5 reply with an unknown address type " + std::to_string(atyp);
    return r;
  }
  std::uint16_t port = 0;
  if (!rd.readU16(port)) return r;
  r.bound = text + ":" + std::to_string(port);
  r.parse = Parse::Done;
  r.length = rd.offset();
  return r;
}

std::string_view replyText(std::uint8_t rep) {
  switch (rep) {
    case 0: return "succeeded";
    case 1: return "general SOCKS server failure";
    case 2: return "connection not allowed by ruleset";
    case 3: return "network unreachable";
    case 4: return "host unreachable";
    case 5: return "connection refused";
    case 6: return "TTL expired";
    case 7: return "command not supported";
    case 8: return "address type not supported";
    default: return "unassigned reply code";
  }
}

bool targetFailure(std::uint8_t rep) { return rep >= 3 && rep <= 6; }

}  // namespace tlstrace::wire::socks5
