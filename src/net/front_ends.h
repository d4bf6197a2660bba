// Which front end a connection gets: the configured mode's, shared by every connection, or in
// transparent mode one of its own made from the original destination it was redirected from.
#pragma once
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>

#include "net/services.h"
#include "session/front_end.h"

namespace tlstrace::net {

// The front end of the configured mode: stateless, shared by every connection of every thread.
[[nodiscard]] std::unique_ptr<session::FrontEnd> modeFrontEnd(const Services& svc);

// Transparent mode: the client's original destination as its connection's front end, or null
// with why and a cause (it cannot be read; it is the proxy itself, which would loop).
[[nodiscard]] std::unique_ptr<session::FrontEnd> transparentFrontEnd(boost::asio::ip::tcp::socket& sock,
                                                                     const boost::asio::ip::tcp::endpoint& listen,
                                                                     const Services& svc, std::string& why,
                                                                     std::string& cause);

}  // namespace tlstrace::net
