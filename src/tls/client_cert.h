// Mutual TLS on both legs: the client certificates the proxy presents to servers that ask for
// one (RFC 8446 4.3.2 / RFC 5246 7.4.4 CertificateRequest), and the client leg's own request
// for a certificate, whose answer is traced and verified but never enforced.
#pragma once
#include <string>
#include <vector>

#include "tls/engine.h"
#include "tls/ossl.h"
#include "trace/json.h"

namespace tlstrace::tls {

class CertSummaryCache;

// A certificate with its chain and private key, loaded once at start.
struct ClientIdentity {
  std::string source;  // how it was configured: "--upstream-client-cert" or "--upstream-client-cert-for GLOB"
  std::string host;    // the host glob it is for; empty: every host (the default)
  X509Ptr cert;
  std::vector<X509Ptr> chain;  // after the leaf, as in the PEM file
  EvpPkeyPtr key;
};

// Reads `cert_file` (PEM: the leaf, then its chain) and `key_file` (PEM; empty: the key is in
// `cert_file`) and checks that the key matches; throws OpensslError naming the file.
[[nodiscard]] ClientIdentity loadClientIdentity(const std::string& cert_file, const std::string& key_file);

// Makes `ssl` (client role) answer a CertificateRequest with `id`; false with `error` if OpenSSL
// refuses it.
[[nodiscard]] bool presentClientIdentity(SSL* ssl, const ClientIdentity& id, std::string& error);

// The client-facing context asks every client for a certificate (SSL_VERIFY_PEER without
// FAIL_IF_NO_PEER_CERT: an empty Certificate is accepted) and verifies what comes against
// `ca_file` (empty: nothing is verified), whose subjects are sent as the acceptable CAs.
// Verification failures are reported to the engine's observer; the handshake goes on.
void requestClientCertificates(SSL_CTX* ctx, const std::string& ca_file);

// The fields of tls.client_certificate (docs/events.md): `chain` as sent by the client (server
// role: `ssl` is the client leg) and, when `verify` is set, the verdict against --client-ca; or
// the chain the proxy presented (client role) when `presented_by_proxy` is set.
[[nodiscard]] trace::Json clientCertificateFields(SSL* ssl, bool presented_by_proxy, bool verify,
                                                  const VerifyFailure& failure, CertSummaryCache* cache);

}  // namespace tlstrace::tls
