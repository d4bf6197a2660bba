// Small helpers shared by CA creation and leaf forging.
#pragma once
#include "tls/ossl.h"

namespace tlstrace::pki {

[[nodiscard]] tls::EvpPkeyPtr generateP256Key();
[[nodiscard]] tls::EvpPkeyPtr generateRsaKey(unsigned bits);
// 128-bit random positive serial (RFC 5280 4.1.2.2: at most 20 octets, positive).
void setRandomSerial(X509* x);
// Adds an X.509v3 extension given in OpenSSL's config syntax; throws on failure.
void addExtension(X509* cert, X509* issuer, int nid, const std::string& value);

}  // namespace tlstrace::pki
