// SSL_CTX factories for the two legs, from the per-leg options of the command line.
#pragma once
#include <string>

#include "tls/ossl.h"

namespace tlstrace::tls {

struct LegOptions {
  std::string min_version;  // "1.2", "TLSv1.3", "" = OpenSSL's default
  std::string max_version;
  std::string ciphers;       // TLS <= 1.2 cipher list (OpenSSL syntax)
  std::string ciphersuites;  // TLS 1.3 suites
  std::string groups;        // "X25519:P-256"
};

// The context that faces clients (server role). `dhparam_file` empty = OpenSSL's automatic DH.
[[nodiscard]] SslCtxPtr makeClientFacingContext(const LegOptions& opt, const std::string& dhparam_file);
// The context that faces servers (client role). `ca_file` empty = system trust store.
[[nodiscard]] SslCtxPtr makeUpstreamContext(const LegOptions& opt, const std::string& ca_file, bool insecure);

// Parses "1.2"/"TLSv1.2" into an OpenSSL protocol version; 0 for empty; throws on nonsense.
[[nodiscard]] int protocolVersion(const std::string& s);

}  // namespace tlstrace::tls
