#include "analysis/diagnose.h"

#include <algorithm>

#include "tls/crypto.h"
#include "wire/registry.h"

namespace tlstrace::analysis {

namespace {

using tls::crypto::SslReasonClass;

// RFC 5246 7.4.4 / RFC 8446 4.3.2: a server that asked for a client certificate and got none
// ends the handshake with handshake_failure (TLS 1.2, OpenSSL) or certificate_required (TLS 1.3).
Diagnosis clientCertificateRequired() {
  return {"client_certificate_required",
          "the server requires a client certificate (it sent a CertificateRequest and got an empty "
          "Certificate): give the proxy one with --upstream-client-cert FILE --upstream-client-key FILE, or "
          "--upstream-client-cert-for HOSTGLOB=CERT,KEY (the client's own cannot be passed on: its key stays "
          "with the client)"};
}

// The client asked to renegotiate and the proxy itself answered no_renegotiation (RFC 5746 4.2):
// OpenSSL refuses client-initiated renegotiation by default; the client then gave up.
Diagnosis renegotiationRefused() {
  return {"renegotiation_refused",
          "the client started a renegotiation and tlstrace refused it (no_renegotiation: OpenSSL "
          "does not accept client-initiated renegotiation); the client then ended the connection. "
          "Renegotiation is insecure without RFC 5746 and removed in TLS 1.3: prefer a new connection"};
}

Diagnosis invalidDh(const FailureFacts& f) {
  return {"invalid_dh_parameter", "the server's DHE parameters are invalid: " + f.invalid_dh +
                                      " (RFC 7919 5.1, NIST SP 800-56A 5.6.2.3.1: g and the public values must lie in "
                                      "[2, p-2], else the shared secret is 0, 1 or p-1); the server's DH configuration "
                                      "or implementation is broken: see tls.key_exchange"};
}

Diagnosis fromAlert(const std::string& alert, const FailureFacts& f) {
  const bool client_leg = f.client_leg;
  // The proxy sent no client certificate: after a CertificateRequest, a certificate complaint
  // or a bare handshake_failure from the server means it wanted one.
  if (!client_leg && f.certificate_requested && !f.client_certificate_sent &&
      (alert == "handshake_failure" || alert == "bad_certificate" || alert == "certificate_unknown" ||
       alert == "certificate_required"))
    return clientCertificateRequired();
  if (alert == "bad_certificate" || alert == "unknown_ca" || alert == "certificate_unknown" ||
      alert == "unsupported_certificate" || alert == "certificate_expired") {
    if (client_leg)
      return {"client_rejected_certificate",
              "the client does not trust tlstrace's forged certificate: install the tlstrace CA (ca.pem) in the "
              "client's trust store (curl --cacert, REQUESTS_CA_BUNDLE for Python requests, SSL_CERT_FILE, "
              "NODE_EXTRA_CA_CERTS, a Java truststore: `tlstrace ca show` prints each); "
              "a client that pins certificates cannot be intercepted"};
    return {"server_rejected_certificate",
            "the server refused the client certificate the proxy sent: check that --upstream-client-cert is "
            "issued by a CA the server accepts (its CertificateRequest lists them, tls.message)"};
  }
  if (alert == "protocol_version")
    return {"version_mismatch",
            "no TLS version in common: compare supported_versions on both legs "
            "(--client-tls-min/max, --upstream-tls-min/max)"};
  if (alert == "insufficient_security")
    return {"insufficient_security",
            "the peer wants stronger parameters than offered: compare cipher suites and groups"};
  if (alert == "certificate_required") return clientCertificateRequired();
  if (alert == "handshake_failure")
    return {"handshake_failure",
            "the peer refused the handshake: usually no common cipher suite, group or signature "
            "algorithm; compare the ClientHello with what the peer accepts"};
  if (alert == "unrecognized_name")
    return {"unrecognized_name", "the server does not know the SNI name sent: check the host name"};
  if (alert == "no_application_protocol")
    return {"no_application_protocol", "no ALPN protocol in common (e.g. h2 only against http/1.1 only)"};
  return {"alert_" + alert, "the peer ended the connection with a " + alert + " alert: its log says why"};
}

}  // namespace

Diagnosis diagnose(const FailureFacts& f) {
  if (f.not_tls)
    return {"not_tls",
            "the client did not send a TLS ClientHello: is it speaking plain HTTP (or something else) to a TLS port?"};
  if (f.timeout)
    return {"timeout",
            "no progress within the handshake timeout: is the peer speaking TLS on this port? (--handshake-timeout)"};
  if (f.peer_reset)
    return {"peer_reset", "the peer reset the connection: check its log; crashed servers and middleboxes do this"};
  if (!f.invalid_dh.empty()) return invalidDh(f);
  if (f.alert_sent == "no_renegotiation") return renegotiationRefused();
  const SslReasonClass reason = tls::crypto::classifySslReason(f.ssl_reason);
  switch (reason) {
    case SslReasonClass::NoSharedCipher:
      return {"no_shared_cipher",
              "no cipher suite in common: compare the ClientHello's cipher_suites with what the "
              "server accepts (--client-ciphers/--upstream-ciphers change the proxy's offer)"};
    case SslReasonClass::NoSharedGroup:
      return {"no_shared_group",
              "no key-exchange group in common: compare supported_groups (--client-groups/--upstream-groups)"};
    case SslReasonClass::VersionMismatch:
      return {"version_mismatch",
              "no TLS version in common: compare supported_versions on both legs "
              "(--client-tls-min/max, --upstream-tls-min/max)"};
    case SslReasonClass::DhKeyTooSmall:
      return {"dh_key_too_small",
              "the server's " + (f.dh_bits > 0 ? std::to_string(f.dh_bits) + "-bit " : std::string()) +
                  "DH group is too small for OpenSSL's security level (tls.key_exchange has its p, g, "
                  "Ys and rating): the server should use 2048 bits or more (RFC 7919 ffdhe2048); to "
                  "relay it anyway, pass --upstream-ciphers 'DEFAULT:@SECLEVEL=0'"};
    case SslReasonClass::BadDhValue:
      return {"invalid_dh_parameter",
              "OpenSSL found the server's DHE parameters or public value invalid; tls.key_exchange "
              "shows p, g, Ys and the checks that failed"};
    case SslReasonClass::CertificateVerifyFailed:
      if (tls::crypto::isHostnameMismatch(f.verify_error))
        return {"hostname_mismatch",
                "the server's certificate does not carry the name asked for: use a name from "
                "tls.trust.chain[0].san, or --insecure to relay anyway (the client then sees the same "
                "name mismatch: the forged leaf carries only the server's names)"};
      return {"upstream_certificate_untrusted",
              "the server's certificate does not verify: give its CA with "
              "--upstream-ca, or --insecure to relay anyway (the verdict stays in the trace)"};
    case SslReasonClass::HttpRequest: return {"not_tls", "plain HTTP was sent to a TLS port"};
    case SslReasonClass::NoSharedSignatureAlgorithm:
      return {"no_shared_signature_algorithm",
              "no signature algorithm in common: compare signature_algorithms with "
              "the certificate's key type"};
    case SslReasonClass::Alert:
    case SslReasonClass::Other: break;
  }
  if (reason == SslReasonClass::Alert || !f.alert_received.empty()) return fromAlert(f.alert_received, f);
  if (f.peer_closed)
    return {"peer_closed", "the peer closed the connection in the middle of the handshake: check its log"};
  return {"tls_error", "see reason for OpenSSL's error text"};
}

std::optional<Diagnosis> clientVersionRefusal(const std::vector<std::uint16_t>& offered, std::uint16_t min,
                                              std::uint16_t max) {
  std::uint16_t lo = 0xffff, hi = 0;
  for (const std::uint16_t v : offered) {
    if (wire::isGrease(v)) continue;
    if ((min == 0 || v >= min) && (max == 0 || v <= max)) return std::nullopt;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (hi == 0) return std::nullopt;  // nothing to judge by: OpenSSL decides
  const std::string accepts = min && min == max ? "only " + std::string(wire::versionName(min))
                              : min && max
                                  ? std::string(wire::versionName(min)) + " to " + std::string(wire::versionName(max))
                              : min ? std::string(wire::versionName(min)) + " and above"
                                    : "up to " + std::string(wire::versionName(max));
  if (min != 0 && hi < min) {
    const std::string v(wire::versionName(hi));
    return Diagnosis{"client_version_too_low",
                     "the client offers at most " + v + "; the proxy's client leg accepts " + accepts +
                         " (--client-tls-min): to intercept this client pass --client-tls-min " +
                         (v.rfind("TLSv", 0) == 0 ? v.substr(4) : v) +
                         " (below TLS 1.2 that also lowers OpenSSL's security level on that leg)"};
  }
  const std::string v(wire::versionName(lo));
  return Diagnosis{"client_version_too_high", "the client offers no version below " + v +
                                                  "; the proxy's client leg accepts " + accepts +
                                                  " (--client-tls-max): raise or drop --client-tls-max"};
}

}  // namespace tlstrace::analysis
