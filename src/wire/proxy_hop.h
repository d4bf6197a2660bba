// The hop through an upstream proxy (--upstream-proxy), sans I/O: the bytes to send to the proxy
// and what its replies mean, until the tunnel to the target is open. HTTP CONNECT (RFC 9110
// 9.3.6) or SOCKS5 (RFC 1928, RFC 1929: wire/socks5_client.h). net/ carries the bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "wire/byte_reader.h"

namespace tlstrace::wire {

// RFC 9110 9.3.6: "CONNECT host:port HTTP/1.1" (authority-form, IPv6 in brackets) with Host and,
// when `authorization` is given, Proxy-Authorization (its value, e.g. "Basic dXNlcjpwYXNz").
[[nodiscard]] std::string httpConnectRequest(std::string_view host, std::uint16_t port, std::string_view authorization);

// The proxy's answer to CONNECT: its status line and header, up to the empty line (RFC 9112 2.1).
// Any 2xx opens the tunnel (RFC 9110 9.3.6); what follows the empty line is the tunnel's.
struct HttpConnectReply {
  enum class Kind { NeedMore, Done, Malformed } kind = Kind::NeedMore;
  int status = 0;
  std::string reason;      // the reason phrase, as sent (may be empty)
  std::size_t length = 0;  // bytes of the head, empty line included, when Done
  std::string error;
};
inline constexpr std::size_t kMaxConnectReplyHead = 16 * 1024;
[[nodiscard]] HttpConnectReply parseHttpConnectReply(Bytes in);

class ProxyHop {
 public:
  enum class Protocol { HttpConnect, Socks5 };
  struct Spec {
    Protocol protocol = Protocol::HttpConnect;
    std::string host;  // the target, as the client named it (a name goes to the proxy unresolved)
    std::uint16_t port = 0;
    bool auth = false;
    std::string user, password;  // SOCKS5 (RFC 1929)
    std::string authorization;   // HTTP: the Proxy-Authorization value
  };
  // What to do next.
  struct Step {
    enum class Kind { Send, NeedMore, Done, Failed } kind = Kind::NeedMore;
    std::vector<std::uint8_t> send;  // Send: write these, then read the answer
    // Done: the proxy's final reply ("200 Connection established", "succeeded, bound
    // 127.0.0.1:40000"); Failed: what it said, or why its bytes made no sense.
    std::string reply;
    int status = -1;  // the HTTP status or the SOCKS REP of the reply (-1: none came)
    // Failed: the proxy said the target could not be reached (HTTP 5xx, SOCKS REP 3-6), as
    // opposed to refusing the request (4xx, a SOCKS refusal, authentication) or not speaking the
    // protocol.
    bool target_failed = false;
    std::string why;                 // Failed: one sentence
    std::vector<std::uint8_t> rest;  // Done: bytes after the reply, the tunnel's first
  };

  explicit ProxyHop(Spec spec) : spec_(std::move(spec)) {}
  // The first message (the CONNECT request, the SOCKS5 greeting).
  [[nodiscard]] Step start();
  // Bytes read from the proxy (after a Send or NeedMore).
  [[nodiscard]] Step onBytes(Bytes in);
  // The proxy closed the connection before the tunnel was open.
  [[nodiscard]] Step onClosed();

 private:
  enum class Phase { Start, HttpReply, SocksMethod, SocksAuth, SocksConnect, Over };
  Step socksStep();
  Step fail(std::string why, int status = -1, std::string reply = {}, bool target = false);
  Step done(std::size_t length, std::string reply, int status);
  [[nodiscard]] std::string name() const;  // "HTTP CONNECT" or "SOCKS5"

  Spec spec_;
  Phase phase_ = Phase::Start;
  std::vector<std::uint8_t> buf_;  // the proxy's bytes not yet parsed
};

}  // namespace tlstrace::wire
