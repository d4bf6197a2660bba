#include "net/connection.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <utility>

#include "analysis/diagnose.h"
#include "analysis/fingerprint.h"
#include "analysis/kex.h"
#include "analysis/summary.h"
#include "net/proxy_request.h"
#include "pki/forge.h"
#include "sinks/sinks.h"
#include "tls/cert_summary.h"
#include "tls/mirror.h"
#include "tls/session_info.h"
#include "trace/tap.h"
#include "wire/handshake.h"
#include "wire/registry.h"

namespace tlstrace::net {

using trace::Json;
namespace werr = boost::asio::error;

namespace {

constexpr std::size_t kMaxWriteChunk = 64 * 1024;
// Backpressure: stop reading a leg while the other one has this much waiting to be written,
// resume below the low mark. Bounded buffers per direction, never a growing queue.
constexpr std::size_t kHighWater = 256 * 1024;
constexpr std::size_t kLowWater = 64 * 1024;

// One read buffer per io thread (handlers of one thread never overlap).
std::span<std::uint8_t> threadReadBuffer() {
  static thread_local std::array<std::uint8_t, 64 * 1024> buf;
  return buf;
}
constexpr auto kCloseGrace = std::chrono::seconds(2);

double msSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// conn.summary's handshake part holds no times or counters, so it is the same for every connection
// of one client to one server (offers, choices, verdict). An idle connection keeps it until it
// closes: equal parts are shared, one copy per thread's recent variety (1.6 KiB per idle
// connection otherwise). Per io thread, as the connections that use it are.
std::shared_ptr<const SummaryPart> internSummaryPart(std::string part) {
  struct Slot {
    std::size_t hash = 0;
    std::shared_ptr<const SummaryPart> part;
  };
  static thread_local std::array<Slot, 16> recent;
  static thread_local std::size_t next = 0;
  const std::size_t h = std::hash<std::string>{}(part);
  for (const Slot& s : recent)
    if (s.part && s.hash == h && s.part->text == part) return s.part;
  part.shrink_to_fit();  // kept for the connection's lifetime: no growth slack
  Slot& slot = recent[next++ % recent.size()];
  slot = {h, std::make_shared<const SummaryPart>(SummaryPart{std::move(part), {}})};
  return slot.part;
}

}  // namespace

// Commits captures and trace output when a handler returns, whichever way it returns.
struct Connection::CommitOnExit {
  Connection* c;
  ~CommitOnExit() { c->tapCommit(); }
};

namespace {

std::string endpointText(const tcp::socket& s, bool remote) {
  boost::system::error_code ec;
  auto ep = remote ? s.remote_endpoint(ec) : s.local_endpoint(ec);
  if (ec) return "?";
  const auto addr = ep.address();
  if (addr.is_v6()) return "[" + addr.to_string() + "]:" + std::to_string(ep.port());
  return addr.to_string() + ":" + std::to_string(ep.port());
}

// Compares credentials without an early exit on the first differing byte.
bool sameSecret(const std::string& a, const std::string& b) {
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) diff |= static_cast<unsigned>(a[i] ^ b[i]);
  return diff == 0;
}

bool looksLikeHttp(const std::vector<std::uint8_t>& b) {
  static constexpr std::string_view kMethods[] = {"GET ",     "POST ",    "HEAD ",  "PUT ",  "DELETE ",
                                                  "OPTIONS ", "CONNECT ", "PATCH ", "TRACE "};
  const std::string_view s(reinterpret_cast<const char*>(b.data()), b.size());
  for (auto m : kMethods)
    if (s.starts_with(m)) return true;
  return false;
}

trace::Endpoint toEndpoint(const tcp::endpoint& ep) {
  trace::Endpoint e;
  e.port = ep.port();
  if (ep.address().is_v6()) {
    e.v6 = true;
    const auto b = ep.address().to_v6().to_bytes();
    std::copy(b.begin(), b.end(), e.addr.begin());
  } else {
    const auto b = ep.address().to_v4().to_bytes();
    std::copy(b.begin(), b.end(), e.addr.begin());
  }
  return e;
}

}  // namespace

Connection::Leg::Leg(tcp::socket s, trace::Leg w, tls::CertSummaryCache* certs)
    : sock(std::move(s)), which(w), decoder(tls::derDecoders(certs)) {}

Connection::Connection(tcp::socket client, const Services& svc, std::uint64_t id,
                       std::function<void(std::uint64_t)> on_done)
    : svc_(svc),
      id_(id),
      on_done_(std::move(on_done)),
      client_(std::move(client), trace::Leg::Client, svc.certs),
      upstream_(tcp::socket(client_.sock.get_executor()), trace::Leg::Upstream, svc.certs),
      resolver_(client_.sock.get_executor()),
      watchdog_(client_.sock.get_executor()),
      connect_timer_(client_.sock.get_executor()) {
  client_.obs.conn = this;
  client_.obs.leg = &client_;
  upstream_.obs.conn = this;
  upstream_.obs.leg = &upstream_;
}

Connection::~Connection() {
  if (!events_.empty()) svc_.tracer->submit(events_);
}

bool Connection::tracing(trace::Category c) const { return svc_.tracer->enabled(c); }

template <class Name>
trace::Event& Connection::newEvent(trace::Leg leg, Name&& name) {
  settleUpstream();  // its events come first, whatever path emits next
  // Held until the end of the handler (tapCommit): one queue lock per burst, not per event, and
  // no allocation per burst (the batch's storage comes back from the writer).
  if (events_.capacity() == 0) events_ = svc_.tracer->newBatch();
  trace::Event& e = events_.emplace_back(std::forward<Name>(name));
  e.ts = event_ts_ == trace::Clock::time_point{} ? trace::Clock::now() : event_ts_;
  e.conn = id_;
  e.leg = leg;
  return e;
}

void Connection::emit(trace::Leg leg, std::string name, Json fields) {
  if (!svc_.tracer->enabled(trace::categoryOf(name))) return;
  newEvent(leg, std::move(name)).fields = std::move(fields);
}

void Connection::emitFlat(trace::Leg leg, std::string_view name, const trace::FlatFields& flat) {
  newEvent(leg, name).flat = flat;  // ("tls.record", "data": no allocation)
}

void Connection::markOpen(Leg& l, SteadyClock::time_point at) {
  l.open = true;
  l.opened = at;
  // No Nagle delay on either leg (small handshake flights would wait for ACKs); the relay reads
  // with wait-readable + read_some, which needs a non-blocking socket.
  boost::system::error_code ignored;
  l.sock.set_option(tcp::no_delay(true), ignored);
  l.sock.non_blocking(true, ignored);
}

void Connection::start() {
  start_ = last_activity_ = SteadyClock::now();
  markOpen(client_, start_);
  Json f = Json::object();
  f.set("client", endpointText(client_.sock, true));
  f.set("listen", endpointText(client_.sock, false));
  f.set("mode", std::string(config::modeName(svc_.cfg->mode)));
  if (svc_.cfg->mode == config::Mode::Reverse) {
    target_host_ = svc_.cfg->upstream->host;
    target_port_ = svc_.cfg->upstream->port;
    f.set("target", svc_.cfg->upstream->str());
  }
  emit(trace::Leg::None, "conn.open", std::move(f));
  tapOpen(client_);
  tapCommit();
  armWatchdog();
  if (svc_.cfg->mode == config::Mode::Explicit) {
    state_ = State::ReadingRequest;
    readRequest();
  } else {
    state_ = State::PeekingHello;
    peekHello();
  }
}

// ---------------------------------------------------------------------------------------------
// Explicit-proxy front end

template <typename F>
void Connection::readSome(Leg& l, F on_bytes) {
  l.reading = true;
  auto self = shared_from_this();
  l.sock.async_wait(tcp::socket::wait_read, [this, self, &l, on_bytes](boost::system::error_code ec) {
    CommitOnExit commit{this};
    l.reading = false;
    if (finished_) return;
    if (ec) return onReadError(l, ec);
    const auto buf = threadReadBuffer();
    boost::system::error_code rec;
    const std::size_t n = l.sock.read_some(asio::buffer(buf.data(), buf.size()), rec);
    if (rec == werr::would_block || rec == werr::try_again) return readSome(l, on_bytes);
    if (rec) return onReadError(l, rec);
    touch();
    l.bytes_in += n;
    const std::span<const std::uint8_t> bytes(buf.data(), n);
    tapData(l, true, bytes);
    on_bytes(bytes);
  });
}

void Connection::readRequest() {
  readSome(client_, [this](std::span<const std::uint8_t> bytes) {
    inbuf_.insert(inbuf_.end(), bytes.begin(), bytes.end());
    onRequestBytes();
  });
}

void Connection::onRequestBytes() {
  ProxyRequest req = parseProxyRequest(inbuf_);
  switch (req.kind) {
    case ProxyRequest::Kind::NeedMore: return readRequest();
    case ProxyRequest::Kind::Error: return respondAndClose(req.status, req.reason);
    case ProxyRequest::Kind::Connect:
    case ProxyRequest::Kind::PlainHttp: break;
  }
  if (!svc_.expected_proxy_auth.empty() && !sameSecret(req.proxy_authorization, svc_.expected_proxy_auth))
    return respondAndClose(
        407, req.proxy_authorization.empty() ? "proxy authentication required" : "wrong proxy credentials",
        "Proxy-Authenticate: Basic realm=\"tlstrace\"\r\n");
  target_host_ = req.target.host;
  target_port_ = req.target.port;
  inbuf_.erase(inbuf_.begin(), inbuf_.begin() + static_cast<std::ptrdiff_t>(req.consumed));
  Json f = Json::object();
  f.set("method", req.kind == ProxyRequest::Kind::Connect ? "CONNECT" : "GET/absolute-form");
  f.set("target", req.target.str());
  emit(trace::Leg::Client, "proxy.request", std::move(f));
  state_ = State::Connecting;
  auto fail = [this](int status, const std::string& why) { respondAndClose(status, why); };
  if (req.kind == ProxyRequest::Kind::Connect) {
    connectUpstream(
        [this] {
          static constexpr std::string_view kOk = "HTTP/1.1 200 Connection Established\r\n\r\n";
          client_.pending.insert(client_.pending.end(), kOk.begin(), kOk.end());
          flush(client_);
          state_ = State::PeekingHello;
          if (inbuf_.empty()) peekHello();
          else onHelloBytes();
        },
        fail);
  } else {
    auto head = std::make_shared<std::string>(std::move(req.forward_head));
    connectUpstream(
        [this, head] {
          upstream_.pending.insert(upstream_.pending.end(), head->begin(), head->end());
          upstream_.pending.insert(upstream_.pending.end(), inbuf_.begin(), inbuf_.end());
          c2s_ += inbuf_.size();
          inbuf_.clear();
          startRelay();
        },
        fail);
  }
}

void Connection::respondAndClose(int status, const std::string& reason, const std::string& extra_headers) {
  Json f = Json::object();
  f.set("status", status);
  f.set("reason", reason);
  emit(trace::Leg::Client, "proxy.error", std::move(f));
  const std::string resp = httpErrorResponse(status, reason, extra_headers);
  client_.pending.insert(client_.pending.end(), resp.begin(), resp.end());
  if (outcome_.empty()) outcome_ = reason;
  closeGracefully(outcome_);
}

void Connection::connectUpstream(std::function<void()> on_connected,
                                 std::function<void(int, const std::string&)> on_failed) {
  auto self = shared_from_this();
  const std::string peer = config::HostPort{target_host_, target_port_}.str();
  auto started = std::make_shared<SteadyClock::time_point>(SteadyClock::now());
  auto timed_out = std::make_shared<bool>(false);
  auto failed = [this, peer, on_failed](int status, const std::string& why) {
    Json f = Json::object();
    f.set("peer", peer);
    f.set("error", why);
    emit(trace::Leg::Upstream, "tcp.connect", std::move(f));
    if (outcome_.empty()) outcome_ = "upstream " + peer + ": " + why;
    on_failed(status, "cannot reach " + peer + ": " + why);
  };
  connect_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(svc_.cfg->connect_timeout_s)));
  connect_timer_.async_wait([this, self, timed_out](boost::system::error_code ec) {
    CommitOnExit commit{this};
    if (ec || finished_) return;
    *timed_out = true;
    resolver_.cancel();
    boost::system::error_code ignored;
    upstream_.sock.close(ignored);
  });
  auto connect = [this, self, started, timed_out, failed, on_connected,
                  peer](const tcp::resolver::results_type& results) {
    asio::async_connect(upstream_.sock, results,
                        [this, self, started, timed_out, failed, on_connected, peer](boost::system::error_code cec,
                                                                                     const tcp::endpoint&) {
                          CommitOnExit commit_connect{this};
                          if (finished_) return;
                          connect_timer_.cancel();
                          if (*timed_out)
                            return failed(
                                504, "connect timed out after " + std::to_string(svc_.cfg->connect_timeout_s) + " s");
                          if (cec) return failed(502, cec.message());
                          markOpen(upstream_, SteadyClock::now());
                          Json f = Json::object();
                          f.set("peer", endpointText(upstream_.sock, true));
                          f.set("local", endpointText(upstream_.sock, false));
                          f.set("target", peer);
                          upstream_.connect_ms = msSince(*started);
                          f.set("connect_ms", *upstream_.connect_ms);
                          emit(trace::Leg::Upstream, "tcp.connect", std::move(f));
                          tapOpen(upstream_);
                          on_connected();
                        });
  };
  // An address literal (always so in reverse mode with an IP upstream) needs no lookup: the
  // resolver would hand every connection to its own thread and back.
  boost::system::error_code literal_ec;
  const auto literal = asio::ip::make_address(target_host_, literal_ec);
  if (!literal_ec)
    return connect(tcp::resolver::results_type::create(tcp::endpoint(literal, target_port_), target_host_,
                                                       std::to_string(target_port_)));
  resolver_.async_resolve(target_host_, std::to_string(target_port_),
                          [this, self, timed_out, failed, connect](boost::system::error_code ec,
                                                                   const tcp::resolver::results_type& results) {
                            CommitOnExit commit{this};
                            if (finished_) return;
                            if (*timed_out) return failed(504, "connect timed out");
                            if (ec) {
                              connect_timer_.cancel();
                              return failed(502, "name resolution failed: " + ec.message());
                            }
                            connect(results);
                          });
}

// ---------------------------------------------------------------------------------------------
// First bytes: TLS or not?

void Connection::peekHello() {
  readSome(client_, [this](std::span<const std::uint8_t> bytes) {
    inbuf_.insert(inbuf_.end(), bytes.begin(), bytes.end());
    onHelloBytes();
  });
}

void Connection::onHelloBytes() {
  wire::HelloPeek peek = wire::peekClientHello(inbuf_);
  using K = wire::HelloPeek::Kind;
  if (peek.kind == K::NeedMore) return peekHello();
  if (peek.kind == K::Malformed) return refuseNotTls("client sent a bad ClientHello: " + peek.error);
  if (peek.kind == K::NotTls && svc_.cfg->mode == config::Mode::Reverse) {
    // A reverse listener stands in for a TLS server: plain bytes here are a client mistake.
    if (!looksLikeHttp(inbuf_)) return refuseNotTls("first bytes are not a TLS ClientHello");
    refuseNotTls("plain HTTP sent to a TLS port", false);
    return respondAndClose(400, "this port speaks TLS: use https://");
  }
  if (peek.kind == K::NotTls) {
    Json f = Json::object();
    f.set("reason", "first bytes are not a TLS ClientHello; relaying as plain TCP");
    f.set("first_bytes", wire::toHex(inbuf_, 16));
    emit(trace::Leg::Client, "conn.plaintext", std::move(f));
    auto go = [this] {
      upstream_.pending.insert(upstream_.pending.end(), inbuf_.begin(), inbuf_.end());
      c2s_ += inbuf_.size();
      inbuf_.clear();
      startRelay();
    };
    if (upstream_.open) return go();
    state_ = State::Connecting;
    return connectUpstream(go, [this](int, const std::string& why) { closeGracefully(why); });
  }
  if (auto ch = wire::decodeClientHello(wire::Bytes(peek.message).subspan(4)); ch.ok()) {
    if (auto* e = wire::findExtension(ch.value.extensions, 0))
      if (auto v = wire::decodeServerName(e->data); v && !v->empty()) sni_ = v->front();
    if (auto* e = wire::findExtension(ch.value.extensions, 16))
      if (auto v = wire::decodeAlpn(e->data)) client_alpn_ = *v;
  }
  client_.hs_start = SteadyClock::now();
  if (upstream_.open) {
    traceClientHello(peek.message);
    return startUpstreamTls();
  }
  state_ = State::Connecting;
  connectUpstream([this] { startUpstreamTls(); }, [this](int, const std::string& why) { abortClientHandshake(why); });
  // Decoded while the connection to the server is being made: the event order is the same (no
  // completion handler runs before this returns), the handshake just does not wait for it.
  traceClientHello(peek.message);
}

void Connection::traceClientHello(std::span<const std::uint8_t> message) {
  // Traced from the raw bytes, so the trace reads in wire order even though OpenSSL only sees
  // the ClientHello after the upstream handshake.
  auto desc = client_.decoder.describe(message, true);
  Json f = Json::object();
  f.set("dir", "in");
  f.set("type", desc.type);
  f.set("length", desc.length);
  f.set("body", std::move(desc.body));
  if (client_.decoder.offer().seen) f.set("fingerprints", fingerprints(client_, true));
  emit(trace::Leg::Client, "tls.message", std::move(f));
  hello_traced_ = true;
}

void Connection::refuseNotTls(const std::string& reason, bool close) {
  Json f = Json::object();
  f.set("reason", reason);
  f.set("stage", "client_hello");
  f.set("cause", "not_tls");
  f.set("raw", wire::toHex(inbuf_, 64));
  analysis::FailureFacts ff;
  ff.not_tls = true;
  f.set("hint", analysis::diagnose(ff).hint);
  client_.error_cause = "not_tls";
  if (outcome_.empty()) outcome_ = reason;
  emit(trace::Leg::Client, "tls.error", std::move(f));
  if (close) closeGracefully(outcome_);
}

// ---------------------------------------------------------------------------------------------
// TLS on both legs

void Connection::startUpstreamTls() {
  state_ = State::UpstreamHandshake;
  try {
    upstream_.tls = std::make_unique<tls::TlsEngine>(svc_.upstream_ctx, false, &upstream_.obs);
  } catch (const std::exception& e) {
    traceTlsError(upstream_, e.what(), "setup");
    return abortClientHandshake(e.what());
  }
  const std::string verify_name = sni_.empty() ? target_host_ : sni_;
  std::string err;
  if (!tls::configureUpstream(upstream_.tls->ssl(), sni_, verify_name, client_alpn_, err)) {
    traceTlsError(upstream_, err, "setup");
    return abortClientHandshake(err);
  }
  if (svc_.cfg->mirror_client && client_.decoder.offer().seen)
    emit(trace::Leg::Upstream, "tls.mirror", tls::mirrorClientOffer(upstream_.tls->ssl(), client_.decoder.offer()));
  upstream_.hs_start = SteadyClock::now();
  stepUpstreamHandshake();
}

void Connection::stepUpstreamHandshake() {
  upstream_.obs.deferUntilReplay();
  const auto st = upstream_.tls->handshake();
  flush(upstream_);
  using S = tls::TlsEngine::Status;
  SSL* ssl = upstream_.tls->ssl();
  if (st == S::Ok) {
    // The client has waited for this handshake since its ClientHello: its flight goes out
    // first, the upstream leg's trace work right after (settleUpstream).
    upstream_done_at_ = SteadyClock::now();
    upstream_done_ts_ = trace::Clock::now();
    upstream_settle_pending_ = true;
    alpn_choice_ = tls::selectedAlpn(ssl);
    alpn_known_ = true;
    startClientTls();
    return settleUpstream();  // (done already unless the client step waits for its peer)
  }
  upstream_.obs.replayDeferred();
  const std::string verify_name = sni_.empty() ? target_host_ : sni_;
  if (st == S::WantIo) return readFrom(upstream_);
  // Failed: the verdict first if the certificate was the reason, then the error on both legs.
  if (upstream_.verify_failure.error != 0) traceTrust(ssl, verify_name);
  const std::string why =
      st == S::Closed ? "server closed the connection during the handshake" : upstream_.tls->error();
  traceTlsError(upstream_, why, "handshake", ErrorFacts{false, st == S::Closed});
  abortClientHandshake("upstream handshake failed: " + why);
}

void Connection::startClientTls() {
  state_ = State::ClientHandshake;
  try {
    client_.tls = std::make_unique<tls::TlsEngine>(svc_.client_ctx, true, &client_.obs);
  } catch (const std::exception& e) {
    traceTlsError(client_, e.what(), "setup");
    return closeGracefully(e.what());
  }
  // Named after the target (SNI, else CONNECT host, else the upstream address), mirroring the
  // upstream certificate's names once it is known.
  const std::string name = sni_.empty() ? target_host_ : sni_;
  X509* upstream_cert = upstream_.tls ? SSL_get0_peer_certificate(upstream_.tls->ssl()) : nullptr;
  std::string err;
  tls::X509Ptr leaf = svc_.forger->leaf(pki::leafNamesFor(name, upstream_cert), err);
  SSL* ssl = client_.tls->ssl();
  if (!leaf || SSL_use_certificate(ssl, leaf.get()) != 1 || SSL_use_PrivateKey(ssl, svc_.forger->leafKey()) != 1) {
    if (err.empty()) err = "cannot install the forged certificate: " + tls::errorQueueText();
    traceTlsError(client_, err, "setup");
    return closeGracefully(err);
  }
  client_.tls->feed(inbuf_);
  inbuf_.clear();
  stepClientHandshake();
}

void Connection::settleUpstream() {
  if (!upstream_settle_pending_) return;
  upstream_settle_pending_ = false;
  const auto saved_ts = event_ts_;  // (a replayed client event may be waiting for this)
  upstream_.obs.replayDeferred();
  event_ts_ = upstream_done_ts_;
  traceTrust(upstream_.tls->ssl(), sni_.empty() ? target_host_ : sni_);
  onEstablished(upstream_, upstream_done_at_);
  event_ts_ = saved_ts;
}

void Connection::stepClientHandshake() {
  client_.obs.deferUntilReplay();
  const auto st = client_.tls->handshake();
  flush(client_);
  settleUpstream();
  client_.obs.replayDeferred();
  using S = tls::TlsEngine::Status;
  if (st == S::WantIo) return readFrom(client_);
  if (st == S::Ok) {
    onEstablished(client_);
    return startRelay();
  }
  const std::string why = st == S::Closed ? "client closed the connection during the handshake" : client_.tls->error();
  traceTlsError(client_, why, "handshake", ErrorFacts{false, st == S::Closed});
  closeGracefully("client handshake failed: " + why);
}

void Connection::abortClientHandshake(const std::string& why) {
  // Answer the buffered ClientHello with a fatal handshake_failure alert (RFC 8446 6.2) so the
  // client sees a TLS error, not a silent close.
  if (outcome_.empty()) outcome_ = why;
  abort_alert_ = SSL_AD_HANDSHAKE_FAILURE;
  try {
    client_.tls = std::make_unique<tls::TlsEngine>(svc_.client_ctx, true, &client_.obs);
    client_.tls->feed(inbuf_);
    inbuf_.clear();
    (void)client_.tls->handshake();  // fails by design, queuing the alert
    (void)tls::errorQueueText();
    (void)client_.tls->takeOut(client_.pending, SIZE_MAX);
  } catch (const std::exception&) {
  }
  Json f = Json::object();
  f.set("reason", why);
  f.set("stage", "handshake");
  // The root cause is the upstream leg's; `origin` says so.
  f.set("cause", upstream_.error_cause.empty() ? std::string("upstream_unreachable") : upstream_.error_cause);
  f.set("origin", "upstream");
  f.set("message", "ClientHello");
  f.set("alert", "handshake_failure");
  f.set("hint", "the proxy could not complete the upstream leg; see the upstream tls.error/tcp.connect for why");
  client_.error_cause = f.find("cause")->asString();
  emit(trace::Leg::Client, "tls.error", std::move(f));
  client_.tls.reset();  // nothing more to say in TLS; the alert bytes are already queued below
  closeGracefully(outcome_);
}

void Connection::traceTlsError(Leg& l, const std::string& reason, const std::string& stage, ErrorFacts facts) {
  analysis::FailureFacts ff;
  ff.client_leg = &l == &client_;
  ff.ssl_reason = l.tls ? l.tls->errorReason() : 0;
  ff.verify_error = l.verify_failure.error;
  ff.alert_received = l.last_alert_received;
  ff.alert_sent = l.last_alert_sent;
  ff.peer_reset = facts.reset;
  ff.peer_closed = facts.closed;
  ff.timeout = facts.timeout;
  const analysis::Diagnosis d = analysis::diagnose(ff);
  Json f = Json::object();
  f.set("reason", reason);
  f.set("stage", stage);
  f.set("cause", d.cause);
  if (!l.decoder.lastMessage().empty()) f.set("message", l.decoder.lastMessage());
  if (!l.last_alert_sent.empty()) f.set("alert_sent", l.last_alert_sent);
  if (!l.last_alert_received.empty()) f.set("alert_received", l.last_alert_received);
  if (l.verify_failure.error != 0) {
    f.set("verify_error", std::string(X509_verify_cert_error_string(l.verify_failure.error)));
    f.set("verify_depth", l.verify_failure.depth);
  }
  f.set("hint", d.hint);
  l.error_cause = d.cause;
  emit(l.which, "tls.error", std::move(f));
  if (outcome_.empty()) outcome_ = std::string(trace::legName(l.which)) + " " + stage + ": " + reason;
}

void Connection::onEstablished(Leg& l, SteadyClock::time_point at) {
  SSL* ssl = l.tls->ssl();
  l.handshake_ms = std::chrono::duration<double, std::milli>(at - l.hs_start).count();
  l.established = tls::establishedFields(ssl, *l.handshake_ms);
  analysis::KexInput in;
  in.offer = &l.decoder.offer();
  in.choice = &l.decoder.choice();
  in.kex = &l.decoder.kex();
  in.resumed = SSL_session_reused(ssl) == 1;
  X509* server_cert = &l == &upstream_ ? SSL_get0_peer_certificate(ssl) : SSL_get_certificate(ssl);
  if (server_cert)
    if (EVP_PKEY* pk = X509_get0_pubkey(server_cert)) in.server_key_bits = EVP_PKEY_get_bits(pk);
  if (svc_.primes) l.key_exchange = analysis::assessKeyExchange(in, *svc_.primes);
  // OpenSSL 3.0 names no group for TLS 1.2 DHE; the decoded ServerKeyExchange does.
  if (const Json* g = l.key_exchange.find("group");
      g && l.established.find("group")->isNull() && l.decoder.kex().kind == wire::KexKind::Dhe)
    l.established.set("group", *g);
  // The events take the full objects; the connection keeps what conn.summary needs (memory per
  // idle connection).
  using analysis::SummaryInput;
  Json established = std::exchange(l.established, analysis::keepForSummary(SummaryInput::Established, l.established));
  emit(l.which, "tls.established", std::move(established));
  Json kex = std::exchange(l.key_exchange, analysis::keepForSummary(SummaryInput::KeyExchange, l.key_exchange));
  if (!kex.isNull() && tracing(trace::kKeyExchange)) emit(l.which, "tls.key_exchange", std::move(kex));
  if (client_.handshake_ms && upstream_.handshake_ms) settleSummary();
}

Json Connection::fingerprints(Leg& l, bool client_hello) {
  // Kept for conn.summary, which shows the same hashes (computed once per leg, not twice).
  if (!l.prints) l.prints = std::make_unique<analysis::LegFingerprints>();
  Json fp = Json::object();
  if (client_hello) {
    const auto j3 = analysis::ja3(l.decoder.offer());
    l.prints->ja3 = j3.hash;
    l.prints->ja4 = analysis::ja4(l.decoder.offer());
    fp.set("ja3", j3.hash);
    fp.set("ja3_string", j3.text);
    fp.set("ja4", l.prints->ja4);
  } else {
    const auto j3s = analysis::ja3s(l.decoder.choice());
    l.prints->ja3s = j3s.hash;
    l.prints->ja4s = analysis::ja4s(l.decoder.choice());
    fp.set("ja3s", j3s.hash);
    fp.set("ja3s_string", j3s.text);
    fp.set("ja4s", l.prints->ja4s);
  }
  return fp;
}

analysis::LegReport Connection::legReport(const Leg& l) {
  analysis::LegReport r;
  r.offer = &l.decoder.offer();
  r.choice = &l.decoder.choice();
  r.kex = &l.decoder.kex();
  r.established = l.established;
  r.trust = l.trust;
  r.key_exchange = l.key_exchange;
  r.alerts = l.alerts;
  r.connect_ms = l.connect_ms;
  r.handshake_ms = l.handshake_ms;
  r.error_cause = l.error_cause;
  r.was_established = l.handshake_ms.has_value();
  r.prints = l.prints.get();
  return r;
}

// Both handshakes are done, so conn.summary's handshake part is final: render it now and let go
// of what it is made from (both decoders' offer, choice and key exchange; the kept event fields),
// ~3 KiB less per idle connection. The close adds alerts, timings and errors to it.
void Connection::settleSummary() {
  summary_part_ = internSummaryPart(analysis::summaryHandshakePart(legReport(client_), legReport(upstream_)).dump());
  for (Leg* l : {&client_, &upstream_}) {
    l->decoder.releaseHandshake();
    l->prints.reset();
    l->established = Json();
    l->trust = Json();
    l->key_exchange = Json();
  }
}

void Connection::traceTrust(SSL* ssl, const std::string& verify_name) {
  Json trust = tls::trustFields(ssl, verify_name, upstream_.verify_failure, svc_.certs);
  upstream_.trust = analysis::keepForSummary(analysis::SummaryInput::Trust, trust);
  emit(trace::Leg::Upstream, "tls.trust", std::move(trust));
}

// ---------------------------------------------------------------------------------------------
// Observer: OpenSSL callbacks copy bytes into events and return.

void Connection::Observer::onTlsMessage(bool sent, int content_type, std::span<const std::uint8_t> bytes) {
  if (defer_) {
    deferred_.push_back({trace::Clock::now(), false, sent, content_type, {bytes.begin(), bytes.end()}});
    return;
  }
  message(sent, content_type, bytes);
}

void Connection::Observer::onRecordHeader(bool sent, std::span<const std::uint8_t> header) {
  if (defer_) {
    if (conn->tracing(trace::kRecord))
      deferred_.push_back({trace::Clock::now(), true, sent, 0, {header.begin(), header.end()}});
    return;
  }
  recordHeader(sent, header);
}

void Connection::Observer::replayDeferred() {
  defer_ = false;
  if (deferred_.empty()) return;
  auto items = std::move(deferred_);
  deferred_ = {};  // an idle connection keeps no capacity
  for (const auto& d : items) {
    conn->event_ts_ = d.ts;
    if (d.header) recordHeader(d.sent, d.bytes);
    else message(d.sent, d.content_type, d.bytes);
  }
  conn->event_ts_ = {};
}

void Connection::Observer::message(bool sent, int content_type, std::span<const std::uint8_t> bytes) {
  Connection& c = *conn;
  const std::string dir = sent ? "out" : "in";
  if (content_type == SSL3_RT_ALERT) {
    if (bytes.size() < 2) return;
    const std::string level = bytes[0] == 1 ? "warning" : "fatal";
    const std::string desc(wire::alertName(bytes[1]));
    if (bytes[1] != 0) (sent ? leg->last_alert_sent : leg->last_alert_received) = desc;
    leg->alerts.push_back((sent ? "sent " : "received ") + level + " " + desc);
    Json f = Json::object();
    f.set("dir", dir);
    f.set("level", level);
    f.set("description", desc);
    f.set("code", static_cast<int>(bytes[1]));
    c.emit(leg->which, "tls.alert", std::move(f));
    return;
  }
  Json f = Json::object();
  f.set("dir", dir);
  if (content_type == SSL3_RT_CHANGE_CIPHER_SPEC) {
    if (!c.tracing(trace::kHandshake)) return;
    f.set("type", "ChangeCipherSpec");
    f.set("length", bytes.size());
    f.set("body", Json::object());
    c.emit(leg->which, "tls.message", std::move(f));
    return;
  }
  const bool from_client = c.fromClient(*leg, sent);
  if (!sent && leg == &c.client_ && c.hello_traced_ && !bytes.empty() && bytes[0] == 1) {
    c.hello_traced_ = false;  // already traced (and decoded) from the raw bytes
    return;
  }
  // Decoded even when not traced: the analysis and the summary need what the messages said.
  auto desc = leg->decoder.describe(bytes, from_client);
  if (!bytes.empty() && bytes[0] == 24) c.onKeyUpdate(*leg, from_client);
  if (!c.tracing(trace::kHandshake)) return;
  f.set("type", desc.type);
  f.set("length", desc.length);
  f.set("body", std::move(desc.body));
  if (desc.type == "ClientHello" && leg->decoder.offer().seen) f.set("fingerprints", c.fingerprints(*leg, true));
  else if (desc.type == "ServerHello" && leg->decoder.choice().seen) f.set("fingerprints", c.fingerprints(*leg, false));
  c.emit(leg->which, "tls.message", std::move(f));
}

void Connection::Observer::recordHeader(bool sent, std::span<const std::uint8_t> header) {
  Connection& c = *conn;
  if (!c.tracing(trace::kRecord) || header.size() < 5) return;
  // RFC 8446 5.1: type(1) legacy_record_version(2) length(2).
  trace::FlatFields f;
  f.kind = trace::FlatFields::Kind::Record;
  f.in = !sent;
  f.content_type = header[0];
  f.version = static_cast<std::uint16_t>((header[1] << 8) | header[2]);
  f.length = static_cast<std::uint64_t>((header[3] << 8) | header[4]);
  c.emitFlat(leg->which, "tls.record", f);
}

void Connection::Observer::onKeylog(std::string_view line) {
  Connection& c = *conn;
  if (c.svc_.keylog) c.svc_.keylog->writeLine(line);
  if (c.svc_.tap) c.svc_.tap->secret(line);
  if (!c.tracing(trace::kKeys)) return;
  // Its events follow the messages reported before it (and tls.keys reads the handshake's
  // current cipher): no deferring past this point in this step.
  if (defer_) {
    replayDeferred();
    defer_ = true;
  }
  // NSS key log line: LABEL <client_random hex> <secret hex>.
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return;
  Json f = Json::object();
  f.set("label", std::string(line.substr(0, sp1)));
  f.set("client_random", std::string(line.substr(sp1 + 1, sp2 - sp1 - 1)));
  if (c.svc_.cfg->log_secrets) f.set("secret", std::string(line.substr(sp2 + 1)));
  c.emit(leg->which, "tls.secret", std::move(f));
  if (c.svc_.cfg->log_secrets)
    c.deriveKeys(*leg, line.substr(0, sp1), wire::fromHex(line.substr(sp1 + 1, sp2 - sp1 - 1)),
                 wire::fromHex(line.substr(sp2 + 1)));
}

// ---------------------------------------------------------------------------------------------
// Derived keys (tls.keys), only with --log-secrets.

void Connection::emitKeys(Leg& l, const char* direction, const std::string& epoch, const tls::TrafficKeys& k) {
  Json f = Json::object();
  f.set("direction", direction);
  f.set("epoch", epoch);
  f.set("key", wire::toHex(k.key.bytes()));
  f.set("iv", wire::toHex(k.iv.bytes()));
  if (!k.mac_key.empty()) f.set("mac_key", wire::toHex(k.mac_key.bytes()));
  emit(l.which, "tls.keys", std::move(f));
}

void Connection::deriveKeys(Leg& l, std::string_view label, const std::vector<std::uint8_t>& client_random,
                            const std::vector<std::uint8_t>& secret) {
  SSL* ssl = l.tls ? l.tls->ssl() : nullptr;
  if (!ssl || !tracing(trace::kKeys)) return;
  const SSL_CIPHER* cipher = SSL_get_pending_cipher(ssl);
  if (!cipher) cipher = SSL_get_current_cipher(ssl);
  const auto version = static_cast<std::uint16_t>(SSL_version(ssl));
  auto params = tls::cipherParams(cipher, version);
  if (!params) return;
  if (label == "CLIENT_RANDOM") {  // TLS <= 1.2: the master secret
    std::vector<std::uint8_t> server_random(SSL3_RANDOM_SIZE);
    server_random.resize(SSL_get_server_random(ssl, server_random.data(), server_random.size()));
    if (auto kb = tls::tls12KeyBlock(*params, version, secret, client_random, server_random)) {
      emitKeys(l, "client_write", "application", kb->client_write);
      emitKeys(l, "server_write", "application", kb->server_write);
    }
    return;
  }
  const bool client = label.starts_with("CLIENT_");
  const bool handshake = label.find("HANDSHAKE") != std::string_view::npos;
  const bool app = label.ends_with("TRAFFIC_SECRET_0");
  if (!handshake && !app) return;  // EXPORTER_SECRET, EARLY_EXPORTER_SECRET
  if (app) (client ? l.app_secret_client : l.app_secret_server) = tls::SecretBytes(secret);
  if (auto k = tls::tls13TrafficKeys(*params, secret))
    emitKeys(l, client ? "client_write" : "server_write", handshake ? "handshake" : "application", *k);
}

void Connection::onKeyUpdate(Leg& l, bool from_client) {
  // RFC 8446 7.2: the sender's next application traffic secret; traced as the next generation.
  tls::SecretBytes& secret = from_client ? l.app_secret_client : l.app_secret_server;
  if (secret.empty() || !l.tls) return;
  const SSL_CIPHER* cipher = SSL_get_current_cipher(l.tls->ssl());
  auto params = tls::cipherParams(cipher, TLS1_3_VERSION);
  if (!params) return;
  auto next = tls::tls13NextSecret(params->hash, secret.bytes());
  if (!next) return;
  secret = std::move(*next);
  if (auto k = tls::tls13TrafficKeys(*params, secret.bytes()))
    emitKeys(l, from_client ? "client_write" : "server_write", std::to_string(l.decoder.keyUpdates(from_client)), *k);
}

const std::string* Connection::Observer::alpnChoice() {
  return conn->alpn_known_ && !conn->alpn_choice_.empty() ? &conn->alpn_choice_ : nullptr;
}

int Connection::Observer::clientHelloAbortAlert() { return conn->abort_alert_; }

void Connection::Observer::onVerifyError(tls::VerifyFailure&& failure) {
  if (leg->verify_failure.error == 0) leg->verify_failure = std::move(failure);
}

// ---------------------------------------------------------------------------------------------
// Relay: one read in flight per direction, and no new read until the other leg has written what
// the last one produced (backpressure through bounded buffers, never a growing queue).

void Connection::startRelay() {
  state_ = State::Relaying;
  touch();
  std::vector<std::uint8_t>().swap(inbuf_);  // the hello is long replayed; give its memory back
  if (upstream_.tls) relay(upstream_, {});   // plaintext the server sent along with its Finished
  if (client_.tls) relay(client_, {});
  readFrom(client_);
  readFrom(upstream_);
  flush(upstream_);
  flush(client_);
}

std::size_t Connection::queued(const Leg& l) {
  return (l.writing ? l.wbuf.size() : 0) + l.pending.size() + (l.tls ? l.tls->pendingOut() : 0);
}

void Connection::readFrom(Leg& l) {
  if (finished_ || !l.open || l.reading || l.fin_seen || l.dead) return;
  if (state_ == State::Relaying && queued(other(l)) >= kHighWater) {
    l.paused = true;
    return;
  }
  readSome(l, [this, &l](std::span<const std::uint8_t> bytes) { onRead(l, bytes); });
}

void Connection::onRead(Leg& l, std::span<const std::uint8_t> bytes) {
  // The bytes sit in the thread's read buffer, which the next read on this thread overwrites:
  // OpenSSL reads them in place, and only what it leaves unread (a partial record) is copied.
  if (l.tls) l.tls->lend(bytes);
  step(l, bytes);
  if (l.tls) l.tls->keepRest();
}

void Connection::step(Leg& l, std::span<const std::uint8_t> bytes) {
  switch (state_) {
    case State::UpstreamHandshake:
      if (&l == &upstream_) return stepUpstreamHandshake();
      return;
    case State::ClientHandshake:
      if (&l == &client_) return stepClientHandshake();
      // Server data during the client handshake stays buffered in its engine until the relay.
      return;
    case State::Relaying:
      if (l.eos) return readFrom(l);  // after close_notify: only waiting for FIN
      return relay(l, l.tls ? std::span<const std::uint8_t>{} : bytes);
    case State::Closing: return readFrom(l);  // drain until the peer's FIN while our close is under way
    default: return;
  }
}

void Connection::onReadError(Leg& l, const boost::system::error_code& ec) {
  if (ec == werr::operation_aborted) return;
  if (ec == werr::eof) {
    tapFin(l, true);
    l.fin_seen = true;
    if (l.by.empty()) {
      l.by = "peer";
      l.how = "fin";
    }
    if (state_ == State::Relaying) return endOfStream(l);
    if (state_ == State::Closing) return maybeFinish();
    const std::string stage = state_ == State::ReadingRequest ? "request" : "handshake";
    if (state_ == State::ReadingRequest && inbuf_.empty()) {
      outcome_ = "client closed before sending a request";
      return closeGracefully(outcome_);
    }
    traceTlsError(l, std::string(trace::legName(l.which)) + " closed the connection (FIN) during the " + stage, stage,
                  ErrorFacts{false, true});
    return closeGracefully(outcome_);
  }
  const bool reset = ec == werr::connection_reset;
  if (reset) tapRst(l, true);
  abortLeg(l, reset ? "rst" : "error", reset ? "connection reset by peer" : ec.message());
  tapCommit();
}

void Connection::relay(Leg& src, std::span<const std::uint8_t> plain_in) {
  Leg& dst = other(src);
  static thread_local std::vector<std::uint8_t> plain;  // reused: no allocation per record
  plain.clear();
  bool closed = false;
  bool passed = false;  // something went to dst
  if (src.tls) {
    // Large records go out as they are decrypted, without gathering them first (a bulk transfer
    // copies 16 KiB less per record); small ones are gathered so that they leave in as few records
    // as they came. With data or record events on, everything is gathered: their order stays
    // all records read, the data event, then the records written.
    const bool gather = !dst.tls || tracing(trace::kData) || tracing(trace::kRecord);
    constexpr std::size_t kPassDirect = 4096;
    bool dst_failed = false;
    const auto st = src.tls->readEach([&](std::span<const std::uint8_t> p) {
      if (gather || !plain.empty() || p.size() < kPassDirect) {
        plain.insert(plain.end(), p.begin(), p.end());
        return true;
      }
      passed = true;
      dst_failed = !passOn(src, dst, p);
      return !dst_failed;
    });
    if (dst_failed) return;
    flush(src);  // e.g. a KeyUpdate answer
    if (st == tls::TlsEngine::Status::Error) {
      traceTlsError(src, src.tls->error(), "data");
      return abortLeg(src, "error", src.tls->error());
    }
    closed = st == tls::TlsEngine::Status::Closed;
    plain_in = plain;
  }
  if (!plain_in.empty()) {
    if (tracing(trace::kData)) {
      emitFlat(src.which, "data", trace::FlatFields::data(true, plain_in));
    }
    if (!passOn(src, dst, plain_in)) return;
    passed = true;
  }
  if (passed) flush(dst);
  if (closed) {
    endOfStream(src);
    return readFrom(src);  // keep reading for the FIN
  }
  readFrom(src);
}

bool Connection::passOn(Leg& src, Leg& dst, std::span<const std::uint8_t> plain) {
  (&src == &client_ ? c2s_ : s2c_) += plain.size();
  if (!dst.tls) {
    dst.pending.insert(dst.pending.end(), plain.begin(), plain.end());
    return true;
  }
  if (dst.tls->write(plain) != tls::TlsEngine::Status::Error) return true;
  traceTlsError(dst, dst.tls->error(), "data");
  abortLeg(dst, "error", dst.tls->error());
  return false;
}

void Connection::endOfStream(Leg& src) {
  if (src.eos) return maybeFinish();
  src.eos = true;
  Leg& dst = other(src);
  if (dst.open && !dst.dead && !dst.shut_after_flush) {
    // Pass the half-close on: close_notify then FIN, while the other direction keeps flowing.
    if (dst.tls && dst.tls->handshakeDone()) dst.tls->shutdown();
    dst.shut_after_flush = true;
    flush(dst);
  }
  maybeFinish();
}

void Connection::flush(Leg& l) {
  if (finished_ || !l.open || l.writing || l.dead) return;
  l.wbuf.clear();
  if (l.wbuf.capacity() == 0) l.wbuf = tls::borrowBuffer(kMaxWriteChunk);  // given back when the leg drains
  if (!l.pending.empty()) {
    const std::size_t n = std::min(l.pending.size(), kMaxWriteChunk);
    l.wbuf.assign(l.pending.begin(), l.pending.begin() + static_cast<std::ptrdiff_t>(n));
    l.pending.erase(l.pending.begin(), l.pending.begin() + static_cast<std::ptrdiff_t>(n));
  }
  if (l.tls && l.wbuf.size() < kMaxWriteChunk) (void)l.tls->takeOut(l.wbuf, kMaxWriteChunk - l.wbuf.size());
  if (l.wbuf.empty()) return onDrained(l);
  l.writing = true;
  auto self = shared_from_this();
  asio::async_write(l.sock, asio::buffer(l.wbuf), [this, self, &l](boost::system::error_code ec, std::size_t n) {
    CommitOnExit commit{this};
    l.writing = false;
    if (finished_) return;
    if (ec) {
      if (ec == werr::operation_aborted) return;
      const bool reset = ec == werr::connection_reset || ec == werr::broken_pipe;
      return abortLeg(l, reset ? "rst" : "error", "write failed: " + ec.message());
    }
    touch();
    l.bytes_out += n;
    tapData(l, false, std::span(l.wbuf.data(), n));
    flush(l);
    resumeOther(l);
  });
}

void Connection::onDrained(Leg& l) {
  // Nothing in flight: the write buffer goes back to the thread's pool (an idle leg holds none).
  // Once the handshake flights are out, OpenSSL's record buffers go too (once: a busy leg would
  // reallocate them per burst).
  if (!l.writing && l.pending.empty()) {
    tls::returnBuffer(l.wbuf);
    if (state_ == State::Relaying && !l.compacted) {
      l.compacted = true;
      if (l.tls) l.tls->compact();
    }
  }
  if (l.shut_after_flush && !l.shut_sent) {
    boost::system::error_code ec;
    l.sock.shutdown(tcp::socket::shutdown_send, ec);
    l.shut_sent = true;
    tapFin(l, false);
    if (l.by.empty()) {
      l.by = "proxy";
      l.how = "fin";
    }
  }
  resumeOther(l);
  maybeFinish();
}

void Connection::resumeOther(Leg& l) {
  Leg& src = other(l);
  if (src.paused && state_ == State::Relaying && queued(l) < kLowWater) {
    src.paused = false;
    readFrom(src);
  }
}

void Connection::abortLeg(Leg& l, const std::string& how, const std::string& why) {
  if (l.by.empty()) {
    l.by = "peer";
    l.how = how;
  }
  l.dead = true;
  boost::system::error_code ec;
  l.sock.close(ec);
  if (outcome_.empty()) outcome_ = std::string(trace::legName(l.which)) + ": " + why;
  const ErrorFacts facts{how == "rst"};
  if (state_ == State::UpstreamHandshake && &l == &upstream_) {
    traceTlsError(l, why, "handshake", facts);
    return abortClientHandshake("upstream handshake failed: " + why);
  }
  if (state_ == State::ClientHandshake && &l == &client_) traceTlsError(l, why, "handshake", facts);
  closeGracefully(outcome_);
}

void Connection::closeGracefully(const std::string& outcome) {
  if (finished_) return;
  if (outcome_.empty()) outcome_ = outcome;
  if (state_ != State::Closing) {
    state_ = State::Closing;
    auto self = shared_from_this();
    watchdog_.expires_after(kCloseGrace);
    watchdog_.async_wait([this, self](boost::system::error_code ec) {
      CommitOnExit commit{this};
      if (!ec && !finished_) finish();
    });
  }
  for (Leg* l : {&client_, &upstream_}) {
    if (!l->open || l->dead || l->shut_after_flush) continue;
    if (l->tls && l->tls->handshakeDone()) l->tls->shutdown();
    l->shut_after_flush = true;
    flush(*l);
  }
  maybeFinish();
}

void Connection::maybeFinish() {
  if (finished_) return;
  auto done = [](const Leg& l) { return !l.open || l.dead || (l.shut_sent && !l.writing); };
  if (state_ == State::Closing) {
    if (done(client_) && done(upstream_)) finish();
    return;
  }
  if (state_ == State::Relaying) {
    auto finished_dir = [&](const Leg& src) { return src.eos || src.dead || !src.open; };
    if (finished_dir(client_) && finished_dir(upstream_) && done(client_) && done(upstream_)) finish();
  }
}

void Connection::finish() {
  if (finished_) return;
  settleUpstream();
  finished_ = true;
  state_ = State::Done;
  watchdog_.cancel();
  connect_timer_.cancel();
  resolver_.cancel();
  for (Leg* l : {&client_, &upstream_}) {
    if (!l->open) continue;
    if (!l->dead) tapFin(*l, false);  // closing the socket sends our FIN if not sent yet
    if (svc_.tap) svc_.tap->close(id_, l->which);
    boost::system::error_code ec;
    l->sock.close(ec);
    if (l->by.empty()) {
      l->by = "proxy";
      l->how = "fin";
    }
    Json f = Json::object();
    f.set("by", l->by);
    f.set("how", l->how);
    f.set("bytes_in", l->bytes_in);
    f.set("bytes_out", l->bytes_out);
    f.set("duration_ms", msSince(l->opened));
    emit(l->which, "tcp.close", std::move(f));
  }
  if (summary_part_) {
    if (!summary_part_->tree) summary_part_->tree = Json::parse(summary_part_->text).value_or(Json());
    emit(trace::Leg::None, "conn.summary",
         analysis::completeSummary(*summary_part_->tree, legReport(client_), legReport(upstream_)));
  } else if (client_.decoder.offer().seen || upstream_.decoder.offer().seen) {
    emit(trace::Leg::None, "conn.summary", analysis::buildSummary(legReport(client_), legReport(upstream_)));
  }
  Json f = Json::object();
  f.set("duration_ms", msSince(start_));
  f.set("bytes_client_to_server", c2s_);
  f.set("bytes_server_to_client", s2c_);
  f.set("outcome", outcome_.empty() ? std::string("ok") : outcome_);
  emit(trace::Leg::None, "conn.close", std::move(f));
  tapCommit();
  // Release TLS state now; the object itself goes when the last handler holding it returns.
  client_.tls.reset();
  upstream_.tls.reset();
  if (on_done_) on_done_(id_);
}

void Connection::stop(const std::string& why) {
  if (finished_) return;
  if (outcome_.empty()) outcome_ = why;
  closeGracefully(why);
}

// ---------------------------------------------------------------------------------------------
// Handshake and idle timeouts.

void Connection::armWatchdog() {
  const auto hs =
      std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(svc_.cfg->handshake_timeout_s));
  const auto idle =
      std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(svc_.cfg->idle_timeout_s));
  const auto deadline = state_ == State::Relaying ? last_activity_ + idle : start_ + hs;
  auto self = shared_from_this();
  watchdog_.expires_at(deadline);
  watchdog_.async_wait([this, self](boost::system::error_code ec) {
    CommitOnExit commit{this};
    if (ec || finished_ || state_ == State::Closing) return;
    onWatchdog();
  });
}

void Connection::onWatchdog() {
  const auto now = SteadyClock::now();
  const bool relaying = state_ == State::Relaying;
  const auto limit = std::chrono::duration<double>(relaying ? svc_.cfg->idle_timeout_s : svc_.cfg->handshake_timeout_s);
  const auto since = now - (relaying ? last_activity_ : start_);
  if (since < limit) return armWatchdog();
  const std::string why = relaying ? "idle timeout" : "handshake timeout";
  for (Leg* l : {&client_, &upstream_}) {
    if (l->open && l->by.empty()) {
      l->by = "proxy";
      l->how = "timeout";
    }
  }
  outcome_ = why;
  if (relaying) return closeGracefully(why);
  const std::string detail = why + " after " + std::to_string(svc_.cfg->handshake_timeout_s) + " s";
  switch (state_) {
    case State::UpstreamHandshake:
    case State::Connecting:
      if (state_ == State::Connecting && svc_.cfg->mode == config::Mode::Explicit && inbuf_.empty() &&
          !client_.decoder.offer().seen)
        return respondAndClose(
            504, "upstream did not answer within " + std::to_string(svc_.cfg->handshake_timeout_s) + " s");
      // The upstream leg stalled: say so there, and give the waiting client an alert.
      traceTlsError(upstream_, detail, "handshake", ErrorFacts{false, false, true});
      return abortClientHandshake("upstream " + detail);
    case State::ReadingRequest:
      traceTlsError(client_, "no complete request " + detail, "request", ErrorFacts{false, false, true});
      break;
    default: traceTlsError(client_, detail, "handshake", ErrorFacts{false, false, true}); break;
  }
  closeGracefully(why);
}

// ---------------------------------------------------------------------------------------------
// Capture. The client leg's initiator is the client; the upstream leg's is the proxy.

void Connection::tapOpen(Leg& l) {
  if (!svc_.tap) return;
  boost::system::error_code e1, e2;
  const auto local = l.sock.local_endpoint(e1), remote = l.sock.remote_endpoint(e2);
  if (e1 || e2) return;
  if (&l == &client_) svc_.tap->open(id_, l.which, toEndpoint(remote), toEndpoint(local), trace::Clock::now());
  else svc_.tap->open(id_, l.which, toEndpoint(local), toEndpoint(remote), trace::Clock::now());
}

void Connection::tapData(Leg& l, bool inbound, std::span<const std::uint8_t> bytes) {
  if (svc_.tap) svc_.tap->data(id_, l.which, (&l == &client_) == inbound, bytes, trace::Clock::now());
}

void Connection::tapFin(Leg& l, bool inbound) {
  if (svc_.tap) svc_.tap->fin(id_, l.which, (&l == &client_) == inbound, trace::Clock::now());
}

void Connection::tapRst(Leg& l, bool inbound) {
  if (svc_.tap) svc_.tap->rst(id_, l.which, (&l == &client_) == inbound, trace::Clock::now());
}

void Connection::tapCommit() {
  // End of a burst of work: captures and trace sinks write out what it produced.
  if (svc_.tap) svc_.tap->commit();
  if (!events_.empty()) svc_.tracer->submit(events_);
}

}  // namespace tlstrace::net
