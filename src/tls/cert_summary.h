// Certificate summaries for traces: subject, issuer, serial, validity, SANs, key, signature
// algorithm and SHA-256 fingerprint, read from the certificate via OpenSSL.
#pragma once
#include <list>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "tls/ossl.h"
#include "trace/decoder.h"
#include "trace/json.h"

namespace tlstrace::tls {

[[nodiscard]] trace::Json summarizeCertificate(X509* cert);
// From DER bytes (untrusted); an {"error": ...} object when they do not parse.
[[nodiscard]] trace::Json summarizeCertificateDer(std::span<const std::uint8_t> der);

// Summaries by DER: the same certificates cross every connection (the server's chain, the forged
// leaf), and parsing one costs more than an ECDSA signature in OpenSSL 3. Bounded LRU, locked so
// that io threads can share it.
class CertSummaryCache {
 public:
  explicit CertSummaryCache(std::size_t capacity = 512) : capacity_(capacity) {}
  [[nodiscard]] trace::Json get(std::span<const std::uint8_t> der);
  [[nodiscard]] trace::Json get(X509* cert);
  [[nodiscard]] std::size_t size() const;

 private:
  std::size_t capacity_;
  mutable std::mutex mu_;
  std::list<std::pair<std::string, trace::Json>> lru_;
  std::unordered_map<std::string, decltype(lru_)::iterator> map_;
};

// The X.509 decoders the pure handshake decoder is given (certificate summaries, DNs).
[[nodiscard]] trace::DerDecoders derDecoders(CertSummaryCache* cache = nullptr);

struct CertNames {
  std::string common_name;
  std::vector<std::string> dns;
  std::vector<std::string> ips;
};
[[nodiscard]] CertNames certificateNames(X509* cert);

}  // namespace tlstrace::tls
