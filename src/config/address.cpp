#include "config/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>

namespace tlstrace::config {

namespace {

constexpr std::array<std::uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

std::optional<IpAddress> ipFromBytes(std::span<const std::uint8_t> b) {
  IpAddress a;
  if (b.size() == 4) {
    std::copy(b.begin(), b.end(), a.bytes.begin());
    return a;
  }
  if (b.size() != 16) return std::nullopt;
  if (std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), b.begin())) {
    std::copy(b.begin() + 12, b.end(), a.bytes.begin());
    return a;
  }
  a.v6 = true;
  std::copy(b.begin(), b.end(), a.bytes.begin());
  return a;
}

std::optional<IpAddress> parseIp(std::string_view text) {
  const std::string s(text);
  std::array<std::uint8_t, 16> b{};
  if (inet_pton(AF_INET, s.c_str(), b.data()) == 1) return ipFromBytes(std::span(b).first(4));
  if (inet_pton(AF_INET6, s.c_str(), b.data()) == 1) return ipFromBytes(b);
  return std::nullopt;
}

std::string IpAddress::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return buf;
}

AddressClass classify(const IpAddress& a) {
  const auto& b = a.bytes;
  if (!a.v6) {
    if (b[0] == 127) return AddressClass::Loopback;
    if (b[0] == 0) return AddressClass::Unspecified;
    if (b[0] == 169 && b[1] == 254) return AddressClass::LinkLocal;
    if (b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168))
      return AddressClass::Private;
    if (b[0] == 100 && (b[1] & 0xc0) == 64) return AddressClass::SharedCgnat;
    return AddressClass::Other;
  }
  const bool first15zero = std::all_of(b.begin(), b.begin() + 15, [](std::uint8_t x) { return x == 0; });
  if (first15zero && b[15] == 1) return AddressClass::Loopback;
  if (first15zero && b[15] == 0) return AddressClass::Unspecified;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return AddressClass::LinkLocal;
  if ((b[0] & 0xfe) == 0xfc) return AddressClass::Private;
  return AddressClass::Other;
}

std::string_view className(AddressClass c) {
  switch (c) {
    case AddressClass::Loopback: return "loopback";
    case AddressClass::Unspecified: return "unspecified";
    case AddressClass::LinkLocal: return "link-local";
    case AddressClass::Private: return "private";
    case AddressClass::SharedCgnat: return "shared (CGNAT)";
    case AddressClass::Other: break;
  }
  return "public";
}

std::optional<std::string> forbiddenTarget(const IpAddress& a, std::span<const IpAddress> own) {
  const AddressClass c = classify(a);
  if (c == AddressClass::Loopback || c == AddressClass::Unspecified || c == AddressClass::LinkLocal)
    return a.str() + " is " + std::string(className(c));
  if (std::find(own.begin(), own.end(), a) != own.end()) return a.str() + " is the proxy's own address";
  return std::nullopt;
}

}  // namespace tlstrace::config
