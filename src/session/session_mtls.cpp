// ProxySession: mutual TLS. Upstream, the proxy presents a configured client certificate when the
// server sends CertificateRequest (RFC 8446 4.3.2, RFC 5246 7.4.4); on the client leg,
// --request-client-cert asks the client for one. Each leg where a certificate was requested gets
// a tls.client_certificate event: what went, from where, and (client leg) the verdict.
//
// The client's own certificate cannot be passed on upstream: its CertificateVerify signs the
// client leg's transcript with a key only the client holds. The upstream leg presents the
// configured certificate, whatever the client sent (the client leg's event says so).
#include "config/policy.h"
#include "session/proxy_session.h"
#include "tls/client_cert.h"

namespace tlstrace::session {

using trace::Json;

bool ProxySession::presentClientCertificate() {
  if (!deps_.client_identities) return true;
  // Rules by host glob in order, against the name the upstream certificate is checked for (the
  // SNI, else the target host); the default identity has no host and matches every one.
  const std::string name = verifyName();
  for (const tls::ClientIdentity& id : *deps_.client_identities) {
    if (!id.host.empty() && !config::globMatch(id.host, name)) continue;
    std::string err;
    if (!tls::presentClientIdentity(upstream_.tls->ssl(), id, err)) {
      traceTlsError(upstream_, err, "setup");
      abortClientHandshake(err);
      return false;
    }
    client_identity_ = &id;
    return true;
  }
  return true;
}

void ProxySession::traceClientCertificate(Leg& l) {
  if (!l.certificate_requested || !l.tls || !tracing(trace::kTrust)) return;
  const bool upstream = &l == &upstream_;
  const bool presented = l.client_certs > 0;
  Json out = Json::object();
  out.set("presented", presented);
  out.set("certificates", l.client_certs < 0 ? 0 : l.client_certs);
  if (upstream) out.set("source", client_identity_ && presented ? client_identity_->source : std::string("none"));
  else out.set("source", "client");
  Json f = tls::clientCertificateFields(l.tls->ssl(), upstream, !upstream && !deps_.cfg->client_ca.empty(),
                                        l.verify_failure, deps_.certs);
  out.set("chain", presented ? *f.find("chain") : Json::array());
  for (const char* k : {"verified", "error", "depth"})
    if (const Json* v = f.find(k)) out.set(k, *v);
  if (!upstream && upstream_.certificate_requested)
    out.set("note", presented ? "the server asked for a client certificate too: it got the proxy's own (" +
                                    (client_identity_ ? client_identity_->source : std::string("none configured")) +
                                    "), not this one, whose private key stays with the client"
                              : "the server asked for a client certificate too: see the upstream leg");
  emit(l.which, trace::ev::TlsClientCertificate{{std::move(out)}});
}

}  // namespace tlstrace::session
