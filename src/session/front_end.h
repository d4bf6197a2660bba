// Front ends: how a client says where it wants to go. Each is a small strategy in front of the
// session: it reads the client's first bytes (an HTTP CONNECT request, nothing at all in reverse
// mode, a SOCKS5 greeting and request, an original destination) and answers with
// one step. The session does the rest (connect, TLS detection, both handshakes, relay) the same way
// for every front end.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "config/config.h"

namespace tlstrace::session {

struct FrontStep {
  enum class Kind {
    NeedMore,  // read more client bytes
    Refuse,    // answer with an HTTP error (status, reason, headers) and close; with a `cause`, with
               // the protocol's own `reply` bytes instead (SOCKS5) and conn.refused
    Tunnel,    // connect to `target`, answer `reply` to the client, then look for TLS
    Forward,   // connect to `target`, send `head` upstream, then relay plain bytes
    Detect,    // the target is known: look for TLS now, connect once the ClientHello is in
    Answer,    // the request was for the proxy itself (its CA page): send `head` and close
  };
  Kind kind = Kind::NeedMore;
  int status = 0;
  std::string reason;
  std::string headers;  // Refuse: extra response headers, each ending in CRLF
  config::HostPort target;
  std::string method;        // Tunnel/Forward: for the proxy.request event
  std::string reply;         // Tunnel: to the client once connected
  std::string head;          // Forward: to the upstream before the client's further bytes; Answer: the response
  std::size_t consumed = 0;  // client bytes the front end used up (the rest is the tunnel's)
  // Answers owed for the dialogue so far (SOCKS5 method selection, RFC 1929 status), every step
  // again from the start: the session sends the part it has not sent yet, before anything else.
  std::string interim;
  std::string cause;  // Refuse with the protocol's own reply: a short cause for conn.refused
};

// A refusal in the front end's own protocol (SOCKS5's reply codes) and its conn.refused cause.
struct OwnReply {
  std::string bytes;
  std::string cause;
};

class FrontEnd {
 public:
  virtual ~FrontEnd() = default;
  [[nodiscard]] virtual config::Mode mode() const = 0;
  // The target known before any byte arrives (reverse mode), else nullopt.
  [[nodiscard]] virtual std::optional<config::HostPort> fixedTarget() const = 0;
  // Reads the client's bytes so far (empty at first). Shared by the connections of every
  // thread: no state of its own.
  [[nodiscard]] virtual FrontStep onClientBytes(std::span<const std::uint8_t> bytes) const = 0;
  // First bytes that are not TLS: relayed as plain TCP (true), or a client mistake (false).
  [[nodiscard]] virtual bool relaysPlaintext() const = 0;
  // A client refused at accept time (--max-connections) gets an HTTP 503 (true) or a close.
  [[nodiscard]] virtual bool answersRefusals() const = 0;
  // The answer to a request the session could not carry out (`status` as for HTTP: 403 target
  // refused, 502 unreachable, 504 timed out; `err` the connect's errno or 0) in the protocol's own
  // bytes with a cause for conn.refused, or nullopt for an HTTP error response.
  [[nodiscard]] virtual std::optional<OwnReply> failureReply(int /*status*/, int /*err*/) const { return std::nullopt; }
  // The Tunnel reply once the upstream connection is up, given its local "ip:port" (SOCKS5 names
  // it as the bound address); by default FrontStep::reply as it was.
  [[nodiscard]] virtual std::string connectedReply(std::string reply, const std::string& /*local*/) const {
    return reply;
  }
};

// Reverse mode: every client goes to one configured upstream, as if the proxy were the server.
class ReverseFrontEnd final : public FrontEnd {
 public:
  explicit ReverseFrontEnd(config::HostPort upstream) : upstream_(std::move(upstream)) {}
  [[nodiscard]] config::Mode mode() const override { return config::Mode::Reverse; }
  [[nodiscard]] std::optional<config::HostPort> fixedTarget() const override { return upstream_; }
  [[nodiscard]] FrontStep onClientBytes(std::span<const std::uint8_t>) const override {
    FrontStep s;
    s.kind = FrontStep::Kind::Detect;
    s.target = upstream_;
    return s;
  }
  [[nodiscard]] bool relaysPlaintext() const override { return false; }
  [[nodiscard]] bool answersRefusals() const override { return false; }

 private:
  config::HostPort upstream_;
};

// Transparent mode (REDIRECT or TPROXY): the client believes it talks to the server itself; the
// driver read where it was going from the socket (net/original_dst.h) and makes one of these per
// connection. Non-TLS bytes are relayed as plain TCP, as a router would.
class TransparentFrontEnd final : public FrontEnd {
 public:
  explicit TransparentFrontEnd(config::HostPort original) : original_(std::move(original)) {}
  [[nodiscard]] config::Mode mode() const override { return config::Mode::Transparent; }
  [[nodiscard]] std::optional<config::HostPort> fixedTarget() const override { return original_; }
  [[nodiscard]] FrontStep onClientBytes(std::span<const std::uint8_t>) const override {
    FrontStep s;
    s.kind = FrontStep::Kind::Detect;
    s.target = original_;
    return s;
  }
  [[nodiscard]] bool relaysPlaintext() const override { return true; }
  [[nodiscard]] bool answersRefusals() const override { return false; }

 private:
  config::HostPort original_;
};

}  // namespace tlstrace::session
