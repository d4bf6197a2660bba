// Certificate summaries for traces: subject, issuer, serial, validity, SANs, key, signature
// algorithm and SHA-256 fingerprint, read from the certificate via OpenSSL.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "tls/ossl.h"
#include "trace/decoder.h"
#include "trace/json.h"

namespace tlstrace::tls {

[[nodiscard]] trace::Json summarizeCertificate(X509* cert);
// From DER bytes (untrusted); an {"error": ...} object when they do not parse.
[[nodiscard]] trace::Json summarizeCertificateDer(std::span<const std::uint8_t> der);

// The X.509 decoders the pure handshake decoder is given (certificate summaries, DNs).
[[nodiscard]] trace::DerDecoders derDecoders();

struct CertNames {
  std::string common_name;
  std::vector<std::string> dns;
  std::vector<std::string> ips;
};
[[nodiscard]] CertNames certificateNames(X509* cert);

}  // namespace tlstrace::tls
