// The explicit-proxy front end, sans I/O: bytes in, a decision out. Parses the HTTP/1.1 request
// head with Boost.Beast's parser (RFC 9110 9.3.6 CONNECT, RFC 9112 3.2.2 absolute-form).
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "config/config.h"

namespace tlstrace::net {

struct ProxyRequest {
  enum class Kind { NeedMore, Error, Connect, PlainHttp } kind = Kind::NeedMore;
  int status = 0;      // for Error: the HTTP status to answer with (400, 405, 431, ...)
  std::string reason;  // for Error: why, sent in the body and traced
  config::HostPort target;
  std::string forward_head;         // PlainHttp: the request head rewritten to origin-form
  std::size_t consumed = 0;         // bytes of the head; anything after it belongs to the tunnel/body
  std::string proxy_authorization;  // the Proxy-Authorization header, if any
};

inline constexpr std::size_t kMaxRequestHead = 64 * 1024;

[[nodiscard]] ProxyRequest parseProxyRequest(std::span<const std::uint8_t> bytes,
                                             std::size_t head_limit = kMaxRequestHead);

// A complete HTTP/1.1 response with a text/plain body and Connection: close.
[[nodiscard]] std::string httpErrorResponse(int status, const std::string& reason,
                                            const std::string& extra_headers = {});

}  // namespace tlstrace::net
