#include "wire/socks.h"

#include <arpa/inet.h>

#include <algorithm>

namespace tlstrace::wire::socks {

namespace {

Dialogue failed(Dialogue d, std::string reply_bytes, std::string cause, std::string reason) {
  d.kind = Dialogue::Kind::Error;
  d.error_reply = std::move(reply_bytes);
  d.cause = std::move(cause);
  d.reason = std::move(reason);
  return d;
}

std::string text(Bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// Compares without an early exit on the first differing byte.
bool sameSecret(std::string_view a, std::string_view b) {
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) diff |= static_cast<unsigned>(a[i] ^ b[i]);
  return diff == 0;
}

// A SOCKS4 client gets SOCKS4's own "request rejected" (VN 0, CD 91, then DSTPORT and DSTIP).
std::string socks4Rejected() { return std::string("\x00\x5b\x00\x00\x00\x00\x00\x00", 8); }

enum class Step { NeedMore, Done, Failed };

// RFC 1928 section 3: VER, NMETHODS, METHODS. The server picks one method.
Step greeting(ByteReader& r, const Credentials& req, Dialogue& d) {
  std::uint8_t ver = 0, n = 0;
  if (!r.readU8(ver)) return Step::NeedMore;
  if (ver != kVersion) {
    d = failed(std::move(d), ver == 4 ? socks4Rejected() : std::string(), "socks_version",
               "SOCKS version " + std::to_string(ver) + " greeting (only SOCKS5 is spoken)");
    return Step::Failed;
  }
  ByteReader methods;
  if (!r.readU8(n)) return Step::NeedMore;
  if (!r.readReader(n, methods)) return Step::NeedMore;
  const std::uint8_t want = req.required() ? kMethodUserPass : kMethodNoAuth;
  const Bytes offered = methods.rest();
  if (std::find(offered.begin(), offered.end(), want) == offered.end()) {
    d = failed(std::move(d), std::string{char(kVersion), char(kMethodNoAcceptable)}, "socks_no_method",
               req.required() ? "the client does not offer username/password authentication (RFC 1929), required here"
                              : "the client does not offer the no-authentication method");
    return Step::Failed;
  }
  d.interim += std::string{char(kVersion), char(want)};
  return Step::Done;
}

// RFC 1929 section 2: VER 1, ULEN, UNAME, PLEN, PASSWD; status 0 is success.
Step authenticate(ByteReader& r, const Credentials& req, Dialogue& d) {
  std::uint8_t ver = 0;
  ByteReader user, pass;
  if (!r.readU8(ver)) return Step::NeedMore;
  if (ver != kAuthVersion) {
    d = failed(std::move(d), authStatus(false), "socks_auth_failed",
               "username/password sub-negotiation version " + std::to_string(ver) + " (RFC 1929 has 1)");
    return Step::Failed;
  }
  if (!r.readU8Prefixed(user) || !r.readU8Prefixed(pass)) return Step::NeedMore;
  d.user = text(user.rest());
  // Both compared, always: the time taken does not say which was wrong.
  const bool user_ok = sameSecret(d.user, req.user);
  const bool pass_ok = sameSecret(text(pass.rest()), req.password);
  if (!(user_ok && pass_ok)) {
    d = failed(std::move(d), authStatus(false), "socks_auth_failed", "wrong SOCKS username or password");
    return Step::Failed;
  }
  d.interim += authStatus(true);
  return Step::Done;
}

// RFC 1928 section 5: DST.ADDR by ATYP (4 bytes, a length-prefixed name, 16 bytes).
Step address(ByteReader& r, std::uint8_t atyp, Dialogue& d) {
  ByteReader name;
  switch (atyp) {
    case kAtypIPv4:
    case kAtypIPv6: return readIpAddress(r, atyp, d.host) ? Step::Done : Step::NeedMore;
    case kAtypDomain: {
      if (!r.readU8Prefixed(name)) return Step::NeedMore;
      const Bytes b = name.rest();
      // A host name is printable ASCII (IDNs travel as A-labels, RFC 5890); anything else cannot be
      // looked up and would only reach the trace.
      const bool printable = std::all_of(b.begin(), b.end(), [](std::uint8_t c) { return c > 0x20 && c < 0x7f; });
      if (b.empty() || !printable) {
        d = failed(std::move(d), reply(Rep::GeneralFailure), "socks_malformed",
                   b.empty() ? "empty domain name in the SOCKS request"
                             : "domain name in the SOCKS request is not "
                               "printable ASCII");
        return Step::Failed;
      }
      d.host = text(b);
      return Step::Done;
    }
    default:
      d = failed(std::move(d), reply(Rep::AddressTypeNotSupported), "socks_address_type",
                 "SOCKS address type " + std::to_string(atyp) + " is not IPv4 (1), a domain name (3) or IPv6 (4)");
      return Step::Failed;
  }
}

// RFC 1928 section 4: VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT.
Step request(ByteReader& r, Dialogue& d) {
  std::uint8_t ver = 0, cmd = 0, rsv = 0, atyp = 0;
  if (!r.readU8(ver)) return Step::NeedMore;
  if (ver != kVersion) {
    d = failed(std::move(d), reply(Rep::GeneralFailure), "socks_malformed",
               "SOCKS request version " + std::to_string(ver) + " (expected 5)");
    return Step::Failed;
  }
  if (!r.readU8(cmd)) return Step::NeedMore;
  if (cmd != kCmdConnect) {
    const std::string name = cmd == 2 ? " (BIND)" : cmd == 3 ? " (UDP ASSOCIATE)" : "";
    d = failed(std::move(d), reply(Rep::CommandNotSupported), "socks_command",
               "SOCKS command " + std::to_string(cmd) + name + " is not supported (only CONNECT)");
    return Step::Failed;
  }
  if (!r.readU8(rsv) || !r.readU8(atyp)) return Step::NeedMore;  // RSV is ignored, as RFC 1928 reserves it
  if (const Step s = address(r, atyp, d); s != Step::Done) return s;
  if (!r.readU16(d.port)) return Step::NeedMore;
  d.atyp = atyp;
  return Step::Done;
}

}  // namespace

Dialogue decodeClient(Bytes bytes, const Credentials& required) {
  Dialogue d;
  ByteReader r(bytes);
  Step s = greeting(r, required, d);
  if (s == Step::Done && required.required()) s = authenticate(r, required, d);
  if (s == Step::Done) s = request(r, d);
  if (s == Step::Failed) return d;
  if (s == Step::NeedMore) {
    d.host.clear();
    return d;  // (interim: what the steps done so far are owed)
  }
  d.kind = Dialogue::Kind::Connect;
  d.consumed = r.offset();
  return d;
}

std::string reply(Rep rep) {
  // VER, REP, RSV, ATYP IPv4, BND.ADDR 0.0.0.0, BND.PORT 0.
  return std::string{char(kVersion), char(rep), 0, char(kAtypIPv4), 0, 0, 0, 0, 0, 0};
}

std::string succeeded(std::string_view bound) {
  const auto colon = bound.rfind(':');
  if (colon == std::string_view::npos) return reply(Rep::Succeeded);
  std::string_view host = bound.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  const auto digits = bound.substr(colon + 1);
  if (digits.empty() || digits.size() > 5) return reply(Rep::Succeeded);
  for (char c : digits) {
    if (c < '0' || c > '9') return reply(Rep::Succeeded);
    port = port * 10 + unsigned(c - '0');
  }
  if (port > 0xffff) return reply(Rep::Succeeded);
  const std::string text(host);
  unsigned char addr[16] = {};
  std::string out{char(kVersion), char(Rep::Succeeded), 0};
  if (inet_pton(AF_INET, text.c_str(), addr) == 1) {
    out += char(kAtypIPv4);
    out.append(reinterpret_cast<const char*>(addr), 4);
  } else if (inet_pton(AF_INET6, text.c_str(), addr) == 1) {
    out += char(kAtypIPv6);
    out.append(reinterpret_cast<const char*>(addr), 16);
  } else {
    return reply(Rep::Succeeded);
  }
  out += char(port >> 8);
  out += char(port & 0xff);
  return out;
}

std::string authStatus(bool ok) { return std::string{char(kAuthVersion), char(ok ? 0 : 1)}; }

bool readIpAddress(ByteReader& r, std::uint8_t atyp, std::string& text) {
  Bytes raw;
  if (!r.readBytes(atyp == kAtypIPv4 ? 4 : 16, raw)) return false;
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(atyp == kAtypIPv4 ? AF_INET : AF_INET6, raw.data(), buf, sizeof buf);
  text = buf;
  return true;
}

}  // namespace tlstrace::wire::socks
