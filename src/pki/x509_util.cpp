#include "pki/x509_util.h"

#include <openssl/rand.h>
#include <openssl/rsa.h>

namespace tlstrace::pki {

using namespace tlstrace::tls;

EvpPkeyPtr generateP256Key() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) throw OpensslError("cannot generate a P-256 key");
  return key;
}

EvpPkeyPtr generateRsaKey(unsigned bits) {
  EvpPkeyPtr key(EVP_RSA_gen(bits));
  if (!key) throw OpensslError("cannot generate an RSA key");
  return key;
}

void setRandomSerial(X509* x) {
  unsigned char buf[16];
  if (RAND_bytes(buf, sizeof buf) != 1) throw OpensslError("RAND_bytes");
  buf[0] &= 0x7f;
  buf[0] |= 0x01;  // positive and never shorter than 16 octets
  BnPtr bn(BN_bin2bn(buf, sizeof buf, nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x))) throw OpensslError("serial");
}

void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || !X509_add_ext(cert, ext.get(), -1))
    throw OpensslError(std::string("cannot add extension ") + OBJ_nid2sn(nid) + "=" + value);
}

}  // namespace tlstrace::pki
