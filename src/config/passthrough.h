// --passthrough patterns: which connections are relayed untouched instead of intercepted. A pattern
// is a port ("5222"), an address or CIDR ("10.0.0.0/8", "2001:db8::/32") or a host glob
// ("*.apple.com", matched case-insensitively against the SNI, else the CONNECT/original host).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/address.h"

namespace tlstrace::config {

struct PassthroughRule {
  enum class Kind { Host, Network, Port } kind = Kind::Host;
  std::string text;  // as written (events name it)
  std::string glob;  // Host: lower case
  IpAddress net;     // Network
  unsigned prefix = 0;
  std::uint16_t port = 0;  // Port
};

// nullopt with `error` when the pattern is none of the three.
[[nodiscard]] std::optional<PassthroughRule> parsePassthrough(std::string_view text, std::string& error);

// What a connection is matched on: the host name (SNI, else the target host as given), the
// target's address when it is a literal, and its port.
struct PassthroughSubject {
  std::string host;
  std::optional<IpAddress> address;
  std::uint16_t port = 0;
};
[[nodiscard]] bool matches(const PassthroughRule& r, const PassthroughSubject& s);

}  // namespace tlstrace::config
