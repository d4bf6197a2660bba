// The host's own addresses, for the exposure rules (config/address.h): a system query, so here in
// net/ rather than in the pure config/ layer.
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>

#include "net/services.h"

namespace tlstrace::net {

std::vector<config::IpAddress> interfaceAddresses() {
  std::vector<config::IpAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (const ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    std::optional<config::IpAddress> a;
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      a = config::ipFromBytes(std::span(reinterpret_cast<const std::uint8_t*>(&sin->sin_addr), 4));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      a = config::ipFromBytes(std::span(reinterpret_cast<const std::uint8_t*>(&sin6->sin6_addr), 16));
    }
    if (a && std::find(out.begin(), out.end(), *a) == out.end()) out.push_back(*a);
  }
  freeifaddrs(list);
  return out;
}

}  // namespace tlstrace::net
