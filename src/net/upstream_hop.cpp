// net::Connection through an upstream proxy (--upstream-proxy): the TCP connection goes to the
// proxy, whose handshake (wire/proxy_hop.h: HTTP CONNECT or SOCKS5) is carried out here before
// the session hears in::Connected. The hop's bytes are the upstream leg's first (in the capture
// too); the session sees the tunnel only, as if connected to the target.
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <string_view>
#include <utility>

#include "config/config.h"
#include "config/upstream_proxy.h"
#include "net/connection.h"
#include "net/tcp_probe.h"
#include "trace/tap.h"

namespace tlstrace::net {

namespace werr = boost::asio::error;
namespace in = session::in;
using session::Leg;

namespace {

// What a failed hop stands for, as the errno a direct connect would have given (a SOCKS5 front
// end answers its own client from it, session/socks_front_end.cpp): an upstream SOCKS5 proxy's
// word on the target (RFC 1928 section 6: REP 3 network and 4 host unreachable, 5 refused, 6 TTL
// expired) passes on; any other failure of or through the proxy is a general one (EIO), never a
// refusal by the target.
int hopErrno(bool socks, std::string_view hop, int status) {
  if (socks && hop == "target") {
    switch (status) {
      case 3: return ENETUNREACH;
      case 4: return EHOSTUNREACH;
      case 5: return ECONNREFUSED;
      case 6: return ETIMEDOUT;
      default: break;
    }
  }
  return EIO;
}

}  // namespace

// Sets up the hop and connects to the proxy instead of the target; false when the connection is
// direct. A client-chosen target that is an address literal is screened by the exposure rules as
// if connected directly; a name is the proxy's to resolve.
bool Connection::viaProxy(const session::act::Connect& c) {
  if (!c.via) return false;
  const config::UpstreamProxy& p = *c.via;
  wire::ProxyHop::Spec spec;
  spec.protocol = p.scheme == config::UpstreamProxy::Scheme::Http ? wire::ProxyHop::Protocol::HttpConnect
                                                                  : wire::ProxyHop::Protocol::Socks5;
  spec.host = std::string(c.host);
  spec.port = c.port;
  spec.auth = p.auth;
  spec.user = p.user;
  spec.password = p.password;
  spec.authorization = p.authorization;
  hop_ = std::make_unique<Hop>(std::move(spec), p.url);
  hop_->socks = p.scheme == config::UpstreamProxy::Scheme::Socks5;
  boost::system::error_code literal_ec;
  if (const auto target = asio::ip::make_address(std::string(c.host), literal_ec); !literal_ec && client_chosen_) {
    auto results =
        tcp::resolver::results_type::create(tcp::endpoint(target, c.port), std::string(c.host), std::to_string(c.port));
    if (auto why = screenTargets(results, true)) {
      hop_.reset();
      later(in::TargetRefused{endpointText(client_.sock, true), std::move(*why)});
      return true;
    }
  }
  client_chosen_ = false;  // the proxy is the operator's choice: not screened
  boost::system::error_code proxy_ec;
  const auto proxy = asio::ip::make_address(p.host, proxy_ec);
  if (!proxy_ec)
    connectTo(tcp::resolver::results_type::create(tcp::endpoint(proxy, p.port), p.host, std::to_string(p.port)));
  else resolve(p.host, p.port);
  return true;
}

// A failure before the tunnel: through a proxy, the proxy's hop (its lookup, its TCP connect).
in::ConnectFailed Connection::connectFailure(int status, std::string why, int err) const {
  if (!hop_) return in::ConnectFailed{status, std::move(why), err};
  in::ConnectFailed f{status, "upstream proxy " + hop_->url + ": " + why, hopErrno(hop_->socks, "proxy", -1)};
  f.hop = "proxy";
  const auto scheme_end = hop_->url.find("://");  // the proxy's host:port, as configured
  f.peer = scheme_end == std::string::npos ? hop_->url : hop_->url.substr(scheme_end + 3);
  return f;
}

void Connection::startHop(double connect_ms, std::string peer) {
  hop_->connect_ms = connect_ms;
  hop_->peer = std::move(peer);
  hop_->local = endpointText(upstream_.sock, false);
  hop_->started = session::SteadyClock::now();
  const double limit = connect_timeout_s_;
  armConnectTimer(limit, [this, limit] {
    hopFailed(504, "upstream proxy " + hop_->url + " did not open the tunnel within " + config::seconds(limit), "proxy",
              -1, {});
  });
  hopStep(hop_->machine.start());
}

void Connection::hopStep(wire::ProxyHop::Step step) {
  using K = wire::ProxyHop::Step::Kind;
  switch (step.kind) {
    case K::Send: return hopSend(std::move(step.send));
    case K::NeedMore: return hopRead();
    case K::Failed:
      return hopFailed(502, std::move(step.why), step.target_failed ? "target" : "proxy", step.status,
                       std::move(step.reply));
    case K::Done: break;
  }
  disarmConnectTimer();
  const auto hop = std::exchange(hop_, nullptr);
  tunnel_rest_ = std::move(step.rest);
  in::Connected c{hop->peer, hop->local, hop->connect_ms,
                  tcpFacts() ? tcpInfo(upstream_.sock, "established") : std::nullopt};
  c.proxy_status = step.status;
  c.proxy_reply = std::move(step.reply);
  c.tunnel_ms = std::chrono::duration<double, std::milli>(session::SteadyClock::now() - hop->started).count();
  c.hop_bytes_in = hop->bytes_in - tunnel_rest_.size();  // (the rest is the session's first read)
  c.hop_bytes_out = hop->bytes_out;
  run(std::move(c));
}

// The message lives as long as its write (the handler holds it), whatever becomes of the hop.
void Connection::hopSend(std::vector<std::uint8_t> bytes) {
  auto out = std::make_shared<const std::vector<std::uint8_t>>(std::move(bytes));
  auto self = shared_from_this();
  asio::async_write(upstream_.sock, asio::buffer(*out), [this, self, out](boost::system::error_code ec, std::size_t n) {
    if (finished_ || !hop_ || ec == werr::operation_aborted) return;
    if (ec) {
      hop_->peer_reset = ec == werr::connection_reset || ec == werr::broken_pipe;
      return hopFailed(502, "upstream proxy " + hop_->url + ": write failed: " + ec.message(), "proxy", -1, {});
    }
    hop_->bytes_out += n;
    tapData(Leg::Upstream, false, std::span<const std::uint8_t>(out->data(), n));
    hopRead();
  });
}

// The proxy's replies are short: a small buffer of their own, and what the tunnel's first read
// brings along with the last reply is kept for the session (deliverTunnelRest).
void Connection::hopRead() {
  auto self = shared_from_this();
  upstream_.sock.async_wait(tcp::socket::wait_read, [this, self](boost::system::error_code ec) {
    if (finished_ || !hop_ || ec == werr::operation_aborted) return;
    std::array<std::uint8_t, 4096> buf;
    std::size_t n = 0;
    if (!ec) n = upstream_.sock.read_some(asio::buffer(buf), ec);
    if (ec == werr::would_block || ec == werr::try_again) return hopRead();
    if (ec == werr::eof) {
      tapFin(Leg::Upstream, true);
      return hopFailed(502, hop_->machine.onClosed().why, "proxy", -1, {});
    }
    if (ec) {
      hop_->peer_reset = ec == werr::connection_reset;
      return hopFailed(502, "upstream proxy " + hop_->url + ": " + ec.message(), "proxy", -1, {});
    }
    hop_->bytes_in += n;
    const std::span<const std::uint8_t> bytes(buf.data(), n);
    tapData(Leg::Upstream, true, bytes);
    hopStep(hop_->machine.onBytes(bytes));
  });
}

// The hop failed: the connection to the proxy is closed (our FIN) and the session hears why.
void Connection::hopFailed(int code, std::string why, std::string hop, int status, std::string reply) {
  disarmConnectTimer();
  in::ConnectFailed f{code, std::move(why), hop_ ? hopErrno(hop_->socks, hop, status) : EIO};
  if (upstream_.open && hop_) {  // the connection to the proxy was made: tcp.connect says which it was
    f.peer = hop_->peer;
    f.local = hop_->local;
    f.connect_ms = hop_->connect_ms;
    // What the proxy sent after the reply that failed it (an error page's body): counted, in the
    // capture, and not answered by a reset.
    hop_->bytes_in +=
        discardUnread(upstream_.sock, [this](std::span<const std::uint8_t> b) { tapData(Leg::Upstream, true, b); });
    in::ConnectFailed::HopClosed closed;
    closed.bytes_in = hop_->bytes_in;
    closed.bytes_out = hop_->bytes_out;
    closed.open_ms = hop_->connect_ms +
                     std::chrono::duration<double, std::milli>(session::SteadyClock::now() - hop_->started).count();
    if (tcpFacts()) closed.tcp = tcpInfo(upstream_.sock, "close");
    // Whose end came first: the proxy's reset or FIN (read, or still unread) before our close.
    using PE = session::ProxySession::PeerEnd;
    const PE end = hop_->peer_reset ? PE::Rst : peerEnd(Leg::Upstream);
    closed.by = end == PE::None ? "proxy" : "peer";
    closed.how = end == PE::Rst ? "rst" : end == PE::Fin || code != 504 ? "fin" : "timeout";
    f.closed = std::move(closed);
  }
  hop_.reset();
  if (upstream_.open) {
    tapFin(Leg::Upstream, false);
    if (svc_.tap) svc_.tap->close(id_, Leg::Upstream);
    upstream_.open = false;
  }
  boost::system::error_code ignored;
  upstream_.sock.close(ignored);
  f.hop = std::move(hop);
  f.proxy_status = status;
  f.proxy_reply = std::move(reply);
  run(std::move(f));
}

// The session's first upstream read gets the bytes that came with the proxy's last reply (a
// server that speaks first): already in the capture, handed over as if read now.
void Connection::deliverTunnelRest() {
  asio::post(client_.sock.get_executor(), [self = shared_from_this(), bytes = std::move(tunnel_rest_)] {
    if (!self->finished_) self->run(in::Bytes{Leg::Upstream, bytes});
  });
  tunnel_rest_.clear();
}

}  // namespace tlstrace::net
