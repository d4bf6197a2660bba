#include "net/original_dst.h"

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/connection.h"

namespace tlstrace::net {

namespace {

using boost::asio::ip::address_v4;
using boost::asio::ip::address_v6;

// An IPv4 client on a dual-stack (::) listener is a v4-mapped address, but conntrack's entry is
// IPv4: ask the IPv4 table for it.
bool isV4(const tcp::endpoint& ep) { return ep.address().is_v4() || ep.address().to_v6().is_v4_mapped(); }

std::optional<tcp::endpoint> conntrackOriginal(int fd, bool v4, std::string& error) {
  if (v4) {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    if (::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sa, &len) != 0) {
      error = std::string("SO_ORIGINAL_DST: ") + std::strerror(errno);
      return std::nullopt;
    }
    address_v4::bytes_type b;
    std::memcpy(b.data(), &sa.sin_addr, b.size());
    return tcp::endpoint(address_v4(b), ntohs(sa.sin_port));
  }
  sockaddr_in6 sa{};
  socklen_t len = sizeof sa;
  if (::getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &sa, &len) != 0) {
    error = std::string("IP6T_SO_ORIGINAL_DST: ") + std::strerror(errno);
    return std::nullopt;
  }
  address_v6::bytes_type b;
  std::memcpy(b.data(), &sa.sin6_addr, b.size());
  return tcp::endpoint(address_v6(b), ntohs(sa.sin6_port));
}

// A v4-mapped address as the IPv4 address it is, so that comparisons and connects see one form.
tcp::endpoint unmapped(const tcp::endpoint& ep) {
  if (ep.address().is_v6() && ep.address().to_v6().is_v4_mapped())
    return {boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, ep.address().to_v6()), ep.port()};
  return ep;
}

}  // namespace

OriginalDst originalDestination(tcp::socket& sock) {
  OriginalDst r;
  boost::system::error_code ec;
  const auto local = sock.local_endpoint(ec);
  if (ec) {
    r.error = "getsockname: " + ec.message();
    return r;
  }
  if (auto d = conntrackOriginal(sock.native_handle(), isV4(local), r.error)) {
    r.dst = unmapped(*d);
    r.how = "SO_ORIGINAL_DST";
    r.error.clear();
    return r;
  }
  // No conntrack entry (no NAT rule saw the connection, or conntrack is not loaded): with TPROXY
  // the socket's own address is the client's destination. Without either it is the listener's
  // address, which the loop guard refuses.
  r.dst = unmapped(local);
  r.how = "getsockname";
  return r;
}

bool isOwnListeningAddress(const tcp::endpoint& dst, const tcp::endpoint& listen,
                           std::span<const config::IpAddress> own) {
  const tcp::endpoint d = unmapped(dst), l = unmapped(listen);
  if (d.port() != l.port()) return false;
  if (!l.address().is_unspecified()) return d.address() == l.address();
  const config::IpAddress a = toIp(d.address());
  return config::classify(a) == config::AddressClass::Loopback || d.address().is_unspecified() ||
         std::find(own.begin(), own.end(), a) != own.end();
}

std::string allowForeignAddresses(tcp::acceptor& acceptor) {
  const int one = 1;
  const bool v6 = acceptor.local_endpoint().address().is_v6();
  const int rc = v6 ? ::setsockopt(acceptor.native_handle(), SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one)
                    : ::setsockopt(acceptor.native_handle(), SOL_IP, IP_TRANSPARENT, &one, sizeof one);
  if (rc == 0) return {};
  return std::string(v6 ? "IPV6_TRANSPARENT: " : "IP_TRANSPARENT: ") + std::strerror(errno);
}

}  // namespace tlstrace::net
