// SSL_CTX factories for the two legs, from the per-leg options of the command line.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

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

// The protocol versions a context will actually negotiate, as wire codes (0x0303 = TLS 1.2; 0:
// no bound): its configured minimum, raised to TLS 1.2 at security level 1 and above (OpenSSL 3
// speaks TLS 1.0/1.1 only at level 0), and its configured maximum.
struct VersionRange {
  std::uint16_t min = 0;
  std::uint16_t max = 0;
};
[[nodiscard]] VersionRange acceptedVersions(SSL_CTX* ctx);

// Limits the signature algorithms a context offers ("ECDSA+SHA256:rsa_pss_rsae_sha256"); throws on
// a list OpenSSL rejects.
void setSignatureAlgorithms(SSL_CTX* ctx, const std::string& list);

// The cipher suites a client-role context built from `opt` offers, in its order: the IANA code,
// OpenSSL's name (for cipher strings) and the standard name (the probe's scan of suites).
struct CipherName {
  std::uint16_t id = 0;
  std::string openssl;
  std::string standard;
};
[[nodiscard]] std::vector<CipherName> offeredCiphers(const LegOptions& opt);

// Parses "1.2"/"TLSv1.2" into an OpenSSL protocol version; 0 for empty; throws on nonsense.
[[nodiscard]] int protocolVersion(const std::string& s);

}  // namespace tlstrace::tls
