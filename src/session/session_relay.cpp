// ProxySession: relay, backpressure, timeouts and closing. One read out per leg at a time, and no
// new read until the other leg has written what the last one produced (bounded buffers per
// direction, never a growing queue).
#include <algorithm>

#include "analysis/summary.h"
#include "session/proxy_session.h"
#include "tls/buffer_pool.h"

namespace tlstrace::session {

namespace {

constexpr std::size_t kMaxWriteChunk = 64 * 1024;
// Backpressure: stop reading a leg while the other one has this much waiting to be written,
// resume below the low mark.
constexpr std::size_t kHighWater = 256 * 1024;
constexpr std::size_t kLowWater = 64 * 1024;
constexpr auto kCloseGrace = std::chrono::seconds(2);

// Timings are traced to the microsecond (docs/events.md).
double msBetween(SteadyClock::time_point from, SteadyClock::time_point to) {
  return trace::timingMs(std::chrono::duration<double, std::milli>(to - from).count());
}

SteadyClock::duration seconds(double s) {
  return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
}

}  // namespace

void ProxySession::startRelay() {
  state_ = State::Relaying;
  touch();
  // The watchdog waits for the handshake's deadline: an idle timeout that ends before it is armed
  // now (--idle-timeout 1 would otherwise first be looked at when the 10 s of the handshake end).
  if (last_activity_ + seconds(deps_.cfg->idle_timeout_s) < handshakeFrom() + seconds(deps_.cfg->handshake_timeout_s))
    armWatchdog();
  std::vector<std::uint8_t>().swap(inbuf_);  // the hello is long replayed; give its memory back
  for (Leg* l : {&client_, &upstream_}) l->t.tls_relayed = l->tls != nullptr;
  if (upstream_.tls) relay(upstream_, {});  // plaintext the server sent along with its Finished
  if (client_.tls) relay(client_, {});
  readFrom(client_);
  readFrom(upstream_);
  flush(upstream_);
  flush(client_);
}

std::size_t ProxySession::queued(const Leg& l) {
  return (l.t.writing ? l.wbuf.size() : 0) + l.pending.size() + (l.tls ? l.tls->pendingOut() : 0);
}

void ProxySession::readFrom(Leg& l) {
  if (finished_ || !l.t.open || l.t.reading || l.t.fin_seen || l.t.dead) return;
  if ((state_ == State::Relaying || state_ == State::StartTls) && queued(other(l)) >= kHighWater) {
    l.t.paused = true;
    return;
  }
  l.t.reading = true;
  actions_.push_back(act::Read{l.which});
}

void ProxySession::step(Leg& l, std::span<const std::uint8_t> bytes) {
  switch (state_) {
    case State::UpstreamHandshake:
      if (&l == &upstream_) return stepUpstreamHandshake();
      return;
    case State::ClientHandshake:
      if (&l == &client_) return stepClientHandshake();
      // Server data during the client handshake stays buffered in its engine until the relay.
      return;
    case State::Relaying:
      if (l.t.eos) return readFrom(l);  // after close_notify: only waiting for FIN
      if (pass_) observePassthrough(l, bytes);
      return relay(l, l.tls ? std::span<const std::uint8_t>{} : bytes);
    case State::ProbeTickets: return probeRead();
    case State::Closing: return readFrom(l);  // drain until the peer's FIN while our close is under way
    default: return;
  }
}

void ProxySession::relay(Leg& src, std::span<const std::uint8_t> plain_in) {
  Leg& dst = other(src);
  static thread_local std::vector<std::uint8_t> plain;  // reused: no allocation per record
  plain.clear();
  bool closed = false;
  bool failed = false;
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
    if (st != tls::TlsEngine::Status::Error) flush(src);  // e.g. a KeyUpdate answer
    if (src.renegotiation_finished && src.tls->handshakeDone()) onRenegotiated(src);
    closed = st == tls::TlsEngine::Status::Closed;
    failed = st == tls::TlsEngine::Status::Error;
    if (closed) src.t.notify_in = true;
    plain_in = plain;
  }
  if (!plain_in.empty()) {  // what came before an error too: nothing the peer sent is dropped
    if (tracing(trace::kData)) emit(src.which, trace::ev::Data::of(true, plain_in));
    if (!passOn(src, dst, plain_in)) return;
    passed = true;
  }
  if (passed) flush(dst);
  if (failed) return failTls(src, src.tls->error());
  if (closed) endOfStream(src, true);  // then keep reading for the FIN
  readFrom(src);
}

bool ProxySession::passOn(Leg& src, Leg& dst, std::span<const std::uint8_t> plain) {
  (&src == &client_ ? c2s_ : s2c_) += plain.size();
  if (audit_ && &src == &client_ && !plain.empty())
    reportAudit(true, "sent " + std::to_string(plain.size()) + " bytes of application data over it");
  if (!dst.tls) {
    dst.pending.insert(dst.pending.end(), plain.begin(), plain.end());
    return true;
  }
  if (dst.tls->write(plain) != tls::TlsEngine::Status::Error) return true;
  failTls(dst, dst.tls->error());
  return false;
}

void ProxySession::endOfStream(Leg& src, bool clean) {
  if (src.t.eos) return maybeFinish();
  src.t.eos = true;
  Leg& dst = other(src);
  if (dst.t.open && !dst.t.dead && !dst.t.shut_after_flush) {
    // Pass the half-close on as it came, while the other direction keeps flowing: close_notify
    // then FIN, or a bare FIN after a bare FIN (a truncation stays one, RFC 8446 6.1).
    if (clean) queueCloseNotify(dst);
    dst.t.shut_after_flush = true;
    flush(dst);
  }
  maybeFinish();
}

void ProxySession::queueCloseNotify(Leg& l) {
  if (!l.tls || !l.tls->handshakeDone() || l.t.notify_queued) return;
  l.tls->shutdown();
  l.t.notify_queued = true;
}

void ProxySession::flush(Leg& l) {
  if (finished_ || !l.t.open || l.t.writing || l.t.dead) return;
  l.wbuf.clear();
  if (l.wbuf.capacity() == 0) l.wbuf = tls::borrowBuffer(kMaxWriteChunk);  // given back when the leg drains
  if (!l.pending.empty()) {
    const std::size_t n = std::min(l.pending.size(), kMaxWriteChunk);
    l.wbuf.assign(l.pending.begin(), l.pending.begin() + static_cast<std::ptrdiff_t>(n));
    l.pending.erase(l.pending.begin(), l.pending.begin() + static_cast<std::ptrdiff_t>(n));
  }
  if (l.tls && l.wbuf.size() < kMaxWriteChunk) (void)l.tls->takeOut(l.wbuf, kMaxWriteChunk - l.wbuf.size());
  if (l.wbuf.empty()) return onDrained(l);
  l.t.writing = true;
  actions_.push_back(act::Send{l.which, l.wbuf});
}

void ProxySession::onDrained(Leg& l) {
  // Nothing in flight: the write buffer goes back to the thread's pool (an idle leg holds none).
  // Once the handshake flights are out, OpenSSL's record buffers go too (once: a busy leg would
  // reallocate them per burst).
  if (!l.t.writing && l.pending.empty()) {
    tls::returnBuffer(l.wbuf);
    if (state_ == State::Relaying && !l.t.compacted) {
      l.t.compacted = true;
      if (l.tls) l.tls->compact();
    }
  }
  if (l.t.rst_after_flush && !l.t.dead) {
    l.t.dead = true;
    endByProxy(l, "rst");
    actions_.push_back(act::Abort{l.which});
  } else if (l.t.shut_after_flush && !l.t.shut_sent) {
    endByProxy(l, "fin");
    actions_.push_back(act::Shutdown{l.which});
    l.t.shut_sent = true;
    l.t.notify_out = l.t.notify_queued;  // everything queued is written: close_notify went before the FIN
  }
  resumeOther(l);
  maybeFinish();
}

void ProxySession::resumeOther(Leg& l) {
  Leg& src = other(l);
  if (src.t.paused && (state_ == State::Relaying || state_ == State::StartTls) && queued(l) < kLowWater) {
    src.t.paused = false;
    readFrom(src);
  }
}

// The peer's FIN or RST may be in the kernel already, unread (the session stopped reading that
// leg, or the read is still on its way): then it came first on the wire.
void ProxySession::endByProxy(Leg& l, std::string_view how) {
  if (!l.by.empty()) return;
  const PeerEnd peer = facts_ && l.t.open ? facts_->peerEnd(l.which) : PeerEnd::None;
  l.by = peer == PeerEnd::None ? "proxy" : "peer";
  l.how = peer == PeerEnd::None ? how : peer == PeerEnd::Fin ? "fin" : "rst";
}

void ProxySession::abortLeg(Leg& l, std::string_view how, const std::string& why) {
  if (l.by.empty()) {
    l.by = "peer";
    l.how = how;
  }
  l.t.dead = true;
  actions_.push_back(act::Abort{l.which});
  if (outcome_.empty()) outcome_ = std::string(trace::legName(l.which)) + ": " + why;
  Leg& o = other(l);
  if (state_ == State::Relaying && how == "rst" && o.t.open && !o.t.dead) {
    // A reset is passed on as a reset (after what is already queued for that peer), not turned
    // into close_notify and FIN: the peer sees what the proxy saw.
    state_ = State::Closing;
    actions_.push_back(act::ArmTimer{deps_.now() + kCloseGrace});
    o.t.rst_after_flush = true;
    flush(o);
    return maybeFinish();
  }
  const ErrorFacts facts{how == "rst"};
  if (state_ == State::UpstreamHandshake && &l == &upstream_) {
    traceTlsError(l, why, "handshake", facts);
    return abortClientHandshake("upstream handshake failed: " + why);
  }
  if (state_ == State::ClientHandshake && &l == &client_) traceTlsError(l, why, "handshake", facts);
  closeGracefully(outcome_);
}

void ProxySession::failTls(Leg& l, const std::string& why) {
  traceTlsError(l, why, "data");
  if (outcome_.empty()) outcome_ = std::string(trace::legName(l.which)) + ": " + why;
  // The TLS stream of this leg ended in an error: the other leg gets a FIN without close_notify
  // (its peer sees a truncation, as it would have from the origin). This leg gets the alert
  // OpenSSL queued, if any, then our FIN; but a peer that sent a fatal alert closes first, so
  // its FIN is awaited (within the grace period) and tcp.close says who really closed.
  const bool peer_alert = std::any_of(l.alerts.begin(), l.alerts.end(),
                                      [](const std::string& a) { return a.starts_with("received fatal"); });
  state_ = State::Closing;
  actions_.push_back(act::ArmTimer{deps_.now() + kCloseGrace});
  Leg& o = other(l);
  if (o.t.open && !o.t.dead) o.t.shut_after_flush = true;
  if (peer_alert && !l.t.fin_seen) l.t.await_fin = true;
  else l.t.shut_after_flush = true;
  flush(l);
  flush(o);
  readFrom(l);
  maybeFinish();
}

void ProxySession::closeGracefully(const std::string& outcome) {
  if (finished_) return;
  if (outcome_.empty()) outcome_ = outcome;
  if (state_ != State::Closing) {
    state_ = State::Closing;
    actions_.push_back(act::ArmTimer{deps_.now() + kCloseGrace});
  }
  for (Leg* l : {&client_, &upstream_}) {
    if (!l->t.open || l->t.dead || l->t.shut_after_flush || l->t.await_fin) continue;
    queueCloseNotify(*l);
    l->t.shut_after_flush = true;
    flush(*l);
  }
  maybeFinish();
}

void ProxySession::maybeFinish() {
  if (finished_) return;
  auto done = [](const Leg& l) { return !l.t.open || l.t.dead || (l.t.shut_sent && !l.t.writing); };
  if (state_ == State::Closing) {
    auto fin_in = [&](const Leg& l) { return !awaiting_fins_ || !l.t.open || l.t.dead || l.t.fin_seen; };
    if (done(client_) && done(upstream_) && fin_in(client_) && fin_in(upstream_)) finish();
    return;
  }
  if (state_ == State::Relaying) {
    auto finished_dir = [&](const Leg& src) { return src.t.eos || src.t.dead || !src.t.open; };
    if (!finished_dir(client_) || !finished_dir(upstream_) || !done(client_) || !done(upstream_)) return;
    // Both directions ended (close_notify or FIN): the peers' FINs are awaited within the grace
    // period, so that tcp.close can tell whose came first.
    auto fin_in = [](const Leg& l) { return !l.t.open || l.t.dead || l.t.fin_seen; };
    if (fin_in(client_) && fin_in(upstream_)) return finish();
    state_ = State::Closing;
    awaiting_fins_ = true;
    actions_.push_back(act::ArmTimer{deps_.now() + kCloseGrace});
    for (Leg* l : {&client_, &upstream_}) readFrom(*l);
  }
}

void ProxySession::finish() {
  if (finished_) return;
  settleUpstream();
  finished_ = true;
  state_ = State::Done;
  const auto now = deps_.now();
  for (Leg* l : {&client_, &upstream_}) {
    if (!l->t.open) continue;
    // The peer's FIN may have come in between the session's decision to send ours and its going
    // out, and the session may end without reading it: the driver saw it as ours went out.
    if (l->by == "proxy" && l->how == "fin" && l->t.shut_sent && facts_ && facts_->peerEnd(l->which) == PeerEnd::Fin)
      l->by = "peer";
    endByProxy(*l, "fin");
    if (facts_ && tracing(trace::kTcp))
      if (auto info = facts_->tcpInfoAtClose(l->which)) emit(l->which, std::move(*info));
    trace::ev::TcpClose close{
        std::string(l->by), std::string(l->how), l->bytes_in, l->bytes_out, msBetween(l->opened, now), {}, {}, {}};
    if (l->t.tls_relayed) {  // an established TLS leg: did each direction end with close_notify?
      close.close_notify_in = l->t.notify_in;
      close.close_notify_out = l->t.notify_out;
    }
    // --tcp-states: the side whose FIN came first closed actively and holds TIME_WAIT (RFC 9293
    // 3.6); the leg's tcp.state events show the kernel's own transitions for the proxy's side.
    if (deps_.cfg->tcp_states && l->how == "fin") close.time_wait = l->by;
    emit(l->which, std::move(close));
  }
  if (audit_) reportAudit(false, "closed without sending application data");
  if (summary_part_) {
    emit(trace::Leg::None, trace::ev::ConnSummary{{analysis::completeSummary(summary_part_->tree, legReport(client_),
                                                                             legReport(upstream_))}});
  } else if (client_.decoder.offer().seen || upstream_.decoder.offer().seen) {
    emit(trace::Leg::None, trace::ev::ConnSummary{{analysis::buildSummary(legReport(client_), legReport(upstream_))}});
  }
  emit(trace::Leg::None,
       trace::ev::ConnClose{msBetween(start_, now), c2s_, s2c_, outcome_.empty() ? std::string("ok") : outcome_});
  // Release TLS state now; the session itself goes when its driver lets go of it.
  client_.tls.reset();
  upstream_.tls.reset();
  actions_.push_back(act::Finish{});
}

// ---------------------------------------------------------------------------------------------
// Handshake and idle timeouts.

void ProxySession::armWatchdog() {
  // A STARTTLS preamble is a plaintext conversation like the relay: the idle timeout applies; the
  // handshake after it has its own time from then on (handshake_from_).
  const bool idle = state_ == State::Relaying || state_ == State::StartTls;
  const auto deadline = idle ? last_activity_ + seconds(deps_.cfg->idle_timeout_s)
                             : handshakeFrom() + seconds(deps_.cfg->handshake_timeout_s);
  actions_.push_back(act::ArmTimer{deadline});
}

void ProxySession::onWatchdog() {
  const bool relaying = state_ == State::Relaying || state_ == State::StartTls;  // (see armWatchdog)
  const double limit_s = relaying ? deps_.cfg->idle_timeout_s : deps_.cfg->handshake_timeout_s;
  if (deps_.now() - (relaying ? last_activity_ : handshakeFrom()) < seconds(limit_s)) return armWatchdog();
  const std::string why = relaying ? "idle timeout" : "handshake timeout";
  for (Leg* l : {&client_, &upstream_}) {
    if (l->t.open && l->by.empty()) {
      l->by = "proxy";
      l->how = "timeout";
    }
  }
  outcome_ = why;
  if (relaying) return closeGracefully(why);
  const std::string detail = why + " after " + config::seconds(deps_.cfg->handshake_timeout_s);
  switch (state_) {
    case State::UpstreamHandshake:
    case State::Connecting:
      if (state_ == State::Connecting &&
          (front_.mode() == config::Mode::Explicit || front_.mode() == config::Mode::Socks5) && inbuf_.empty() &&
          !client_.decoder.offer().seen)
        return respondAndClose(504,
                               "upstream did not answer within " + config::seconds(deps_.cfg->handshake_timeout_s));
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

}  // namespace tlstrace::session
