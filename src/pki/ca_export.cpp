#include "pki/ca_export.h"

#include <openssl/objects.h>
#include <openssl/pkcs12.h>

namespace tlstrace::pki {

using tls::OpensslError;

std::string certificateDer(X509* cert) {
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert, &der);
  if (n <= 0) throw OpensslError("cannot encode the certificate as DER");
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  return out;
}

namespace {
using Pkcs12Ptr = std::unique_ptr<PKCS12, tls::Deleter<&PKCS12_free>>;
using ObjectPtr = std::unique_ptr<ASN1_OBJECT, tls::Deleter<&ASN1_OBJECT_free>>;
// The stacks PKCS12_add_cert and PKCS12_add_safe grow through a pointer to their pointer.
struct Stacks {
  STACK_OF(PKCS12_SAFEBAG) * bags = nullptr;
  STACK_OF(PKCS7) * safes = nullptr;
  ~Stacks() {
    sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
    sk_PKCS7_pop_free(safes, PKCS7_free);
  }
};
}  // namespace

std::string certificateP12(X509* cert, const std::string& alias, const std::string& password) {
  // What OpenSSL 3.2's `pkcs12 -export -nokeys -jdktrust anyExtendedKeyUsage` writes, by hand:
  // OpenSSL 3.0 has no option for the attribute.
  Stacks st;
  PKCS12_SAFEBAG* bag = PKCS12_add_cert(&st.bags, cert);
  if (!bag) throw OpensslError("cannot make the PKCS#12 certificate bag");
  ObjectPtr any_eku(OBJ_txt2obj("2.5.29.37.0", 1));
  // (len -1: the data is the ASN1_OBJECT itself, X509_ATTRIBUTE_set1_data)
  if (!any_eku || !PKCS12_add_friendlyname_asc(bag, alias.c_str(), -1) ||
      !PKCS12_add1_attr_by_txt(bag, "2.16.840.1.113894.746875.1.1", V_ASN1_OBJECT,
                               reinterpret_cast<const unsigned char*>(any_eku.get()), -1))
    throw OpensslError("cannot set the PKCS#12 bag attributes");
  // PBES2 with AES-256-CBC and PBKDF2, as OpenSSL 3's default export (Java 17 reads it).
  if (!PKCS12_add_safe(&st.safes, st.bags, NID_aes_256_cbc, PKCS12_DEFAULT_ITER, password.c_str()))
    throw OpensslError("cannot make the PKCS#12 safe");
  Pkcs12Ptr p12(PKCS12_add_safes(st.safes, 0));
  if (!p12 || !PKCS12_set_mac(p12.get(), password.c_str(), -1, nullptr, 0, PKCS12_DEFAULT_ITER, EVP_sha256()))
    throw OpensslError("cannot make the PKCS#12 file");
  unsigned char* der = nullptr;
  const int n = i2d_PKCS12(p12.get(), &der);
  if (n <= 0) throw OpensslError("cannot encode the PKCS#12 file");
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  return out;
}

}  // namespace tlstrace::pki
