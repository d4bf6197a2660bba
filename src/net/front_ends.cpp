#include "net/front_ends.h"

#include "net/original_dst.h"
#include "net/proxy_request.h"
#include "session/socks_front_end.h"

namespace tlstrace::net {

std::unique_ptr<session::FrontEnd> modeFrontEnd(const Services& svc) {
  if (svc.cfg->mode == config::Mode::Reverse) return std::make_unique<session::ReverseFrontEnd>(*svc.cfg->upstream);
  // Transparent mode makes one per connection (its original destination); this one only
  // answers for refusals at accept time.
  if (svc.cfg->mode == config::Mode::Transparent)
    return std::make_unique<session::TransparentFrontEnd>(config::HostPort{});
  if (svc.cfg->mode == config::Mode::Socks5) return std::make_unique<session::SocksFrontEnd>(svc.cfg->proxy_auth);
  return std::make_unique<ExplicitFrontEnd>(svc.expected_proxy_auth, svc.ca_page);
}

std::unique_ptr<session::FrontEnd> transparentFrontEnd(boost::asio::ip::tcp::socket& sock,
                                                       const boost::asio::ip::tcp::endpoint& listen,
                                                       const Services& svc, std::string& why, std::string& cause) {
  const OriginalDst o = originalDestination(sock);
  if (!o.dst) {
    why = "transparent mode: no original destination (" + o.error + ")";
    cause = "no_original_dst";
    return nullptr;
  }
  config::HostPort hp{o.dst->address().to_string(), o.dst->port()};
  if (isOwnListeningAddress(*o.dst, listen, svc.own_addresses)) {
    why = "transparent mode: the original destination " + hp.str() + " (" + o.how +
          ") is the proxy's own listening address; connecting would loop (was the client's traffic redirected?)";
    cause = "loop";
    return nullptr;
  }
  return std::make_unique<session::TransparentFrontEnd>(std::move(hp));
}

}  // namespace tlstrace::net
