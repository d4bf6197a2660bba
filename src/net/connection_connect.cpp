// net::Connection's upstream TCP connect: the target's name looked up off the io thread (the
// resolver pool), the addresses screened by the exposure rules, the capture told first when it
// runs, and the connect itself; each step with its limit on the one connect timer. Through an
// upstream proxy the connect goes to the proxy (upstream_hop.cpp).
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "config/config.h"
#include "net/capture.h"
#include "net/connection.h"
#include "net/tcp_probe.h"

namespace tlstrace::net {

namespace in = session::in;
namespace act = session::act;
using session::Leg;

// The lookup and the TCP connect each have their own limit (--resolve-timeout, then
// --connect-timeout) on the one connect timer; a generation tells a stale expiry from the current.
void Connection::armConnectTimer(double seconds, std::function<void()> on_expiry) {
  const std::uint64_t gen = ++connect_gen_;
  auto self = shared_from_this();
  connect_timer_.expires_after(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds)));
  connect_timer_.async_wait([this, self, gen, on_expiry = std::move(on_expiry)](boost::system::error_code ec) {
    if (ec || finished_ || gen != connect_gen_) return;
    on_expiry();
  });
}

void Connection::disarmConnectTimer() {
  ++connect_gen_;
  connect_timer_.cancel();
}

void Connection::connect(const act::Connect& c) {
  connect_started_ = session::SteadyClock::now();
  connect_timeout_s_ = c.timeout_s;
  client_chosen_ = c.client_chosen;
  if (viaProxy(c)) return;
  // An address literal (always so in reverse mode with an IP upstream) needs no lookup.
  boost::system::error_code literal_ec;
  const std::string host(c.host);
  const auto literal = asio::ip::make_address(host, literal_ec);
  if (!literal_ec)
    return connectTo(tcp::resolver::results_type::create(tcp::endpoint(literal, c.port), host, std::to_string(c.port)));
  resolve(host, c.port);
}

// getaddrinfo blocks (5 s and more for a slow or dead DNS server), so it runs on the resolver
// pool, never on this io thread; the result comes back to this connection's executor.
void Connection::resolve(const std::string& host, std::uint16_t port) {
  const double limit = svc_.cfg->resolve_timeout_s;
  resolving_ = true;
  armConnectTimer(limit, [this, limit] {
    resolving_ = false;
    run(connectFailure(504, "name resolution timed out after " + config::seconds(limit)));
  });
  const std::uint64_t gen = connect_gen_;
  std::weak_ptr<Connection> weak = shared_from_this();
  auto deliver = [weak, gen, ex = client_.sock.get_executor()](const Resolved& r) {
    asio::post(ex, [weak, gen, r] {
      if (auto self = weak.lock()) self->resolved(gen, r);
    });
  };
  const bool queued = svc_.resolver && svc_.resolver->submit(
                                           host + ":" + std::to_string(port),
                                           [host, port] { return resolveBlocking(host, port); }, std::move(deliver));
  if (queued) return;
  resolving_ = false;
  disarmConnectTimer();
  const std::size_t waiting = svc_.resolver ? svc_.resolver->maxQueued() : 0;
  later(connectFailure(502, "name resolution refused: " + std::to_string(waiting) + " lookups already waiting"));
}

void Connection::resolved(std::uint64_t gen, const Resolved& r) {
  if (finished_ || !resolving_ || gen != connect_gen_) return;  // timed out meanwhile
  resolving_ = false;
  disarmConnectTimer();
  if (r.ec) return run(connectFailure(502, "name resolution failed: " + r.ec.message()));
  // The one point where a looked-up name's addresses arrive (the exposure rules screen them in
  // connectTo, as they do a literal's).
  connectTo(r.results);
}

void Connection::connectTo(tcp::resolver::results_type results) {
  if (auto why = screenTargets(results, client_chosen_))
    return later(in::TargetRefused{endpointText(client_.sock, true), std::move(*why)});
  auto self = shared_from_this();
  auto timed_out = std::make_shared<bool>(false);
  const double timeout_s = connect_timeout_s_;
  armConnectTimer(timeout_s, [this, timed_out] {
    *timed_out = true;
    boost::system::error_code ignored;
    upstream_.sock.close(ignored);
  });
  if (svc_.capture) return watchThenConnect(std::move(results), std::move(timed_out));
  startConnect(std::move(results), std::move(timed_out));
}

// --capture: the filter gets the destinations first, so that the SYN is captured; the connect
// starts (on this connection's executor) once the capture thread has installed it.
void Connection::watchThenConnect(tcp::resolver::results_type results, std::shared_ptr<bool> timed_out) {
  auto self = shared_from_this();
  auto left = std::make_shared<std::atomic<std::size_t>>(results.size());
  for (const auto& r : results) {
    watched_.push_back(toEndpoint(r.endpoint()));
    svc_.capture->watch(watched_.back(), [this, self, left, results, timed_out] {
      if (--*left != 0) return;
      asio::post(client_.sock.get_executor(), [this, self, results, timed_out] {
        if (finished_) return;
        if (!*timed_out) return startConnect(results, timed_out);
        run(in::ConnectFailed{504, "connect timed out after " + config::seconds(connect_timeout_s_)});
      });
    });
  }
}

void Connection::startConnect(tcp::resolver::results_type results, std::shared_ptr<bool> timed_out) {
  connectEach(std::make_shared<const tcp::resolver::results_type>(std::move(results)), 0, std::move(timed_out),
              asio::error::host_not_found);
}

// The addresses one after the other, as asio::async_connect tries them, with one difference: a
// connect that completed and was reset at once (the target accepted, then reset: ECONNRESET,
// where a refusal is ECONNREFUSED) is a connection made, then reset by the target: tcp.connect
// says it was made, and the leg's first read gets the reset (reset_taken), whichever came first,
// the connect's completion or the reset.
void Connection::connectEach(std::shared_ptr<const tcp::resolver::results_type> results, std::size_t i,
                             std::shared_ptr<bool> timed_out, boost::system::error_code last) {
  const double timeout_s = connect_timeout_s_;
  if (i == results->size()) {
    disarmConnectTimer();
    if (*timed_out) return run(connectFailure(504, "connect timed out after " + config::seconds(timeout_s)));
    return run(
        connectFailure(502, last.message(), last.category() == boost::system::system_category() ? last.value() : 0));
  }
  const tcp::endpoint ep = std::next(results->begin(), static_cast<std::ptrdiff_t>(i))->endpoint();
  boost::system::error_code ignored;
  if (upstream_.sock.is_open()) upstream_.sock.close(ignored);  // (the last address's socket)
  auto self = shared_from_this();
  upstream_.sock.async_connect(ep, [this, self, results, i, timed_out, ep, timeout_s](boost::system::error_code ec) {
    if (finished_) return;
    if (*timed_out) {
      disarmConnectTimer();
      return run(connectFailure(504, "connect timed out after " + config::seconds(timeout_s)));
    }
    const bool reset = ec == asio::error::connection_reset;
    if (ec && !reset) return connectEach(results, i + 1, timed_out, ec);
    disarmConnectTimer();
    upstream_.open = true;
    upstream_.reset_taken = reset;
    prepareSocket(upstream_.sock);
    tapOpen(Leg::Upstream);
    const double ms = std::chrono::duration<double, std::milli>(session::SteadyClock::now() - connect_started_).count();
    if (hop_) return startHop(ms, endpointText(ep));
    run(in::Connected{endpointText(ep), endpointText(upstream_.sock, false), ms,
                      tcpFacts() ? tcpInfo(upstream_.sock, "established") : std::nullopt});
  });
}

Resolved resolveBlocking(const std::string& host, std::uint16_t port) {
  asio::io_context ctx;  // the blocking resolve runs getaddrinfo on this (pool) thread
  tcp::resolver resolver(ctx);
  Resolved r;
  r.results = resolver.resolve(host, std::to_string(port), r.ec);
  return r;
}

// Exposure rules (docs/cli.md): a client from beyond loopback may not use the proxy to reach the
// proxy's host itself (its loopback services, link-local neighbours, its own addresses) unless
// --allow-private-targets. Applied to the resolved addresses, so that a name resolving to
// 127.0.0.1 is caught like the literal; forbidden addresses are dropped, and when none is left the
// reason is returned.
std::optional<std::string> Connection::screenTargets(tcp::resolver::results_type& results, bool client_chosen) const {
  if (!client_chosen || svc_.cfg->allow_private_targets || results.empty()) return std::nullopt;
  boost::system::error_code ec;
  const auto peer = client_.sock.remote_endpoint(ec);
  if (!ec && config::classify(toIp(peer.address())) == config::AddressClass::Loopback) return std::nullopt;
  std::vector<tcp::endpoint> allowed;
  std::string why;
  for (const auto& r : results) {
    if (auto no = config::forbiddenTarget(toIp(r.endpoint().address()), svc_.own_addresses)) {
      if (why.empty()) why = std::move(*no);
    } else {
      allowed.push_back(r.endpoint());
    }
  }
  const auto first = *results.begin();
  if (allowed.empty())
    return "target " + first.host_name() + ":" + first.service_name() + ": " + why +
           ", refused for a non-loopback client (--allow-private-targets allows it)";
  if (allowed.size() != results.size())
    results =
        tcp::resolver::results_type::create(allowed.begin(), allowed.end(), first.host_name(), first.service_name());
  return std::nullopt;
}

}  // namespace tlstrace::net
