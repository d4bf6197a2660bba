// The CA certificate in the encodings trust stores take: DER (Windows, Android, NSS's certutil
// as well as PEM) and a PKCS#12 truststore a JVM reads as is (RFC 7292, with the attribute
// that makes Java trust a certificate-only entry).
#pragma once
#include <string>

#include "tls/ossl.h"

namespace tlstrace::pki {

[[nodiscard]] std::string certificateDer(X509* cert);

// A PKCS#12 file holding only `cert`, under `alias`, protected (MAC and encryption) by
// `password`. The bag carries Oracle's trustedKeyUsage attribute (OID 2.16.840.1.113894.746875.1.1
// = anyExtendedKeyUsage), without which Java's PKCS12 keystore ignores certificate-only entries.
[[nodiscard]] std::string certificateP12(X509* cert, const std::string& alias, const std::string& password);

}  // namespace tlstrace::pki
