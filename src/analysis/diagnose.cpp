#include "analysis/diagnose.h"

#include "tls/crypto.h"

namespace tlstrace::analysis {

namespace {

using tls::crypto::SslReasonClass;

Diagnosis fromAlert(const std::string& alert, bool client_leg) {
  if (alert == "bad_certificate" || alert == "unknown_ca" || alert == "certificate_unknown" ||
      alert == "unsupported_certificate" || alert == "certificate_expired") {
    if (client_leg)
      return {"client_rejected_certificate",
              "the client does not trust tlstrace's forged certificate: install the tlstrace CA (ca.pem) in the "
              "client's trust store (curl --cacert, REQUESTS_CA_BUNDLE for Python requests, SSL_CERT_FILE, "
              "NODE_EXTRA_CA_CERTS, a Java truststore: `tlstrace ca show` prints each); "
              "a client that pins certificates cannot be intercepted"};
    return {"server_rejected_certificate", "the server refused the client certificate the proxy sent"};
  }
  if (alert == "protocol_version")
    return {"version_mismatch",
            "no TLS version in common: compare supported_versions on both legs "
            "(--client-tls-min/max, --upstream-tls-min/max)"};
  if (alert == "insufficient_security")
    return {"insufficient_security",
            "the peer wants stronger parameters than offered: compare cipher suites and groups"};
  if (alert == "certificate_required")
    return {"client_certificate_required",
            "the server requires a client certificate; tlstrace does not forward client certificates yet"};
  if (alert == "handshake_failure")
    return {"handshake_failure",
            "the peer refused the handshake: usually no common cipher suite, group or signature "
            "algorithm; compare the ClientHello with what the peer accepts"};
  if (alert == "unrecognized_name")
    return {"unrecognized_name", "the server does not know the SNI name sent: check the host name"};
  if (alert == "no_application_protocol")
    return {"no_application_protocol", "no ALPN protocol in common (e.g. h2 only against http/1.1 only)"};
  return {"alert_" + alert, "the peer ended the handshake with " + alert};
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
              "the server's DH group is too small for OpenSSL's security level: the server should "
              "use 2048 bits or more (RFC 7919 ffdhe2048); to inspect it anyway, pass "
              "--upstream-ciphers 'DEFAULT:@SECLEVEL=0'"};
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
  if (reason == SslReasonClass::Alert || !f.alert_received.empty()) return fromAlert(f.alert_received, f.client_leg);
  if (f.peer_closed)
    return {"peer_closed", "the peer closed the connection in the middle of the handshake: check its log"};
  return {"tls_error", "see reason for OpenSSL's error text"};
}

}  // namespace tlstrace::analysis
