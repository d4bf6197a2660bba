// Forged leaf certificates: one P-256 key pair for the whole run, one certificate per name set,
// kept in a bounded LRU cache so that a repeat visit costs no signing.
#pragma once
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "pki/ca.h"

namespace tlstrace::pki {

struct LeafNames {
  std::string common_name;
  std::vector<std::string> dns;  // subjectAltName dNSName entries
  std::vector<std::string> ips;  // subjectAltName iPAddress entries (text form)
  // Cache key: the CN and the sorted, de-duplicated SANs.
  [[nodiscard]] std::string key() const;
};

// The names for a forged leaf: the upstream certificate's CN and SANs when it is known, else
// `target` (SNI, CONNECT host or upstream address).
[[nodiscard]] LeafNames leafNamesFor(const std::string& target, X509* upstream_cert);

class Forger {
 public:
  enum class KeyType { Ecdsa, Rsa };
  // One leaf key for the run: ECDSA P-256 (fast, the default) or RSA-2048 (for clients that only
  // speak RSA suites, e.g. TLS 1.2 DHE-RSA towards clients with --dhparam).
  Forger(const CertAuthority& ca, std::size_t cache_capacity, KeyType key_type = KeyType::Ecdsa);

  // Returns the leaf for `names` (from the cache or freshly signed); nullptr with `error` set when
  // signing fails. Never throws.
  [[nodiscard]] tls::X509Ptr leaf(const LeafNames& names, std::string& error);
  [[nodiscard]] EVP_PKEY* leafKey() const { return leaf_key_.get(); }
  [[nodiscard]] X509* caCert() const { return ca_.cert.get(); }
  [[nodiscard]] std::uint64_t signings() const { return signings_; }
  [[nodiscard]] std::uint64_t hits() const { return hits_; }
  [[nodiscard]] std::size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return map_.size();
  }

 private:
  [[nodiscard]] tls::X509Ptr sign(const LeafNames& names, std::string& error);

  const CertAuthority& ca_;
  tls::EvpPkeyPtr leaf_key_;
  std::size_t capacity_;
  std::list<std::pair<std::string, tls::X509Ptr>> lru_;  // most recent first
  std::unordered_map<std::string, decltype(lru_)::iterator> map_;
  std::uint64_t signings_ = 0;
  std::uint64_t hits_ = 0;
  std::mutex mu_;  // io threads share one forger and its cache
};

// What a certificate made here is: the forged leaves, and the broken ones of --audit-clients.
struct CertSpec {
  const LeafNames* names = nullptr;
  EVP_PKEY* key = nullptr;          // its public key
  X509* issuer = nullptr;           // nullptr: self-signed (then issuer_key is the certificate's own key)
  EVP_PKEY* issuer_key = nullptr;   // signs it
  const EVP_MD* digest = nullptr;   // nullptr: SHA-256
  long not_before_s = -24L * 3600;  // backdated a day
  // 397 days is the CA/Browser Forum maximum that clients such as Apple's enforce.
  long not_after_s = 396L * 24 * 3600;
  std::string basic_constraints = "critical,CA:FALSE";
  const char* ext_key_usage = "serverAuth";  // "" = no extendedKeyUsage
  bool ca = false;                           // keyUsage keyCertSign (an intermediate)
};
// A signed certificate as `spec` says; nullptr with `error` (the OpenSSL error queue) if not.
[[nodiscard]] tls::X509Ptr makeCertificate(const CertSpec& spec, std::string& error);

// Installs on `ssl` (server role, facing the client) a leaf forged for `target`, carrying the
// names of the upstream certificate when `upstream` (the client-role SSL facing the server) has
// one. False with `error` (the OpenSSL error queue included) when it cannot.
[[nodiscard]] bool installForgedLeaf(SSL* ssl, Forger& forger, const std::string& target, SSL* upstream,
                                     std::string& error);

}  // namespace tlstrace::pki
