// ProxySession as a probe (session/probe.h): the upstream leg alone, started without a client,
// then closed politely once established (after a short wait for a TLS 1.3 session ticket).
#include <utility>

#include "session/proxy_session.h"

namespace tlstrace::session {

const std::vector<Action>& ProxySession::probe(const ProbeSpec& spec) {
  actions_.clear();
  probe_ = std::make_unique<ProbeSpec>(spec);
  start_ = last_activity_ = deps_.now();
  target_ = spec.target;
  sni_ = spec.sni;
  client_alpn_ = spec.alpn;
  // conn.open without a client or a listener (docs/events.md, mode "probe").
  emit(trace::Leg::None, trace::ev::ConnOpen{{}, {}, "probe", target_.str()});
  armWatchdog();
  connectUpstream(AfterConnect::UpstreamTls);
  return actions_;
}

// The upstream leg is established: traced now (trust, tls.established, tls.key_exchange), as the
// proxy does once the client's flight is out. A TLS 1.3 server sends its tickets after its
// Finished (RFC 8446 4.6.1): they are read for a moment before closing; TLS 1.2 ones came within
// the handshake (RFC 5077 3.3).
void ProxySession::probeEstablished() {
  settleUpstream();
  if (probe_->save) (void)probe_->save->save(upstream_.tls->ssl());
  if (!upstream_.tls13 || probe_->ticket_wait_s <= 0 || (probe_->save && probe_->save->saved())) return probeDone();
  state_ = State::ProbeTickets;
  actions_.push_back(act::ArmTimer{deps_.now() + std::chrono::duration_cast<SteadyClock::duration>(
                                                     std::chrono::duration<double>(probe_->ticket_wait_s))});
  probeRead();
}

void ProxySession::probeRead() {
  // Post-handshake messages go through the engine's read (the observer traces them); any
  // application data the server sends unasked is dropped.
  const auto st = upstream_.tls->readEach([](std::span<const std::uint8_t>) { return true; });
  if (probe_->save && probe_->save->save(upstream_.tls->ssl())) return probeDone();
  using S = tls::TlsEngine::Status;
  if (st == S::WantIo || st == S::Ok) return readFrom(upstream_);
  probeDone();
}

void ProxySession::probeDone() {
  upstream_.t.tls_relayed = true;  // an established TLS leg: tcp.close says whether close_notify went
  closeGracefully({});
}

}  // namespace tlstrace::session
