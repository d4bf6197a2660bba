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
  // Local: a GET in origin-form ("GET /ca.pem"): a request for the proxy itself, not a proxy request.
  enum class Kind { NeedMore, Error, Connect, PlainHttp, Local } kind = Kind::NeedMore;
  int status = 0;      // for Error: the HTTP status to answer with (400, 405, 431, ...)
  std::string reason;  // for Error: why, sent in the body and traced
  config::HostPort target;
  std::string forward_head;         // PlainHttp: the request head rewritten to origin-form
  std::size_t consumed = 0;         // bytes of the head; anything after it belongs to the tunnel/body
  std::string proxy_authorization;  // the Proxy-Authorization header, if any
  std::string path;                 // Local: the path asked for, without its query
};

// The CA page (as mitmproxy's mitm.it): what `GET /`, `/ca.pem` and `/ca.der` sent to the proxy's
// own address are answered with. Empty `pem`: no page (such requests get 400 as before).
struct CaPage {
  std::string pem, der;  // the CA certificate
  std::string sha256;    // its fingerprint, "AB:CD:..."
  std::string subject;
};
// The complete HTTP/1.1 response to `path` (200 with the page or a certificate, else 404).
[[nodiscard]] std::string caPageResponse(const CaPage& page, const std::string& path);

inline constexpr std::size_t kMaxRequestHead = 64 * 1024;

[[nodiscard]] ProxyRequest parseProxyRequest(std::span<const std::uint8_t> bytes,
                                             std::size_t head_limit = kMaxRequestHead);

// Explicit-proxy mode (HTTP CONNECT and absolute-form requests) as the session's front end:
// here rather than in session/ because the request head is parsed with Beast.
class ExplicitFrontEnd final : public session::FrontEnd {
 public:
  // `expected_auth`: the Proxy-Authorization value required ("Basic ..."), or empty for none.
  explicit ExplicitFrontEnd(std::string expected_auth, CaPage ca_page = {})
      : expected_auth_(std::move(expected_auth)), ca_page_(std::move(ca_page)) {}
  [[nodiscard]] config::Mode mode() const override { return config::Mode::Explicit; }
  [[nodiscard]] std::optional<config::HostPort> fixedTarget() const override { return std::nullopt; }
  [[nodiscard]] session::FrontStep onClientBytes(std::span<const std::uint8_t> bytes) const override;
  [[nodiscard]] bool relaysPlaintext() const override { return true; }
  [[nodiscard]] bool answersRefusals() const override { return true; }

 private:
  std::string expected_auth_;
  CaPage ca_page_;
};

}  // namespace tlstrace::net
