// The explicit-proxy front end, sans I/O: bytes in, a decision out. Parses the HTTP/1.1 request
// head with Boost.Beast's parser (RFC 9110 9.3.6 CONNECT, RFC 9112 3.2.2 absolute-form).
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "config/config.h"
#include "session/front_end.h"

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

// Explicit-proxy mode (HTTP CONNECT and absolute-form requests) as the session's front end:
// here rather than in session/ because the request head is parsed with Beast.
class ExplicitFrontEnd final : public session::FrontEnd {
 public:
  // `expected_auth`: the Proxy-Authorization value required ("Basic ..."), or empty for none.
  explicit ExplicitFrontEnd(std::string expected_auth) : expected_auth_(std::move(expected_auth)) {}
  [[nodiscard]] config::Mode mode() const override { return config::Mode::Explicit; }
  [[nodiscard]] std::optional<config::HostPort> fixedTarget() const override { return std::nullopt; }
  [[nodiscard]] session::FrontStep onClientBytes(std::span<const std::uint8_t> bytes) const override;
  [[nodiscard]] bool relaysPlaintext() const override { return true; }
  [[nodiscard]] bool answersRefusals() const override { return true; }

 private:
  std::string expected_auth_;
};

}  // namespace tlstrace::net
