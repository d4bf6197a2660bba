// SOCKS5 as the proxy's server side sees it (RFC 1928, with RFC 1929 username/password): a pure
// decoder of the client's bytes so far, re-read from the start on every call (no state), and the
// server's replies. Untrusted bytes go through ByteReader only.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "wire/byte_reader.h"

namespace tlstrace::wire::socks {

inline constexpr std::uint8_t kVersion = 5;      // RFC 1928 section 3
inline constexpr std::uint8_t kAuthVersion = 1;  // RFC 1929 section 2
// Methods (RFC 1928 section 3).
inline constexpr std::uint8_t kMethodNoAuth = 0x00;
inline constexpr std::uint8_t kMethodUserPass = 0x02;
inline constexpr std::uint8_t kMethodNoAcceptable = 0xFF;
// Commands and address types (RFC 1928 section 4).
inline constexpr std::uint8_t kCmdConnect = 0x01;
inline constexpr std::uint8_t kAtypIPv4 = 0x01;
inline constexpr std::uint8_t kAtypDomain = 0x03;
inline constexpr std::uint8_t kAtypIPv6 = 0x04;

// An IPv4 (ATYP 1) or IPv6 (ATYP 4) address as RFC 1928 section 5 carries it (4 or 16 bytes),
// read into its text form; false when the bytes are not all there yet.
bool readIpAddress(ByteReader& r, std::uint8_t atyp, std::string& text);

// Reply codes (RFC 1928 section 6).
enum class Rep : std::uint8_t {
  Succeeded = 0x00,
  GeneralFailure = 0x01,
  NotAllowed = 0x02,
  NetworkUnreachable = 0x03,
  HostUnreachable = 0x04,
  ConnectionRefused = 0x05,
  TtlExpired = 0x06,
  CommandNotSupported = 0x07,
  AddressTypeNotSupported = 0x08,
};

// Credentials the server requires (RFC 1929), or none (the "no authentication" method).
struct Credentials {
  std::string user, password;
  [[nodiscard]] bool required() const { return !user.empty() || !password.empty(); }
};

// The dialogue so far: the greeting (section 3), the username/password sub-negotiation when that
// method is chosen (RFC 1929 section 2), the request (section 4).
struct Dialogue {
  enum class Kind { NeedMore, Error, Connect } kind = Kind::NeedMore;
  // What the server owes the client for the steps complete so far (method selection, then the
  // authentication status), in order; the caller sends what it has not sent yet.
  std::string interim;
  // Error: the protocol's own answer (may be empty: nothing meaningful to answer), a short cause
  // (socks_version, socks_no_method, socks_auth_failed, socks_malformed, socks_command,
  // socks_address_type) and the reason in words.
  std::string error_reply;
  std::string cause;
  std::string reason;
  // Connect: the destination (a domain name as sent; IPv6 without brackets), what the request used.
  std::string host;
  std::uint16_t port = 0;
  std::uint8_t atyp = 0;
  std::string user;          // the RFC 1929 user name, when that method was used
  std::size_t consumed = 0;  // bytes of the whole dialogue; anything after it is the tunnel's
};

[[nodiscard]] Dialogue decodeClient(Bytes bytes, const Credentials& required);

// A reply to the request (RFC 1928 section 6) with BND.ADDR 0.0.0.0 and BND.PORT 0: a refusal
// has no bound address.
[[nodiscard]] std::string reply(Rep rep);
// The success reply to a CONNECT: BND.ADDR and BND.PORT are the address the proxy's own connection
// to the target uses (section 6), `bound` as "192.0.2.1:40188" or "[2001:db8::1]:40188"; zeros
// if it is neither.
[[nodiscard]] std::string succeeded(std::string_view bound);

// The RFC 1929 status reply: 0 success, anything else failure (the server closes after it).
[[nodiscard]] std::string authStatus(bool ok);

}  // namespace tlstrace::wire::socks
