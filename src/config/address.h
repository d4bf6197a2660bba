// Address classes for the exposure rules (docs/cli.md, "Exposure"): which clients are served by
// default (loopback only) and which targets a non-loopback client may not ask for (loopback,
// link-local, unspecified, the proxy's own addresses). Pure functions on address bytes, so the
// one decision point (net/connection.cpp, after name resolution) and the tests share them.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tlstrace::config {

// An IPv4 or IPv6 address in network byte order (IPv4 in the first 4 bytes). An IPv4-mapped IPv6
// address (::ffff:a.b.c.d, RFC 4291 section 2.5.5.2) is kept as the IPv4 address it reaches: a
// dual-stack socket connects to (and accepts from) exactly that address.
struct IpAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};
  bool operator==(const IpAddress&) const = default;
  [[nodiscard]] std::string str() const;
};

// From 4 or 16 bytes (anything else: nullopt).
[[nodiscard]] std::optional<IpAddress> ipFromBytes(std::span<const std::uint8_t> b);
// From "10.1.2.3", "::1", "::ffff:127.0.0.1" (no brackets, no zone); nullopt when not an address.
[[nodiscard]] std::optional<IpAddress> parseIp(std::string_view text);

enum class AddressClass {
  Loopback,     // 127.0.0.0/8 (RFC 1122 3.2.1.3), ::1 (RFC 4291 2.5.3)
  Unspecified,  // 0.0.0.0/8 "this network" (RFC 1122 3.2.1.3; Linux connects 0.0.0.0 to itself), ::
  LinkLocal,    // 169.254.0.0/16 (RFC 3927), fe80::/10 (RFC 4291 2.5.6)
  Private,      // 10/8, 172.16/12, 192.168/16 (RFC 1918), fc00::/7 (RFC 4193)
  SharedCgnat,  // 100.64.0.0/10 (RFC 6598)
  Other,        // everything else
};
[[nodiscard]] AddressClass classify(const IpAddress& a);
[[nodiscard]] std::string_view className(AddressClass c);

// Why a target chosen by a non-loopback client may not be connected to (without
// --allow-private-targets): it is loopback, link-local or unspecified, or one of `own` (the
// proxy's listen and interface addresses, net::interfaceAddresses()). nullopt when it may.
[[nodiscard]] std::optional<std::string> forbiddenTarget(const IpAddress& a, std::span<const IpAddress> own);

}  // namespace tlstrace::config
