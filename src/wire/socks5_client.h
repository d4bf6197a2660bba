// The client side of SOCKS5 (RFC 1928) with username/password authentication (RFC 1929): the
// messages a client sends, and parsers for the server's replies. Pure: bytes in, values out.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "wire/byte_reader.h"
#include "wire/socks.h"

namespace tlstrace::wire::socks5 {

inline constexpr std::uint8_t kMethodNone = socks::kMethodNoAuth;        // RFC 1928 3
inline constexpr std::uint8_t kMethodPassword = socks::kMethodUserPass;  // USERNAME/PASSWORD (RFC 1929)
inline constexpr std::uint8_t kNoAcceptable = 0xff;                      // NO ACCEPTABLE METHODS

// What a parser made of the bytes so far.
enum class Parse { NeedMore, Done, Malformed };

// RFC 1928 3: VER=5, NMETHODS, METHODS (no authentication, and username/password when `password`).
[[nodiscard]] std::vector<std::uint8_t> greeting(bool password);

// RFC 1928 3: the server's METHOD selection, VER METHOD (2 bytes).
struct MethodReply {
  Parse parse = Parse::NeedMore;
  std::uint8_t method = 0;
  std::size_t length = 0;  // bytes consumed when Done
  std::string error;
};
[[nodiscard]] MethodReply parseMethodReply(Bytes in);

// RFC 1929 2: VER=1, ULEN, UNAME, PLEN, PASSWD (each at most 255 bytes: longer ones are cut by the
// caller's validation, config/upstream_proxy.h).
[[nodiscard]] std::vector<std::uint8_t> passwordRequest(std::string_view user, std::string_view password);

// RFC 1929 2: VER STATUS; STATUS 0 is success.
struct PasswordReply {
  Parse parse = Parse::NeedMore;
  std::uint8_t status = 0;
  std::size_t length = 0;
  std::string error;
};
[[nodiscard]] PasswordReply parsePasswordReply(Bytes in);

// RFC 1928 4: CONNECT to `host`:`port`. An IPv4 or IPv6 literal goes as ATYP 1 or 4; a name as
// ATYP 3 (DOMAINNAME, at most 255 bytes), for the proxy to resolve. Empty when the name is too long.
[[nodiscard]] std::vector<std::uint8_t> connectRequest(std::string_view host, std::uint16_t port);

// RFC 1928 6: VER REP RSV ATYP BND.ADDR BND.PORT.
struct ConnectReply {
  Parse parse = Parse::NeedMore;
  std::uint8_t rep = 0;  // 0 succeeded, else the failure (replyText)
  std::string bound;     // BND.ADDR:BND.PORT as text ("[v6]:port" for IPv6)
  std::size_t length = 0;
  std::string error;
};
[[nodiscard]] ConnectReply parseConnectReply(Bytes in);

// RFC 1928 6's words for a REP value ("connection refused", ...).
[[nodiscard]] std::string_view replyText(std::uint8_t rep);
// Whether REP says the target could not be reached (network/host unreachable, connection refused,
// TTL expired), as opposed to the proxy refusing the request itself.
[[nodiscard]] bool targetFailure(std::uint8_t rep);

}  // namespace tlstrace::wire::socks5
