// Passthrough (--passthrough, --auto-passthrough): the connection is relayed as it is, so the
// client sees the server's own certificate; the plaintext start of both directions (ClientHello,
// ServerHello, and in TLS <= 1.2 Certificate, ServerKeyExchange, ClientKeyExchange) is read off
// the byte stream (wire/record_stream.h) and goes through the same decoder, events and
// key-exchange analysis as an intercepted leg's messages, on the client leg.
#include "analysis/kex.h"
#include "session/passthrough.h"
#include "session/proxy_session.h"
#include "wire/handshake.h"

namespace tlstrace::session {

namespace {

// The ClientHello's server_name (RFC 6066 3), or empty.
std::string helloSni(std::span<const std::uint8_t> hello) {
  if (hello.size() < 4) return {};
  const auto ch = wire::decodeClientHello(hello.subspan(4));
  if (ch.status != wire::Status::Ok) return {};
  const auto* ext = wire::findExtension(ch.value.extensions, wire::ExtensionType::ServerName);
  if (!ext) return {};
  const auto names = wire::decodeServerName(ext->data);
  return names && !names->empty() ? names->front() : std::string();
}

// RFC 8446 6.2 / RFC 5246 7.2.2: the alerts a client sends when it does not accept the
// server's certificate.
bool certificateAlert(int alert) {
  switch (alert) {
    case 42:  // bad_certificate
    case 43:  // unsupported_certificate
    case 44:  // certificate_revoked
    case 45:  // certificate_expired
    case 46:  // certificate_unknown
    case 48:  // unknown_ca
      return true;
    default: return false;
  }
}

}  // namespace

// The address part of client_addr_ ("ip:port", "[v6]:port"), derived when needed rather than
// kept in every session.
std::string ProxySession::clientIp() const {
  std::string ip = client_addr_.substr(0, client_addr_.rfind(':'));
  if (ip.size() > 2 && ip.front() == '[') ip = ip.substr(1, ip.size() - 2);
  return ip;
}

bool ProxySession::maybePassthrough() {
  if (!deps_.passthrough) return false;
  config::PassthroughSubject subject;
  subject.host = helloSni(hello_);
  if (subject.host.empty()) subject.host = target_.host;
  subject.address = config::parseIp(target_.host);
  subject.port = target_.port;
  auto rule = deps_.passthrough->match(clientIp(), subject);
  if (!rule) return false;
  emit(trace::Leg::None, trace::ev::ConnPassthrough{subject.host, std::move(*rule)});
  traceClientHello();
  pass_ = std::make_unique<PassState>();
  observePassthrough(client_, inbuf_);
  if (upstream_.t.open) startPlainRelay();
  else connectUpstream(AfterConnect::PlainRelay);
  return true;
}

// One direction's bytes, before they are relayed: the plaintext handshake messages in them.
void ProxySession::observePassthrough(Leg& src, std::span<const std::uint8_t> bytes) {
  const bool from_client = &src == &client_;
  wire::RecordStream& stream = from_client ? pass_->from_client : pass_->from_server;
  if (stream.done()) return;
  static thread_local std::vector<wire::RecordStream::Item> items;
  items.clear();
  stream.feed(bytes, items);
  for (const auto& item : items) {
    // As the proxy's client leg would have seen them: the client's "in", the server's "out".
    client_.obs.onTlsMessage(!from_client, item.content_type, item.bytes);
    if (item.content_type != 22 || item.bytes.empty()) continue;
    const auto type = static_cast<wire::HandshakeType>(item.bytes[0]);
    const trace::ServerChoice& choice = client_.decoder.choice();
    if (type == wire::HandshakeType::ServerHello && choice.seen && !choice.hrr) {
      if (client_.decoder.version() != 0x0304) {
        // TLS <= 1.2: a ChangeCipherSpec ends each direction's plaintext.
        pass_->from_client.setCcsEnds();
        pass_->from_server.setCcsEnds();
      } else {
        analysePassthrough();  // both key shares are known: the rest is encrypted
      }
    }
    // TLS <= 1.2: the client's key exchange completes what the analysis needs.
    if (type == wire::HandshakeType::ClientKeyExchange) analysePassthrough();
  }
}

void ProxySession::analysePassthrough() {
  if (pass_->analysed || !deps_.primes) return;
  analysis::KexInput in;
  in.offer = &client_.decoder.offer();
  in.choice = &client_.decoder.choice();
  in.kex = &client_.decoder.kex();
  if (!analysis::hasKeyExchange(in)) return;
  pass_->analysed = true;
  trace::Json kex = analysis::assessKeyExchange(in, *deps_.primes);
  if (analysis::safePrimePending(kex)) awaitPrimeTest(client_, in);
  client_.key_exchange = analysis::keepForSummary(analysis::SummaryInput::KeyExchange, kex);
  emit(trace::Leg::Client, trace::ev::TlsKeyExchange{{std::move(kex)}});
}

// A client aborted the handshake with our forged certificate: one more rejection of it for this
// host; at the --auto-passthrough count, the host passes for this client from the next connection.
void ProxySession::noteCertificateRejection(int alert) {
  if (!deps_.passthrough || !deps_.passthrough->learning() || client_.handshake_ms || pass_) return;
  if (!certificateAlert(alert)) return;
  unsigned count = 0;
  const std::string host = verifyName();
  const std::string client_ip = clientIp();
  if (!deps_.passthrough->noteRejection(client_ip, host, count)) return;
  emit(trace::Leg::None,
       trace::ev::PassthroughAuto{client_ip, host, count,
                                  "restart tlstrace (or run it without --auto-passthrough) to intercept " + host +
                                      " for " + client_ip + " again"});
}

}  // namespace tlstrace::session
