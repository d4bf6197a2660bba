// ProxySession: inputs, events and the front of a connection (request, connect, TLS detection).
// The TLS legs are in session_tls.cpp, relay and closing in session_relay.cpp.
#include "session/proxy_session.h"

#include <utility>

#include "analysis/diagnose.h"
#include "config/upstream_proxy.h"
#include "session/passthrough.h"
#include "tls/cert_summary.h"
#include "trace/tcp_events.h"
#include "wire/handshake.h"
#include "wire/registry.h"

namespace tlstrace::session {

namespace {

bool looksLikeHttp(std::span<const std::uint8_t> b) {
  static constexpr std::string_view kMethods[] = {"GET ",     "POST ",    "HEAD ",  "PUT ",  "DELETE ",
                                                  "OPTIONS ", "CONNECT ", "PATCH ", "TRACE "};
  const std::string_view s(reinterpret_cast<const char*>(b.data()), b.size());
  for (auto m : kMethods)
    if (s.starts_with(m)) return true;
  return false;
}

}  // namespace

ProxySession::Leg::Leg(trace::Leg w, tls::CertSummaryCache* certs) : which(w), decoder(tls::derDecoders(certs)) {}

ProxySession::ProxySession(const Deps& deps, const FrontEnd& front, std::uint64_t id)
    : deps_(deps),
      front_(front),
      id_(id),
      client_(trace::Leg::Client, deps.certs),
      upstream_(trace::Leg::Upstream, deps.certs) {
  client_.obs.s = this;
  client_.obs.leg = &client_;
  upstream_.obs.s = this;
  upstream_.obs.leg = &upstream_;
}

ProxySession::~ProxySession() { commitEvents(); }

void ProxySession::commitEvents() {
  if (!events_.empty()) deps_.tracer->submit(events_);
}

const std::vector<Action>& ProxySession::handle(Input input) {
  actions_.clear();
  if (finished_) return actions_;
  if (hello_pending_) traceClientHello();
  std::visit(Overloaded{
                 [this](const in::Start& s) { onStart(s); },
                 [this](const in::Bytes& b) { onBytes(leg(b.leg), b.bytes); },
                 [this](const in::Connected& c) { onConnected(c); },
                 [this](const in::ConnectFailed& f) { onConnectFailed(f); },
                 [this](const in::TargetRefused& r) { onTargetRefused(r); },
                 [this](const in::Closed& c) { onClosed(leg(c.leg), c); },
                 [this](const in::Written& w) { onWritten(leg(w.leg), w.n); },
                 [this](const in::WriteFailed& w) {
                   Leg& l = leg(w.leg);
                   l.t.writing = false;
                   abortLeg(l, w.reset ? "rst" : "error", "write failed: " + w.why);
                 },
                 [this](const in::TimerFired&) { onTimer(); },
                 [this](const in::Stop& s) {
                   if (outcome_.empty()) outcome_ = s.why;
                   closeGracefully(s.why);
                 },
                 [this](const in::PrimeTested& t) { onPrimeTested(leg(t.leg), t); },
             },
             input);
  return actions_;
}

bool ProxySession::tracing(trace::Category c) const { return deps_.tracer->enabled(c); }

void ProxySession::newEvent(trace::Leg leg, trace::Payload&& what) {
  settleUpstream();  // its events come first, whatever path emits next
  // Held until the end of the burst (commitEvents): one queue lock per burst, not per event, and
  // no allocation per burst (the batch's storage comes back from the writer).
  if (events_.capacity() == 0) events_ = deps_.tracer->newBatch();
  const auto ts = event_ts_ == trace::Clock::time_point{} ? trace::Clock::now() : event_ts_;
  events_.emplace_back(ts, id_, leg, std::move(what));
}

// ---------------------------------------------------------------------------------------------
// Inputs

void ProxySession::onStart(const in::Start& s) {
  start_ = last_activity_ = deps_.now();
  client_addr_ = s.client;
  client_.t.open = true;
  client_.opened = start_;
  if (deps_.audit_plan) {
    audit_ = std::make_unique<AuditState>();
    audit_->client = s.client;
  }
  trace::ev::ConnOpen open{s.client, s.listen, std::string(config::modeName(front_.mode())), {}};
  const auto fixed = front_.fixedTarget();
  if (fixed) {
    target_ = *fixed;
    open.target = fixed->str();
  }
  emit(trace::Leg::None, std::move(open));
  if (!s.syn.empty()) emit(trace::Leg::Client, trace::synEvent(s.syn));
  if (s.tcp) emit(trace::Leg::Client, *s.tcp);
  armWatchdog();
  state_ = fixed ? State::PeekingHello : State::ReadingRequest;
  // A STARTTLS server speaks first (or answers the client's request): connect at once.
  if (fixed && startTlsProto()) return connectUpstream(AfterConnect::StartTls);
  readFrom(client_);
}

void ProxySession::onBytes(Leg& l, std::span<const std::uint8_t> bytes) {
  l.t.reading = false;
  touch();
  l.bytes_in += bytes.size();
  if (state_ == State::StartTls) return onStartTlsBytes(l, bytes);
  if (state_ == State::ReadingRequest || (state_ == State::PeekingHello && &l == &client_)) {
    inbuf_.insert(inbuf_.end(), bytes.begin(), bytes.end());
    return state_ == State::ReadingRequest ? onRequestBytes() : onHelloBytes();
  }
  if (state_ == State::PeekingHello) return serverSpokeFirst(bytes);
  // The bytes are the driver's (its read buffer, reused by the next read): OpenSSL reads them in
  // place, and only what it leaves unread (a partial record) is copied.
  if (l.tls) l.tls->lend(bytes);
  step(l, bytes);
  if (l.tls) l.tls->keepRest();
}

void ProxySession::onConnected(const in::Connected& c) {
  upstream_.t.open = true;
  upstream_.opened = deps_.now();
  upstream_.connect_ms = trace::timingMs(c.connect_ms);
  upstream_.bytes_in += c.hop_bytes_in;
  upstream_.bytes_out += c.hop_bytes_out;
  trace::ev::TcpConnect tc{c.peer, c.local, target_.str(), upstream_.connect_ms, {}};
  if (via_) {
    tc.via = via_->url;
    tc.hop = "target";
    tc.proxy_status = c.proxy_status;
    tc.proxy_reply = c.proxy_reply;
    if (c.tunnel_ms) tc.tunnel_ms = trace::timingMs(*c.tunnel_ms);
  }
  emit(trace::Leg::Upstream, std::move(tc));
  if (c.tcp) emit(trace::Leg::Upstream, *c.tcp);
  if (after_connect_ == AfterConnect::TunnelReply)
    connected_bytes_ = front_.connectedReply(std::move(connected_bytes_), c.local);
  if (state_ != State::Connecting) {
    // The session gave up waiting (a timeout, a stop) while the connection was being made: it
    // is closed with the rest.
    after_connect_ = AfterConnect::None;
    return closeGracefully(outcome_);
  }
  afterConnect();
}

void ProxySession::onConnectFailed(const in::ConnectFailed& cf) {
  const std::string peer = target_.str();
  std::optional<double> connect_ms;
  if (cf.connect_ms) connect_ms = trace::timingMs(*cf.connect_ms);
  trace::ev::TcpConnect tc{cf.peer.empty() ? peer : cf.peer, {}, {}, connect_ms, cf.why};
  if (!cf.local.empty()) tc.local = cf.local;
  if (via_) {
    tc.target = peer;
    tc.via = via_->url;
    tc.hop = cf.hop.empty() ? "proxy" : cf.hop;
    if (cf.proxy_status >= 0) tc.proxy_status = cf.proxy_status;
    if (!cf.proxy_reply.empty()) tc.proxy_reply = cf.proxy_reply;
  }
  emit(trace::Leg::Upstream, std::move(tc));
  if (cf.closed) {  // the connection to the upstream proxy was made, and is over
    const auto& c = *cf.closed;
    if (c.tcp && tracing(trace::kTcp)) emit(trace::Leg::Upstream, *c.tcp);
    trace::ev::TcpClose close{c.by, c.how, c.bytes_in, c.bytes_out, trace::timingMs(c.open_ms), {}, {}, {}};
    if (deps_.cfg->tcp_states && c.how == "fin") close.time_wait = c.by;
    emit(trace::Leg::Upstream, std::move(close));
  }
  if (state_ != State::Connecting) return;  // given up already (see onConnected)
  if (via_) traceProxyHopFailure(cf);
  connect_errno_ = cf.err;
  if (outcome_.empty()) outcome_ = "upstream " + peer + ": " + cf.why;
  connectFailed(cf.status, "cannot reach " + peer + ": " + cf.why);
}

void ProxySession::onTargetRefused(const in::TargetRefused& r) {
  if (state_ != State::Connecting) return;
  std::optional<std::string> cause;
  if (auto own = front_.failureReply(403, 0)) cause = own->cause;  // (SOCKS5: not_allowed)
  emit(trace::Leg::None, trace::ev::ConnRefused{r.client, r.why, std::move(cause)});
  if (outcome_.empty()) outcome_ = r.why;
  connectFailed(403, r.why);
}

void ProxySession::onClosed(Leg& l, const in::Closed& c) {
  l.t.reading = false;
  if (c.how != in::Closed::How::Fin) {
    const bool reset = c.how == in::Closed::How::Rst;
    return abortLeg(l, reset ? "rst" : "error", reset ? "connection reset by peer" : c.why);
  }
  l.t.fin_seen = true;
  // Our FIN went out before this one was read; the kernel says whether the peer's was first.
  if (l.by.empty() || (c.peer_fin_first && l.how == "fin" && l.t.shut_sent)) {
    l.by = "peer";
    l.how = "fin";
  }
  if (state_ == State::Relaying) return endOfStream(l, !l.tls || l.t.eos);
  if (state_ == State::ProbeTickets) return probeDone();
  if (state_ == State::StartTls) return onStartTlsClosed(l);
  if (state_ == State::Closing) {
    if (l.t.await_fin) {  // after the peer's fatal alert: now our FIN
      l.t.await_fin = false;
      l.t.shut_after_flush = true;
      flush(l);
    }
    return maybeFinish();
  }
  const std::string stage = state_ == State::ReadingRequest ? "request" : "handshake";
  if (state_ == State::ReadingRequest && inbuf_.empty()) {
    outcome_ = "client closed before sending a request";
    return closeGracefully(outcome_);
  }
  traceTlsError(l, std::string(trace::legName(l.which)) + " closed the connection (FIN) during the " + stage, stage,
                ErrorFacts{false, true});
  closeGracefully(outcome_);
}

void ProxySession::onWritten(Leg& l, std::size_t n) {
  l.t.writing = false;
  touch();
  l.bytes_out += n;
  flush(l);
  resumeOther(l);
}

void ProxySession::onTimer() {
  if (state_ == State::Closing) return finish();  // the close grace period is over
  if (state_ == State::ProbeTickets) return probeDone();
  onWatchdog();
}

// ---------------------------------------------------------------------------------------------
// Front end: what the client asks for

void ProxySession::onRequestBytes() {
  FrontStep st = front_.onClientBytes(inbuf_);
  if (st.interim.size() > interim_sent_) {  // e.g. SOCKS5's method selection: before any other answer
    client_.pending.insert(client_.pending.end(), st.interim.begin() + static_cast<std::ptrdiff_t>(interim_sent_),
                           st.interim.end());
    interim_sent_ = st.interim.size();
    flush(client_);
  }
  using K = FrontStep::Kind;
  switch (st.kind) {
    case K::NeedMore: return readFrom(client_);
    case K::Refuse:
      if (!st.cause.empty()) return refuseWith(st.reply, st.reason, st.cause);
      return respondAndClose(st.status, st.reason, st.headers);
    case K::Answer:
      // A request to the proxy itself (the CA page): the path stands where a target would.
      emit(trace::Leg::Client, trace::ev::ProxyRequest{st.method, st.reason});
      client_.pending.insert(client_.pending.end(), st.head.begin(), st.head.end());
      if (outcome_.empty()) outcome_ = "served " + st.reason + " (the proxy's CA page)";
      return closeGracefully(outcome_);
    case K::Detect:
      target_ = st.target;
      state_ = State::PeekingHello;
      return onHelloBytes();
    case K::Tunnel:
    case K::Forward: break;
  }
  target_ = st.target;
  inbuf_.erase(inbuf_.begin(), inbuf_.begin() + static_cast<std::ptrdiff_t>(st.consumed));
  emit(trace::Leg::Client, trace::ev::ProxyRequest{st.method, st.target.str()});
  if (st.kind == K::Tunnel) {
    connected_bytes_ = std::move(st.reply);
    return connectUpstream(AfterConnect::TunnelReply);
  }
  connected_bytes_ = std::move(st.head);
  connectUpstream(AfterConnect::Forward);
}

void ProxySession::respondAndClose(int status, const std::string& reason, const std::string& extra_headers) {
  if (auto own = front_.failureReply(status, connect_errno_))  // a 403's conn.refused is out already
    return refuseWith(own->bytes, reason, status == 403 ? std::string() : own->cause);
  emit(trace::Leg::Client, trace::ev::ProxyError{status, reason});
  const std::string resp = httpErrorResponse(status, reason, extra_headers);
  client_.pending.insert(client_.pending.end(), resp.begin(), resp.end());
  if (outcome_.empty()) outcome_ = reason;
  closeGracefully(outcome_);
}

// The front end's own refusal (SOCKS5 reply codes): its bytes, conn.refused with the cause, close.
void ProxySession::refuseWith(const std::string& reply, const std::string& reason, const std::string& cause) {
  if (!cause.empty()) emit(trace::Leg::None, trace::ev::ConnRefused{client_addr_, reason, cause});
  client_.pending.insert(client_.pending.end(), reply.begin(), reply.end());
  if (outcome_.empty()) outcome_ = reason;
  closeGracefully(outcome_);
}

void ProxySession::connectUpstream(AfterConnect then) {
  state_ = State::Connecting;
  after_connect_ = then;
  const config::UpstreamProxy* up = deps_.upstream_proxy;
  via_ = up && up->usedFor(target_.host, target_.port) ? up : nullptr;
  actions_.push_back(
      act::Connect{target_.host, target_.port, deps_.cfg->connect_timeout_s, !front_.fixedTarget().has_value(), via_});
}

void ProxySession::afterConnect() {
  switch (std::exchange(after_connect_, AfterConnect::None)) {
    case AfterConnect::TunnelReply:
      client_.pending.insert(client_.pending.end(), connected_bytes_.begin(), connected_bytes_.end());
      std::string().swap(connected_bytes_);
      flush(client_);
      if (startTlsProto()) return beginStartTls();
      state_ = State::PeekingHello;
      // The server may speak first (SSH, SMTP, FTP banners): its bytes are awaited along with the
      // client's first ones, and decide for plain TCP if they come first (serverSpokeFirst). The
      // connection is up already (CONNECT is answered once connected), so this costs no more than
      // the read the upstream handshake would start anyway (it stays out, and is that read).
      readFrom(upstream_);
      if (inbuf_.empty()) return readFrom(client_);
      return onHelloBytes();
    case AfterConnect::Forward:
      upstream_.pending.insert(upstream_.pending.end(), connected_bytes_.begin(), connected_bytes_.end());
      std::string().swap(connected_bytes_);
      return startPlainRelay();
    case AfterConnect::PlainRelay: return startPlainRelay();
    case AfterConnect::UpstreamTls: return startUpstreamTls();
    case AfterConnect::StartTls: return beginStartTls();
    case AfterConnect::None: return;
  }
}

void ProxySession::connectFailed(int status, const std::string& why) {
  switch (std::exchange(after_connect_, AfterConnect::None)) {
    case AfterConnect::TunnelReply:
    case AfterConnect::Forward: return respondAndClose(status, why);
    case AfterConnect::PlainRelay:
    case AfterConnect::StartTls: return closeGracefully(why);
    case AfterConnect::UpstreamTls: return abortClientHandshake(why);
    case AfterConnect::None: return;
  }
}

// The client's bytes so far, and any still to come, go upstream as they are.
void ProxySession::startPlainRelay() {
  upstream_.pending.insert(upstream_.pending.end(), inbuf_.begin(), inbuf_.end());
  c2s_ += inbuf_.size();
  inbuf_.clear();
  startRelay();
}

// First bytes: TLS or not?
void ProxySession::onHelloBytes() {
  wire::HelloPeek peek = wire::peekClientHello(inbuf_);
  using K = wire::HelloPeek::Kind;
  if (peek.kind == K::NeedMore) return readFrom(client_);
  if (peek.kind == K::Malformed) return refuseNotTls("client sent a bad ClientHello: " + peek.error);
  if (peek.kind == K::NotTls && !front_.relaysPlaintext()) {
    // A reverse listener stands in for a TLS server: plain bytes here are a client mistake.
    if (!looksLikeHttp(inbuf_)) return refuseNotTls("first bytes are not a TLS ClientHello");
    refuseNotTls("plain HTTP sent to a TLS port", false);
    return respondAndClose(400, "this port speaks TLS: use https://");
  }
  if (peek.kind == K::NotTls) {
    emit(trace::Leg::Client, trace::ev::ConnPlaintext{"first bytes are not a TLS ClientHello; relaying as plain TCP",
                                                      wire::toHex(inbuf_, 16)});
    if (upstream_.t.open) return startPlainRelay();
    return connectUpstream(AfterConnect::PlainRelay);
  }
  client_.hs_start = deps_.now();
  hello_ = std::move(peek.message);
  hello_ts_ = trace::Clock::now();
  if (maybePassthrough()) return;
  if (refuseClientVersion()) return;
  if (upstream_.t.open) {
    traceClientHello();
    return startUpstreamTls();
  }
  connectUpstream(AfterConnect::UpstreamTls);
  // Decoded and traced at the start of the next input, once the connection to the server is under
  // way (the driver starts it when this returns): the handshake does not wait for the decoding,
  // and the event order is the same (nothing else happens in between).
  hello_pending_ = true;
}

// The server sent bytes before the client's first ones decided for TLS: no TLS server does that
// (the client speaks first, RFC 8446 2), so it is a server-speaks-first protocol, relayed as
// plain TCP both ways as mitmproxy and SSLsplit do. What the client sent so far (even the start of
// a ClientHello) goes upstream as it is.
void ProxySession::serverSpokeFirst(std::span<const std::uint8_t> bytes) {
  emit(trace::Leg::Upstream,
       trace::ev::ConnPlaintext{"the server spoke before the client; relaying as plain TCP", wire::toHex(bytes, 16)});
  startPlainRelay();
  relay(upstream_, bytes);
}

void ProxySession::refuseNotTls(const std::string& reason, bool close) {
  trace::ev::TlsError e;
  e.reason = reason;
  e.stage = "client_hello";
  e.cause = "not_tls";
  e.raw = wire::toHex(inbuf_, 64);
  analysis::FailureFacts ff;
  ff.not_tls = true;
  e.hint = analysis::diagnose(ff).hint;
  client_.error_cause = "not_tls";
  if (outcome_.empty()) outcome_ = reason;
  emit(trace::Leg::Client, std::move(e));
  if (close) closeGracefully(outcome_);
}

// ---------------------------------------------------------------------------------------------
// Refusals at accept time and HTTP answers

Refusal refuseConnection(std::uint64_t id, const std::string& client, const std::string& reason, bool answer_http,
                         int status, std::optional<std::string> cause) {
  Refusal r;
  r.event =
      trace::Event(trace::Clock::now(), id, trace::Leg::None, trace::ev::ConnRefused{client, reason, std::move(cause)});
  if (answer_http) r.response = httpErrorResponse(status, reason);
  return r;
}

std::string httpErrorResponse(int status, const std::string& reason, const std::string& extra_headers) {
  const char* text = "Error";
  switch (status) {
    case 400: text = "Bad Request"; break;
    case 403: text = "Forbidden"; break;
    case 405: text = "Method Not Allowed"; break;
    case 407: text = "Proxy Authentication Required"; break;
    case 431: text = "Request Header Fields Too Large"; break;
    case 502: text = "Bad Gateway"; break;
    case 503: text = "Service Unavailable"; break;
    case 504: text = "Gateway Timeout"; break;
    default: break;
  }
  const std::string body = "tlstrace: " + reason + "\n";
  return "HTTP/1.1 " + std::to_string(status) + " " + text +
         "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\nProxy-Agent: tlstrace\r\n" + extra_headers + "\r\n" + body;
}

}  // namespace tlstrace::session
