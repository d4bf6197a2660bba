// The session's vocabulary with the outside world: what happened (Input) and what to do (Action).
// The driver (net/) turns socket and timer completions into inputs and carries actions out on
// sockets and timers; tests script inputs and compare the actions.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "session/deps.h"
#include "trace/event.h"

namespace tlstrace::session {

using trace::Leg;

namespace in {
// The client's TCP connection is accepted (endpoints as text, for conn.open).
struct Start {
  std::string client;
  std::string listen;
  // The client's SYN as the kernel received it (TCP_SAVED_SYN, IP header first) and the socket's
  // TCP_INFO now: given when the tcp category is traced (tcp.syn, tcp.info).
  std::vector<std::uint8_t> syn = {};
  std::optional<trace::ev::TcpInfo> tcp = std::nullopt;
};
// Bytes read from a leg's socket; valid during the call only.
struct Bytes {
  Leg leg;
  std::span<const std::uint8_t> bytes;
};
// The upstream TCP connection is up (after action::Connect).
struct Connected {
  std::string peer;   // address:port connected to
  std::string local;  // our side
  double connect_ms = 0;
  std::optional<trace::ev::TcpInfo> tcp = std::nullopt;  // TCP_INFO once connected (tcp.info)
  // Through --upstream-proxy (act::Connect::via): `peer` is the proxy; its final reply (HTTP
  // status or SOCKS REP, and as text) and the time from the proxy's TCP handshake to the tunnel.
  int proxy_status = -1;
  std::string proxy_reply = {};
  std::optional<double> tunnel_ms = std::nullopt;
  std::uint64_t hop_bytes_in = 0, hop_bytes_out = 0;  // the proxy's handshake, on the same socket
};
// The upstream TCP connection could not be made: 502 (refused, unreachable, no such name) or
// 504 (timed out), with the reason.
struct ConnectFailed {
  int status = 502;
  std::string why;
  int err = 0;  // the connect's errno (ECONNREFUSED, EHOSTUNREACH, ...) when the system said, else 0
  // Through --upstream-proxy: the hop that failed, "proxy" (the proxy cannot be reached, refused
  // the request or answered nonsense) or "target" (the proxy could not reach the target), and the
  // proxy's reply (HTTP status or SOCKS REP, -1 when none came, and as text).
  std::string hop = {};
  int proxy_status = -1;
  std::string proxy_reply = {};
  // Through --upstream-proxy: the TCP connection to the proxy (tcp.connect's peer, local and
  // connect_ms); peer alone when that connect itself failed. Empty: the target's connect failed.
  std::string peer = {}, local = {};
  std::optional<double> connect_ms = std::nullopt;
  // That connection's end, when it had been made (the upstream leg's tcp.info and tcp.close).
  struct HopClosed {
    std::string by, how;  // as tcp.close: whose FIN or RST came first (the proxy's: timeout on a timeout)
    std::uint64_t bytes_in = 0, bytes_out = 0;
    double open_ms = 0;
    std::optional<trace::ev::TcpInfo> tcp = std::nullopt;
  };
  std::optional<HopClosed> closed = std::nullopt;
};
// The client-chosen target resolved only to addresses a non-loopback client may not reach
// (docs/cli.md, exposure): no connection was tried; conn.refused and a 403 follow.
struct TargetRefused {
  std::string client;  // "ip:port", for conn.refused
  std::string why;
};
// The peer ended a leg's stream: FIN, RST, or a read error (`why` says which).
struct Closed {
  enum class How { Fin, Rst, Error };
  Leg leg;
  How how = How::Fin;
  std::string why;
  // A FIN read after our own FIN went out: whether the peer's had arrived before ours was sent
  // (the socket was in CLOSE_WAIT when the driver shut it down), so that tcp.close names the side
  // a capture shows first.
  bool peer_fin_first = false;
};
// The last action::Send of a leg is written (all of it), or failed.
struct Written {
  Leg leg;
  std::size_t n = 0;
};
struct WriteFailed {
  Leg leg;
  bool reset = false;  // ECONNRESET / EPIPE: the peer is gone
  std::string why;
};
// The timer of the last action::ArmTimer expired.
struct TimerFired {};
// The proxy is shutting down: close politely.
struct Stop {
  std::string why;
};
// The verdict of the act::TestPrime of a leg: safe or not, or nullopt with `why` when it was not
// tested (the worker's queue was full). tls.prime_check follows.
struct PrimeTested {
  Leg leg;
  std::optional<bool> safe;
  double ms = 0;  // the test's own duration
  std::string why;
};
}  // namespace in

using Input = std::variant<in::Start, in::Bytes, in::Connected, in::ConnectFailed, in::TargetRefused, in::Closed,
                           in::Written, in::WriteFailed, in::TimerFired, in::Stop, in::PrimeTested>;

namespace act {
// Wait until the leg is readable, then deliver in::Bytes (or in::Closed). One read at a time.
struct Read {
  Leg leg;
};
// Write all of `bytes` (they stay valid until in::Written / in::WriteFailed). One write at a time.
struct Send {
  Leg leg;
  std::span<const std::uint8_t> bytes;
};
// Send our FIN (shutdown(SHUT_WR)) once written: the other direction stays open.
struct Shutdown {
  Leg leg;
};
// Close the leg's socket now (after a reset or an error).
struct Abort {
  Leg leg;
};
// Open the upstream TCP connection; in::Connected or in::ConnectFailed follows. (`host` is the
// session's own copy: every action is a plain value, cheap to queue.)
struct Connect {
  std::string_view host;
  std::uint16_t port = 0;
  double timeout_s = 0;
  bool client_chosen = false;  // the client named the target (CONNECT, absolute-form): exposure rules apply
  // Through this upstream proxy (config/upstream_proxy.h): a TCP connection to it, then its
  // handshake (wire/proxy_hop.h) opening a tunnel to host:port; null: direct.
  const config::UpstreamProxy* via = nullptr;
};
// (Re)arm the session's one timer; in::TimerFired at `at` unless re-armed before.
struct ArmTimer {
  SteadyClock::time_point at;
};
// The session is over: close what is still open, forget the connection.
struct Finish {};
// Test whether the leg's custom DH prime `p` is a safe prime, off the io thread (seconds for 4096
// bits and more); in::PrimeTested follows, unless the session is over by then. Nothing waits for it.
struct TestPrime {
  Leg leg;
  std::vector<std::uint8_t> p;
};
}  // namespace act

// std::visit over an Input or an Action with one lambda per alternative.
template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

using Action = std::variant<act::Read, act::Send, act::Shutdown, act::Abort, act::Connect, act::ArmTimer, act::Finish,
                            act::TestPrime>;

}  // namespace tlstrace::session
