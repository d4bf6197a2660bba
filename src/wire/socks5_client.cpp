#include "wire/socks5_client.h"

#include <arpa/inet.h>

#include <array>

namespace tlstrace::wire::socks5 {

namespace {
constexpr std::uint8_t kVersion = 5;
constexpr std::uint8_t kAtypV4 = 1, kAtypName = 3, kAtypV6 = 4;
}  // namespace

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
  std::vector<std::uint8_t> out{1};  // RFC 1929 2: the subnegotiation's version is 1
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
  if (ver != 1 && ver != kVersion) {
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
    out.push_back(kAtypV4);
    out.insert(out.end(), addr.begin(), addr.begin() + 4);
  } else if (::inet_pton(AF_INET6, h.c_str(), addr.data()) == 1) {
    out.push_back(kAtypV6);
    out.insert(out.end(), addr.begin(), addr.end());
  } else {
    if (host.empty() || host.size() > 255) return {};
    out.push_back(kAtypName);
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
  Bytes addr;
  std::string text;
  if (atyp == kAtypV4 || atyp == kAtypV6) {
    if (!rd.readBytes(atyp == kAtypV4 ? 4 : 16, addr)) return r;
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(atyp == kAtypV4 ? AF_INET : AF_INET6, addr.data(), buf, sizeof buf);
    text = atyp == kAtypV4 ? std::string(buf) : "[" + std::string(buf) + "]";
  } else if (atyp == kAtypName) {
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
