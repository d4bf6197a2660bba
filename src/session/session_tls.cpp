// ProxySession: the TLS legs. The upstream handshake first (offering what the client offered),
// then the client's (with a leaf forged for the target); OpenSSL's callbacks feed the decoder and
// the trace; what was negotiated is analysed once each leg is established.
#include <algorithm>
#include <utility>

#include "analysis/diagnose.h"
#include "analysis/kex.h"
#include "pki/audit.h"
#include "pki/forge.h"
#include "session/proxy_session.h"
#include "tls/cert_summary.h"
#include "tls/context.h"
#include "tls/mirror.h"
#include "tls/session_info.h"
#include "trace/tap.h"
#include "wire/handshake.h"
#include "wire/registry.h"

namespace tlstrace::session {

using trace::Json;

// conn.summary's handshake part holds no times or counters, so it is the same for every connection
// of one client to one server (offers, choices, verdict). An idle connection keeps it until it
// closes: equal parts are shared, one copy per thread's recent variety (1.6 KiB per idle
// connection otherwise). Per io thread, as the connections that use it are.
std::shared_ptr<const SummaryPart> internSummaryPart(Json part) {
  struct Slot {
    std::size_t hash = 0;
    std::shared_ptr<const SummaryPart> part;
  };
  static thread_local std::array<Slot, 16> recent;
  static thread_local std::size_t next = 0;
  std::string text = part.dump();
  const std::size_t h = std::hash<std::string>{}(text);
  for (const Slot& s : recent)
    if (s.part && s.hash == h && s.part->text == text) return s.part;
  text.shrink_to_fit();  // kept for the connection's lifetime: no growth slack
  Slot& slot = recent[next++ % recent.size()];
  slot = {h, std::make_shared<const SummaryPart>(SummaryPart{std::move(text), std::move(part)})};
  return slot.part;
}

namespace {

// RFC 8446 6.2: the alert a client gets when the proxy cannot complete the upstream leg.
constexpr int kAlertHandshakeFailure = 40;
constexpr int kAlertProtocolVersion = 70;

// OpenSSL 3.0 reports a received ChangeCipherSpec (TLS 1.2's, TLS 1.3's compatibility one) by its
// record header only, never as a message as it does a sent one: it is traced from the header.
bool receivedCcs(bool sent, std::span<const std::uint8_t> header) {
  return !sent && header.size() >= 5 && header[0] == static_cast<std::uint8_t>(wire::ContentType::ChangeCipherSpec);
}

}  // namespace

void ProxySession::traceClientHello() {
  // Traced from the raw bytes, so the trace reads in wire order even though OpenSSL only sees
  // the ClientHello after the upstream handshake. Decoded once: SNI and ALPN come from the offer.
  hello_pending_ = false;
  const auto saved_ts = std::exchange(event_ts_, hello_ts_);
  auto desc = client_.decoder.describe(hello_, true);
  const trace::HelloOffer& offer = client_.decoder.offer();
  sni_ = offer.sni;
  client_alpn_ = offer.alpn;
  trace::ev::TlsMessage m{"in", std::move(desc.type), desc.length, std::move(desc.body), {}};
  if (offer.seen) m.fingerprints = fingerprints(client_, true);
  emit(trace::Leg::Client, std::move(m));
  event_ts_ = saved_ts;
  hello_traced_ = true;
  std::vector<std::uint8_t>().swap(hello_);
}

void ProxySession::startUpstreamTls() {
  state_ = State::UpstreamHandshake;
  try {
    upstream_.tls = std::make_unique<tls::TlsEngine>(deps_.upstream_ctx, false, &upstream_.obs);
  } catch (const std::exception& e) {
    traceTlsError(upstream_, e.what(), "setup");
    return abortClientHandshake(e.what());
  }
  std::string err;
  if (!tls::configureUpstream(upstream_.tls->ssl(), sni_, verifyName(), client_alpn_, err)) {
    traceTlsError(upstream_, err, "setup");
    return abortClientHandshake(err);
  }
  if (!presentClientCertificate()) return;
  if (probe_ && probe_->resume) (void)probe_->resume->offer(upstream_.tls->ssl());
  if (deps_.cfg->mirror_client && client_.decoder.offer().seen)
    emit(trace::Leg::Upstream,
         trace::ev::TlsMirror{{tls::mirrorClientOffer(upstream_.tls->ssl(), client_.decoder.offer())}});
  upstream_.hs_start = deps_.now();
  stepUpstreamHandshake();
}

void ProxySession::stepUpstreamHandshake() {
  upstream_.obs.deferUntilReplay();
  const auto st = upstream_.tls->handshake();
  flush(upstream_);
  using S = tls::TlsEngine::Status;
  if (st == S::Ok) {
    // The client has waited for this handshake since its ClientHello: its flight goes out
    // first, the upstream leg's trace work right after (settleUpstream).
    upstream_done_at_ = deps_.now();
    upstream_done_ts_ = trace::Clock::now();
    upstream_settle_pending_ = true;
    alpn_choice_ = tls::selectedAlpn(upstream_.tls->ssl());
    alpn_known_ = true;
    if (probe_) return probeEstablished();
    startClientTls();
    return settleUpstream();  // (done already unless the client step waits for its peer)
  }
  upstream_.obs.replayDeferred();
  if (st == S::WantIo) return readFrom(upstream_);
  // Failed: the verdict first if the certificate was the reason or at least arrived (what was
  // received is traced all the same), then the error on both legs.
  if (upstream_.verify_failure.error != 0 || upstream_.peer_certificate) traceTrust();
  const std::string why =
      st == S::Closed ? "server closed the connection during the handshake" : upstream_.tls->error();
  traceTlsError(upstream_, why, "handshake", ErrorFacts{false, st == S::Closed});
  abortClientHandshake("upstream handshake failed: " + why);
}

void ProxySession::startClientTls() {
  state_ = State::ClientHandshake;
  try {
    client_.tls = std::make_unique<tls::TlsEngine>(deps_.client_ctx, true, &client_.obs);
  } catch (const std::exception& e) {
    traceTlsError(client_, e.what(), "setup");
    return closeGracefully(e.what());
  }
  // Named after the target (SNI, else CONNECT host, else the upstream address), mirroring the
  // upstream certificate's names once it is known.
  std::string err;
  bool audited = false;
  if (!installAuditScenario(audited)) return;
  if (!audited && !pki::installForgedLeaf(client_.tls->ssl(), *deps_.forger, verifyName(),
                                          upstream_.tls ? upstream_.tls->ssl() : nullptr, err)) {
    traceTlsError(client_, err, "setup");
    return closeGracefully(err);
  }
  client_.tls->feed(inbuf_);
  inbuf_.clear();
  stepClientHandshake();
}

bool ProxySession::installAuditScenario(bool& installed) {
  installed = false;
  if (!audit_ || !deps_.audit_plan || !deps_.audit_certs) return true;
  // Keyed by the client's address (not its port: each connection has a new one) and the name it
  // asked for, so that each client walks the list once per host.
  const std::string& c = audit_->client;
  const auto colon = c.rfind(':');
  const auto scenario = deps_.audit_plan->next(c.substr(0, colon) + " " + verifyName());
  if (!scenario) return true;
  std::string err;
  if (!deps_.audit_certs->install(client_.tls->ssl(), *scenario, verifyName(), err)) {
    traceTlsError(client_, err, "setup");
    closeGracefully(err);
    return false;
  }
  audit_->scenario = std::string(pki::auditScenarioName(*scenario));
  installed = true;
  return true;
}

void ProxySession::reportAudit(bool accepted, const std::string& evidence) {
  if (!audit_ || audit_->scenario.empty() || audit_->reported) return;
  audit_->reported = true;
  emit(trace::Leg::Client, trace::ev::AuditResult{audit_->scenario, audit_->client, verifyName(),
                                                  accepted ? "accepted" : "refused", evidence});
}

void ProxySession::settleUpstream() {
  if (!upstream_settle_pending_) return;
  upstream_settle_pending_ = false;
  const auto saved_ts = event_ts_;  // (a replayed client event may be waiting for this)
  upstream_.obs.replayDeferred();
  event_ts_ = upstream_done_ts_;
  traceTrust();
  onEstablished(upstream_, upstream_done_at_);
  event_ts_ = saved_ts;
}

void ProxySession::stepClientHandshake() {
  client_.obs.deferUntilReplay();
  const auto st = client_.tls->handshake();
  flush(client_);
  settleUpstream();
  client_.obs.replayDeferred();
  using S = tls::TlsEngine::Status;
  if (st == S::WantIo) return readFrom(client_);
  if (st == S::Ok) {
    onEstablished(client_, deps_.now());
    return startRelay();
  }
  const std::string why = st == S::Closed ? "client closed the connection during the handshake" : client_.tls->error();
  traceTlsError(client_, why, "handshake", ErrorFacts{false, st == S::Closed});
  reportAudit(false, why);
  closeGracefully("client handshake failed: " + why);
}

// The client leg would refuse this ClientHello's versions (--client-tls-min/max, or OpenSSL's
// security level): refused at once with protocol_version (RFC 8446 4.2.1), before any connection
// upstream, with a cause that names the option. False when the hello may go on.
bool ProxySession::refuseClientVersion() {
  const tls::VersionRange accepted = tls::acceptedVersions(deps_.client_ctx);
  // RFC 8446 4.1.2: legacy_version follows the 4-byte handshake header. Within the range (the
  // usual case) nothing more is decoded here.
  if (hello_.size() < 6) return false;
  const auto legacy = static_cast<std::uint16_t>((hello_[4] << 8) | hello_[5]);
  // A TLS 1.3 hello says 1.2 there, so a maximum below 1.3 needs supported_versions.
  const std::uint16_t capped = std::min<std::uint16_t>(legacy, 0x0303);
  if (capped >= accepted.min && (accepted.max == 0 || accepted.max >= 0x0304)) return false;
  const auto ch = wire::decodeClientHello(std::span<const std::uint8_t>(hello_).subspan(4));
  if (ch.status != wire::Status::Ok) return false;  // OpenSSL will say what is wrong with it
  std::vector<std::uint16_t> offered{legacy};
  if (const auto* sv = wire::findExtension(ch.value.extensions, wire::ExtensionType::SupportedVersions))
    if (auto list = wire::decodeU16List8(sv->data)) offered = std::move(*list);
  const auto d = analysis::clientVersionRefusal(offered, accepted.min, accepted.max);
  if (!d) return false;
  traceClientHello();
  const std::string why =
      "ClientHello refused before connecting upstream: no version the client offers is "
      "accepted on the client leg";
  if (outcome_.empty()) outcome_ = why;
  queueClientAlert(kAlertProtocolVersion);
  trace::ev::TlsError e;
  e.reason = why;
  e.stage = "client_hello";
  e.cause = d->cause;
  e.message = "ClientHello";
  e.alert = "protocol_version";
  e.hint = d->hint;
  client_.error_cause = e.cause;
  emit(trace::Leg::Client, std::move(e));
  closeGracefully(outcome_);
  return true;
}

// Answers the buffered ClientHello with a fatal alert, through a client-leg engine that aborts
// right after reading it (its output goes out before anything else on the leg).
void ProxySession::queueClientAlert(int alert) {
  abort_alert_ = alert;
  try {
    client_.tls = std::make_unique<tls::TlsEngine>(deps_.client_ctx, true, &client_.obs);
    client_.tls->feed(inbuf_);
    inbuf_.clear();
    (void)client_.tls->handshake();  // fails by design, queuing the alert
    (void)tls::errorQueueText();
    (void)client_.tls->takeOut(client_.pending, SIZE_MAX);
  } catch (const std::exception&) {
  }
  client_.tls.reset();  // nothing more to say in TLS; the alert bytes are queued
}

void ProxySession::abortClientHandshake(const std::string& why) {
  if (probe_) return closeGracefully(why);  // no client to tell
  // Answer the buffered ClientHello with a fatal handshake_failure alert (RFC 8446 6.2) so the
  // client sees a TLS error, not a silent close.
  if (outcome_.empty()) outcome_ = why;
  queueClientAlert(kAlertHandshakeFailure);
  trace::ev::TlsError e;
  e.reason = why;
  e.stage = "handshake";
  // The root cause is the upstream leg's; `origin` says so.
  e.cause = upstream_.error_cause.empty() ? std::string("upstream_unreachable") : upstream_.error_cause;
  e.origin = "upstream";
  e.message = "ClientHello";
  e.alert = "handshake_failure";
  e.hint = "the proxy could not complete the upstream leg; see the upstream tls.error/tcp.connect for why";
  client_.error_cause = e.cause;
  emit(trace::Leg::Client, std::move(e));
  closeGracefully(outcome_);
}

void ProxySession::traceTlsError(Leg& l, const std::string& reason, const std::string& stage, ErrorFacts facts) {
  analysis::FailureFacts ff;
  ff.client_leg = &l == &client_;
  ff.ssl_reason = l.tls ? l.tls->errorReason() : 0;
  // (On the client leg a verify failure is about the client's own certificate: traced, not a cause.)
  ff.verify_error = &l == &upstream_ ? l.verify_failure.error : 0;
  ff.alert_received = l.last_alert_received;
  ff.alert_sent = l.last_alert_sent;
  ff.peer_reset = facts.reset;
  ff.peer_closed = facts.closed;
  ff.timeout = facts.timeout;
  ff.certificate_requested = l.certificate_requested;
  ff.client_certificate_sent = &l == &upstream_ && l.client_certs > 0;
  if (stage == "handshake") traceClientCertificate(l);
  if (stage == "handshake") analyseUnfinished(l, ff);
  const analysis::Diagnosis d = analysis::diagnose(ff);
  trace::ev::TlsError e;
  e.reason = reason;
  e.stage = stage;
  e.cause = d.cause;
  if (!l.decoder.lastMessage().empty()) e.message = l.decoder.lastMessage();
  if (!l.last_alert_sent.empty()) e.alert_sent = l.last_alert_sent;
  if (!l.last_alert_received.empty()) e.alert_received = l.last_alert_received;
  if (l.verify_failure.error != 0) {
    e.verify_error = tls::verifyErrorText(l.verify_failure.error);
    e.verify_depth = l.verify_failure.depth;
  }
  e.hint = d.hint;
  l.error_cause = d.cause;
  emit(l.which, std::move(e));
  if (outcome_.empty()) outcome_ = std::string(trace::legName(l.which)) + " " + stage + ": " + reason;
}

// A handshake that failed once the server's key exchange had arrived (a ServerKeyExchange, a TLS
// 1.3 key share): what arrived is analysed all the same, tls.key_exchange before tls.error, so a
// refused 1024-bit group still shows p, g, Ys and its rating, and the diagnosis can name a value.
void ProxySession::analyseUnfinished(Leg& l, analysis::FailureFacts& ff) {
  const trace::KexMaterial& k = l.decoder.kex();
  if (l.handshake_ms || !l.key_exchange.isNull() || !l.decoder.choice().seen ||
      (k.p.empty() && k.server_public.empty()))
    return;
  ff.invalid_dh = analysis::invalidDhValue(k, l.decoder.choice());
  if (!deps_.primes) return;
  analysis::KexInput in;
  in.offer = &l.decoder.offer();
  in.choice = &l.decoder.choice();
  in.kex = &k;
  Json kex = analysis::assessKeyExchange(in, *deps_.primes);
  if (analysis::safePrimePending(kex)) awaitPrimeTest(l, in);
  if (const Json* bits = kex.find("bits"); bits && bits->isInt() && !k.p.empty())
    ff.dh_bits = static_cast<int>(bits->asInt());
  l.key_exchange = analysis::keepForSummary(analysis::SummaryInput::KeyExchange, kex);
  emit(l.which, trace::ev::TlsKeyExchange{{std::move(kex)}});
}

void ProxySession::onEstablished(Leg& l, SteadyClock::time_point at) {
  auto* ssl = l.tls->ssl();
  l.handshake_ms = trace::timingMs(std::chrono::duration<double, std::milli>(at - l.hs_start).count());
  l.tls13 = l.decoder.version() == 0x0304;
  trace::ev::TlsEstablished established = tls::established(ssl, *l.handshake_ms);
  analysis::KexInput in;
  in.offer = &l.decoder.offer();
  in.choice = &l.decoder.choice();
  in.kex = &l.decoder.kex();
  in.resumed = tls::sessionReused(ssl);
  if (in.resumed) {
    const tls::SessionTimes& t = l.session_times;
    established.resumption = analysis::resumptionFacts(*in.offer, *in.choice, {t.lifetime, t.age});
    if (!l.tls13) established.group.value.reset();  // a TLS 1.2 resumption exchanges no key (RFC 5246 7.3)
  }
  // OpenSSL names no server name on a resumed TLS 1.2 leg; the ClientHello did.
  if (!established.sni.value && !in.offer->sni.empty()) established.sni.value = in.offer->sni;
  if (const int bits = tls::serverKeyBits(ssl, &l == &upstream_); bits > 0) in.server_key_bits = bits;
  // No tls.key_exchange for a TLS 1.2 resumption: there was none (docs/events.md).
  if (deps_.primes && analysis::hasKeyExchange(in)) l.key_exchange = analysis::assessKeyExchange(in, *deps_.primes);
  if (analysis::safePrimePending(l.key_exchange)) awaitPrimeTest(l, in);
  // OpenSSL 3.0 names no group for TLS 1.2 DHE; the decoded ServerKeyExchange does.
  if (const Json* g = l.key_exchange.find("group");
      g && g->isString() && !established.group.value && l.decoder.kex().kind == wire::KexKind::Dhe)
    established.group.value = std::string(g->asString());
  // The events take the full objects; the session keeps what conn.summary needs (memory per
  // idle connection).
  using analysis::SummaryInput;
  l.established = analysis::keepForSummary(SummaryInput::Established, trace::fieldsObject(established));
  traceClientCertificate(l);
  emit(l.which, std::move(established));
  Json kex = std::exchange(l.key_exchange, analysis::keepForSummary(SummaryInput::KeyExchange, l.key_exchange));
  if (!kex.isNull()) emit(l.which, trace::ev::TlsKeyExchange{{std::move(kex)}});
  if (client_.handshake_ms && upstream_.handshake_ms) settleSummary();
}

// A handshake message on an established TLS <= 1.2 leg is a renegotiation (RFC 5246 7.4.1; a
// HelloRequest only asks for one, NewSessionTicket is part of a handshake): it is over once one
// of its Finished messages went by and OpenSSL is out of its handshake (relay() checks).
void ProxySession::noteRenegotiation(Leg& l, wire::HandshakeType type) {
  using wire::HandshakeType;
  // (Not the decoder's version: a released decoder restarts at 0 with the next message.)
  if (type == HandshakeType::KeyUpdate || type == HandshakeType::HelloRequest || l.tls13) return;
  if (!l.renegotiating && type != HandshakeType::NewSessionTicket) {
    l.renegotiating = true;
    l.renegotiation_start = deps_.now();
  }
  if (l.renegotiating && type == HandshakeType::Finished) l.renegotiation_finished = true;
}

void ProxySession::onRenegotiated(Leg& l) {
  l.renegotiating = l.renegotiation_finished = false;
  const double ms = std::chrono::duration<double, std::milli>(deps_.now() - l.renegotiation_start).count();
  trace::ev::TlsEstablished established = tls::established(l.tls->ssl(), trace::timingMs(ms));
  established.renegotiation = true;
  emit(l.which, std::move(established));
  l.decoder.releaseHandshake();  // conn.summary is settled: nothing reads this handshake again
}

Json ProxySession::fingerprints(Leg& l, bool client_hello) {
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

analysis::LegReport ProxySession::legReport(const Leg& l) {
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

// Both handshakes are done, so conn.summary's handshake part is final: build it now and let go
// of what it is made from (both decoders' offer, choice and key exchange; the kept event fields),
// ~3 KiB less per idle connection. The close adds alerts, timings and errors to it.
void ProxySession::settleSummary() {
  summary_part_ = internSummaryPart(analysis::summaryHandshakePart(legReport(client_), legReport(upstream_)));
  for (Leg* l : {&client_, &upstream_}) {
    l->decoder.releaseHandshake();
    l->prints.reset();
    l->established = Json();
    l->trust = Json();
    l->key_exchange = Json();
  }
}

void ProxySession::traceTrust() {
  Json trust = tls::trustFields(upstream_.tls->ssl(), verifyName(), upstream_.verify_failure, deps_.certs);
  upstream_.trust = analysis::keepForSummary(analysis::SummaryInput::Trust, trust);
  emit(trace::Leg::Upstream, trace::ev::TlsTrust{{std::move(trust)}});
}

// ---------------------------------------------------------------------------------------------
// Observer: OpenSSL callbacks copy bytes into events and return.

void ProxySession::Observer::onTlsMessage(bool sent, int content_type, std::span<const std::uint8_t> bytes) {
  // Read now, not when a deferred message is replayed: a resumed session changes afterwards.
  if (content_type == static_cast<int>(wire::ContentType::Handshake) && !bytes.empty() &&
      bytes[0] == static_cast<std::uint8_t>(wire::HandshakeType::ServerHello) && leg->tls)
    leg->session_times = tls::sessionTimes(leg->tls->ssl(), leg == &s->client_);
  if (defer_) {
    deferred_.push_back({trace::Clock::now(), false, sent, content_type, {bytes.begin(), bytes.end()}});
    return;
  }
  message(sent, content_type, bytes);
}

void ProxySession::Observer::onRecordHeader(bool sent, std::span<const std::uint8_t> header) {
  if (defer_) {
    if (s->tracing(trace::kRecord) || receivedCcs(sent, header))
      deferred_.push_back({trace::Clock::now(), true, sent, 0, {header.begin(), header.end()}});
    return;
  }
  recordHeader(sent, header);
}

void ProxySession::Observer::replayDeferred() {
  defer_ = false;
  if (deferred_.empty()) return;
  auto items = std::move(deferred_);
  deferred_ = {};  // an idle connection keeps no capacity
  for (const auto& d : items) {
    s->event_ts_ = d.ts;
    if (d.header) recordHeader(d.sent, d.bytes);
    else message(d.sent, d.content_type, d.bytes);
  }
  s->event_ts_ = {};
}

void ProxySession::Observer::message(bool sent, int content_type, std::span<const std::uint8_t> bytes) {
  ProxySession& c = *s;
  const std::string dir = sent ? "out" : "in";
  using wire::ContentType;
  if (content_type == static_cast<int>(ContentType::Alert)) {
    if (bytes.size() < 2) return;
    const std::string level = bytes[0] == 1 ? "warning" : "fatal";
    const std::string desc(wire::alertName(bytes[1]));
    if (bytes[1] != 0) (sent ? leg->last_alert_sent : leg->last_alert_received) = desc;
    leg->alerts.push_back((sent ? "sent " : "received ") + level + " " + desc);
    c.emit(leg->which, trace::ev::TlsAlert{dir, level, desc, bytes[1]});
    if (!sent && leg == &c.client_) c.noteCertificateRejection(bytes[1]);
    return;
  }
  if (content_type == static_cast<int>(ContentType::ChangeCipherSpec)) {
    if (!sent) return;  // traced from its record header (recordHeader), should OpenSSL ever report it
    c.emit(leg->which, trace::ev::TlsMessage{dir, "ChangeCipherSpec", bytes.size(), trace::Body(), {}});
    return;
  }
  using wire::HandshakeType;
  const auto type = bytes.empty() ? HandshakeType::HelloRequest : static_cast<HandshakeType>(bytes[0]);
  const bool from_client = c.fromClient(*leg, sent);
  if (!sent && leg == &c.client_ && c.hello_traced_ && type == HandshakeType::ClientHello) {
    c.hello_traced_ = false;  // already traced (and decoded) from the raw bytes
    return;
  }
  // Decoded even when not traced: the analysis and the summary need what the messages said.
  auto desc = leg->decoder.describe(bytes, from_client);
  if (type == HandshakeType::CertificateRequest) leg->certificate_requested = true;
  if (type == HandshakeType::Certificate && from_client) {
    const auto chain = desc.body.find("chain");
    leg->client_certs = chain ? static_cast<int>(chain->asArray().size()) : 0;
  }
  if (type == HandshakeType::Certificate && !sent) leg->peer_certificate = true;
  if (leg->handshake_ms) c.noteRenegotiation(*leg, type);
  if (!bytes.empty() && type == HandshakeType::KeyUpdate) c.onKeyUpdate(*leg, from_client);
  if (!c.tracing(trace::kHandshake)) return;
  trace::ev::TlsMessage m{dir, std::move(desc.type), desc.length, std::move(desc.body), {}};
  if (m.type == "ClientHello" && leg->decoder.offer().seen) m.fingerprints = c.fingerprints(*leg, true);
  else if (m.type == "ServerHello" && leg->decoder.choice().seen) m.fingerprints = c.fingerprints(*leg, false);
  c.emit(leg->which, std::move(m));
}

void ProxySession::Observer::recordHeader(bool sent, std::span<const std::uint8_t> header) {
  ProxySession& c = *s;
  if (header.size() < 5) return;
  // RFC 8446 5.1: type(1) legacy_record_version(2) length(2).
  const auto length = static_cast<std::uint64_t>((header[3] << 8) | header[4]);
  if (c.tracing(trace::kRecord))
    c.emit(leg->which,
           trace::ev::TlsRecord{!sent, header[0], static_cast<std::uint16_t>((header[1] << 8) | header[2]), length});
  if (receivedCcs(sent, header))
    c.emit(leg->which, trace::ev::TlsMessage{"in", "ChangeCipherSpec", length, trace::Body(), {}});
}

void ProxySession::Observer::onKeylog(std::string_view line) {
  ProxySession& c = *s;
  if (c.deps_.keylog) c.deps_.keylog(line);
  if (c.deps_.tap) c.deps_.tap->secret(line);
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
  const bool secrets = c.deps_.cfg->log_secrets;
  trace::ev::TlsSecret secret{std::string(line.substr(0, sp1)), std::string(line.substr(sp1 + 1, sp2 - sp1 - 1)), {}};
  if (secrets) secret.secret = std::string(line.substr(sp2 + 1));
  c.emit(leg->which, std::move(secret));
  if (!secrets || !leg->tls) return;
  // Derived keys (tls.keys), only with --log-secrets.
  const auto derived =
      tls::keysFromKeylog(leg->tls->ssl(), line.substr(0, sp1), wire::fromHex(line.substr(sp1 + 1, sp2 - sp1 - 1)),
                          wire::fromHex(line.substr(sp2 + 1)), leg->app_secret_client, leg->app_secret_server);
  for (const auto& d : derived) c.emitKeys(*leg, d.direction, d.epoch, d.keys);
}

void ProxySession::emitKeys(Leg& l, const char* direction, const std::string& epoch, const tls::TrafficKeys& k) {
  trace::ev::TlsKeys keys{direction, epoch, wire::toHex(k.key.bytes()), wire::toHex(k.iv.bytes()), {}};
  if (!k.mac_key.empty()) keys.mac_key = wire::toHex(k.mac_key.bytes());
  emit(l.which, std::move(keys));
}

void ProxySession::onKeyUpdate(Leg& l, bool from_client) {
  // RFC 8446 7.2: the sender's next application traffic secret; traced as the next generation.
  if (!l.tls) return;
  if (auto k = tls::nextGenerationKeys(l.tls->ssl(), from_client ? l.app_secret_client : l.app_secret_server))
    emitKeys(l, from_client ? "client_write" : "server_write", std::to_string(l.decoder.keyUpdates(from_client)), *k);
}

const std::string* ProxySession::Observer::alpnChoice() {
  return s->alpn_known_ && !s->alpn_choice_.empty() ? &s->alpn_choice_ : nullptr;
}

int ProxySession::Observer::clientHelloAbortAlert() { return s->abort_alert_; }

void ProxySession::Observer::onVerifyError(tls::VerifyFailure&& failure) {
  if (leg->verify_failure.error == 0) leg->verify_failure = std::move(failure);
}

}  // namespace tlstrace::session
