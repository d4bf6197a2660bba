// ProxySession: a STARTTLS preamble (session/starttls.h). Both legs are plaintext and relayed
// message by message while the machine names each step; once the server has said yes (or the
// MySQL client asked and went on) the client's ClientHello is awaited as for any TLS connection,
// with the upstream connection already up: the proxy's own handshake upstream, then the client's.
#include "session/proxy_session.h"
#include "wire/byte_reader.h"

namespace tlstrace::session {

std::optional<StartTlsProto> ProxySession::startTlsProto() const {
  return startTlsFor(deps_.cfg->starttls, target_.port);
}

void ProxySession::beginStartTls() {
  starttls_ = std::make_unique<StartTlsMachine>(*startTlsProto());
  state_ = State::StartTls;
  readFrom(upstream_);
  readFrom(client_);
  if (inbuf_.empty()) return;
  // Bytes the client sent along with its CONNECT: the preamble's first.
  const std::vector<std::uint8_t> early = std::exchange(inbuf_, {});
  onStartTlsBytes(client_, early);
}

void ProxySession::onStartTlsBytes(Leg& l, std::span<const std::uint8_t> bytes) {
  const bool from_client = &l == &client_;
  StartTlsResult r = starttls_->feed(from_client, bytes);
  const std::string proto(startTlsName(starttls_->proto()));
  for (auto& s : r.steps)
    emit(s.from_client ? trace::Leg::Client : trace::Leg::Upstream,
         trace::ev::ConnStartTls{proto, std::move(s.step), std::move(s.text)});
  if (r.refused) startTlsRefused(*r.refused);
  Leg& dst = other(l);
  if (!r.forward.empty()) {
    (from_client ? c2s_ : s2c_) += r.forward.size();
    dst.pending.insert(dst.pending.end(), r.forward.begin(), r.forward.end());
    flush(dst);
  }
  using K = StartTlsResult::Kind;
  switch (r.kind) {
    case K::Continue: return readFrom(l);
    case K::Plain:
      if (!r.back.empty()) {  // the other peer's partial message, not judged: on its way as it is
        (from_client ? s2c_ : c2s_) += r.back.size();
        l.pending.insert(l.pending.end(), r.back.begin(), r.back.end());
      }
      return endStartTlsPlain(l, r.why, r.forward);
    case K::Upgrade:
    case K::DirectTls:
      starttls_.reset();
      inbuf_ = std::move(r.rest);
      state_ = State::PeekingHello;
      handshake_from_ = deps_.now();  // the handshake timeout counts from here
      armWatchdog();
      readFrom(upstream_);  // a server that speaks now is not doing TLS (serverSpokeFirst)
      if (inbuf_.empty()) return readFrom(client_);
      return onHelloBytes();
  }
}

// The server said no: the client has its answer (relayed as it came) and decides what follows;
// the connection is otherwise left alone.
void ProxySession::startTlsRefused(const std::string& answer) {
  trace::ev::TlsError e;
  e.reason = "the server refused STARTTLS: " + answer;
  e.stage = "starttls";
  e.cause = "starttls_refused";
  e.hint =
      "the server does not offer TLS on this connection now; its answer went to the client, and "
      "whatever the client does next is relayed as plain TCP";
  emit(trace::Leg::Upstream, std::move(e));
}

// Not a STARTTLS exchange (any more): everything from here on is relayed as it is. Only the start
// of the deciding message is shown (it may be a USER/PASS or a login packet).
void ProxySession::endStartTlsPlain(Leg& l, const std::string& why, std::span<const std::uint8_t> decided) {
  const std::string proto(startTlsName(starttls_->proto()));
  emit(l.which, trace::ev::ConnPlaintext{"STARTTLS " + proto + ": " + why + "; relaying as plain TCP",
                                         wire::toHex(decided.first(std::min<std::size_t>(decided.size(), 4)))});
  starttls_.reset();
  startRelay();
}

// A peer ended its side during the preamble: what it sent is relayed, then its FIN, as plain TCP.
void ProxySession::onStartTlsClosed(Leg& l) {
  const bool from_client = &l == &client_;
  std::vector<std::uint8_t> held = starttls_->takeHeld(from_client);
  if (!held.empty()) {
    (from_client ? c2s_ : s2c_) += held.size();
    other(l).pending.insert(other(l).pending.end(), held.begin(), held.end());
  }
  endStartTlsPlain(l, std::string(trace::legName(l.which)) + " closed the connection during the preamble", held);
  endOfStream(l, true);
}

}  // namespace tlstrace::session
