// Transparent mode's socket facts: where an intercepted client was really going, read from the
// accepted socket, and whether that is the proxy itself (the loop guard).
#pragma once
#include <boost/asio/ip/tcp.hpp>
#include <optional>
#include <span>
#include <string>

#include "config/address.h"

namespace tlstrace::net {

struct OriginalDst {
  std::optional<boost::asio::ip::tcp::endpoint> dst;  // absent: `error` says why
  std::string how;                                    // "SO_ORIGINAL_DST" or "getsockname" (TPROXY)
  std::string error;
};

// REDIRECT/DNAT (iptables or nftables) rewrite the destination, and conntrack keeps the original:
// SO_ORIGINAL_DST (IPv4) / IP6T_SO_ORIGINAL_DST (IPv6). TPROXY leaves the destination alone, so the
// accepted socket's own address is the original one (getsockname), used when conntrack has no
// entry. Never throws.
[[nodiscard]] OriginalDst originalDestination(boost::asio::ip::tcp::socket& sock);

// The loop guard: is `dst` one of the proxy's own listening addresses? `listen` is the bound
// listener; a wildcard listener (0.0.0.0, ::) listens on every address of the host (`own`, the
// interfaces' addresses, and loopback).
[[nodiscard]] bool isOwnListeningAddress(const boost::asio::ip::tcp::endpoint& dst,
                                         const boost::asio::ip::tcp::endpoint& listen,
                                         std::span<const config::IpAddress> own);

// TPROXY hands the listener connections to addresses that are not the host's: IP_TRANSPARENT (or
// IPV6_TRANSPARENT) on the listening socket allows it (CAP_NET_ADMIN). Empty on success, else why.
[[nodiscard]] std::string allowForeignAddresses(boost::asio::ip::tcp::acceptor& acceptor);

}  // namespace tlstrace::net
