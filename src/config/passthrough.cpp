#include "config/passthrough.h"

#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace tlstrace::config {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool number(std::string_view s, unsigned max, unsigned& out) {
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && out <= max;
}

bool inNetwork(const IpAddress& a, const IpAddress& net, unsigned prefix) {
  if (a.v6 != net.v6) return false;
  for (unsigned i = 0; i < prefix / 8; ++i)
    if (a.bytes[i] != net.bytes[i]) return false;
  if (const unsigned bits = prefix % 8; bits != 0) {
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - bits));
    if ((a.bytes[prefix / 8] & mask) != (net.bytes[prefix / 8] & mask)) return false;
  }
  return true;
}

}  // namespace

std::optional<PassthroughRule> parsePassthrough(std::string_view text, std::string& error) {
  PassthroughRule r;
  r.text = std::string(text);
  unsigned n = 0;
  if (text.find_first_not_of("0123456789") == std::string_view::npos) {
    if (!number(text, 65535, n) || n == 0) {
      error = "--passthrough " + r.text + ": not a port (1-65535)";
      return std::nullopt;
    }
    r.kind = PassthroughRule::Kind::Port;
    r.port = static_cast<std::uint16_t>(n);
    return r;
  }
  const auto slash = text.find('/');
  if (auto ip = parseIp(text.substr(0, slash))) {
    r.kind = PassthroughRule::Kind::Network;
    r.net = *ip;
    const unsigned max = ip->v6 ? 128 : 32;
    r.prefix = max;
    if (slash != std::string_view::npos && !number(text.substr(slash + 1), max, r.prefix)) {
      error = "--passthrough " + r.text + ": bad prefix length (0-" + std::to_string(max) + ")";
      return std::nullopt;
    }
    return r;
  }
  const bool host_chars = !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == '*' || c == '?' || c == '[' || c == ']';
  });
  if (!host_chars) {
    error = "--passthrough " + r.text + ": not a port, an address/CIDR, or a host glob";
    return std::nullopt;
  }
  r.glob = lower(text);
  return r;
}

bool matches(const PassthroughRule& r, const PassthroughSubject& s) {
  switch (r.kind) {
    case PassthroughRule::Kind::Port: return s.port == r.port;
    case PassthroughRule::Kind::Network: return s.address && inNetwork(*s.address, r.net, r.prefix);
    case PassthroughRule::Kind::Host:
      return !s.host.empty() && ::fnmatch(r.glob.c_str(), lower(s.host).c_str(), 0) == 0;
  }
  return false;
}

}  // namespace tlstrace::config
