#include "tls/crypto.h"

#include <gmp.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/dh.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/ssl.h>
#include <openssl/sslerr.h>
#include <openssl/x509_vfy.h>

#include <memory>

#include "tls/ossl.h"

namespace tlstrace::tls::crypto {

namespace {

using BnCtxPtr = std::unique_ptr<BN_CTX, Deleter<&BN_CTX_free>>;

BnPtr toBn(Bytes b) { return BnPtr(BN_bin2bn(b.data(), static_cast<int>(b.size()), nullptr)); }

// Fetched once: EVP_md5()/EVP_sha256() make OpenSSL 3 look the algorithm up again on every
// digest, which costs more than hashing these few hundred bytes. Held for the process lifetime.
const EVP_MD* md5() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "MD5", nullptr);
  return md;
}
const EVP_MD* sha256() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

std::vector<std::uint8_t> toBytes(const BIGNUM* p) {
  std::vector<std::uint8_t> out(static_cast<std::size_t>(BN_num_bytes(p)));
  BN_bn2bin(p, out.data());
  return out;
}

// RFC 7919 and RFC 5114 groups by name through the provider.
BnPtr namedDhPrime(const char* group) {
  BIGNUM* p = nullptr;
  EVP_PKEY_CTX* pctx = EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr);
  EVP_PKEY* params = nullptr;
  if (pctx && EVP_PKEY_paramgen_init(pctx) > 0) {
    OSSL_PARAM ps[] = {OSSL_PARAM_construct_utf8_string("group", const_cast<char*>(group), 0), OSSL_PARAM_END};
    if (EVP_PKEY_CTX_set_params(pctx, ps) > 0 && EVP_PKEY_paramgen(pctx, &params) > 0 &&
        !EVP_PKEY_get_bn_param(params, OSSL_PKEY_PARAM_FFC_P, &p))
      p = nullptr;
  }
  EVP_PKEY_free(params);
  EVP_PKEY_CTX_free(pctx);
  return BnPtr(p);
}

int nidOfCurve(std::uint16_t group) {
  switch (group) {
    case 23: return NID_X9_62_prime256v1;
    case 24: return NID_secp384r1;
    case 25: return NID_secp521r1;
    case 21: return NID_secp224r1;
    case 19: return NID_X9_62_prime192v1;
    case 22: return NID_secp256k1;
    case 26: return NID_brainpoolP256r1;
    case 27: return NID_brainpoolP384r1;
    case 28: return NID_brainpoolP512r1;
    default: return NID_undef;
  }
}

}  // namespace

std::size_t digest(DigestAlg alg, Bytes data, std::span<std::uint8_t, kMaxDigestSize> out) {
  static_assert(kMaxDigestSize >= EVP_MAX_MD_SIZE);
  const EVP_MD* md = alg == DigestAlg::Md5 ? md5() : sha256();
  unsigned int n = 0;
  if (md == nullptr || EVP_Digest(data.data(), data.size(), out.data(), &n, md, nullptr) != 1) return 0;
  return n;
}

int bitLength(Bytes n) {
  BnPtr bn = toBn(n);
  return BN_num_bits(bn.get());
}

// 2 <= v <= p-2 (RFC 7919 5.1, NIST SP 800-56A 5.6.2.3.1).
bool inRangeTwoToPMinusTwo(Bytes v, Bytes p) {
  BnPtr vb = toBn(v), pm2 = toBn(p);
  BN_sub_word(pm2.get(), 2);
  BnPtr two(BN_new());
  BN_set_word(two.get(), 2);
  return BN_cmp(vb.get(), two.get()) >= 0 && BN_cmp(vb.get(), pm2.get()) <= 0;
}

std::string dhValueOutOfRange(Bytes v, Bytes p) {
  BnPtr vb = toBn(v), pm1 = toBn(p);
  BN_sub_word(pm1.get(), 1);
  if (BN_is_zero(vb.get())) return "0";
  if (BN_is_one(vb.get())) return "1";
  const int c = BN_cmp(vb.get(), pm1.get());
  if (c == 0) return "p-1";
  if (c > 0) return "p or more";
  return {};
}

// For a safe prime p = 2q+1 the group has subgroups of order 1, 2, q and 2q; y in [2, p-2] lies
// in the order-q one iff y^q = 1 mod p, i.e. (Euler's criterion) iff y is a quadratic residue:
// the Legendre symbol (y/p) = 1. It runs on every DHE handshake, for both public values. GMP's
// subquadratic Jacobi symbol takes ~11 us for 2048 bits where OpenSSL 3.0's BN_kronecker takes
// ~110 us (its Euclid-style loop divides at every step) and the exponentiation ~1 ms.
bool inPrimeOrderSubgroup(Bytes y, Bytes safe_prime) {
  struct Mpz {
    mpz_t z;
    explicit Mpz(Bytes b) {
      mpz_init(z);
      mpz_import(z, b.size(), 1, 1, 1, 0, b.data());  // big-endian bytes, as on the wire
    }
    ~Mpz() { mpz_clear(z); }
    Mpz(const Mpz&) = delete;
    Mpz& operator=(const Mpz&) = delete;
  };
  const Mpz yz(y), p(safe_prime);
  if (mpz_even_p(p.z) || mpz_cmp_ui(p.z, 3) < 0) return false;  // the symbol needs an odd p >= 3
  return mpz_jacobi(yz.z, p.z) == 1;
}

bool isSafePrime(Bytes p) {
  BnCtxPtr ctx(BN_CTX_new());
  BnPtr bn = toBn(p);
  bool safe = BN_check_prime(bn.get(), ctx.get(), nullptr) == 1;
  if (safe) {
    BnPtr q(BN_dup(bn.get()));
    BN_sub_word(q.get(), 1);
    BN_rshift1(q.get(), q.get());
    safe = BN_check_prime(q.get(), ctx.get(), nullptr) == 1;
  }
  return safe;
}

// The well-known primes, built from OpenSSL's own copies (RFC 2409, RFC 3526, RFC 7919,
// RFC 5114), so no hex tables are retyped here.
const std::vector<KnownPrime>& knownPrimes() {
  static const auto* table = [] {
    auto* t = new std::vector<KnownPrime>;
    auto add = [&](const char* name, BnPtr p) {
      if (p) t->push_back({name, toBytes(p.get())});
    };
    add("oakley768", BnPtr(BN_get_rfc2409_prime_768(nullptr)));
    add("oakley1024", BnPtr(BN_get_rfc2409_prime_1024(nullptr)));
    add("modp1536", BnPtr(BN_get_rfc3526_prime_1536(nullptr)));
    add("modp2048", BnPtr(BN_get_rfc3526_prime_2048(nullptr)));
    add("modp3072", BnPtr(BN_get_rfc3526_prime_3072(nullptr)));
    add("modp4096", BnPtr(BN_get_rfc3526_prime_4096(nullptr)));
    add("modp6144", BnPtr(BN_get_rfc3526_prime_6144(nullptr)));
    add("modp8192", BnPtr(BN_get_rfc3526_prime_8192(nullptr)));
    for (const char* g : {"ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192", "dh_1024_160", "dh_2048_224",
                          "dh_2048_256"}) {
      std::string name = g;
      if (name.rfind("dh_", 0) == 0) name = "rfc5114_" + name.substr(3);
      add(name.c_str(), namedDhPrime(g));
    }
    return t;
  }();
  return *table;
}

PointCheck checkEcPoint(std::uint16_t group, Bytes point) {
  const int nid = nidOfCurve(group);
  if (nid == NID_undef) return PointCheck::UnknownCurve;
  std::unique_ptr<EC_GROUP, decltype(&EC_GROUP_free)> g(EC_GROUP_new_by_curve_name(nid), EC_GROUP_free);
  std::unique_ptr<EC_POINT, decltype(&EC_POINT_free)> pt(EC_POINT_new(g.get()), EC_POINT_free);
  const bool on = g && pt && EC_POINT_oct2point(g.get(), pt.get(), point.data(), point.size(), nullptr) == 1 &&
                  EC_POINT_is_on_curve(g.get(), pt.get(), nullptr) == 1 && !EC_POINT_is_at_infinity(g.get(), pt.get());
  return on ? PointCheck::Valid : PointCheck::Invalid;
}

SslReasonClass classifySslReason(int reason) {
  switch (reason) {
    case SSL_R_NO_SHARED_CIPHER: return SslReasonClass::NoSharedCipher;
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_NO_SHARED_GROUPS: return SslReasonClass::NoSharedGroup;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_UNKNOWN_PROTOCOL: return SslReasonClass::VersionMismatch;
    case SSL_R_DH_KEY_TOO_SMALL: return SslReasonClass::DhKeyTooSmall;
    case SSL_R_BAD_DH_VALUE: return SslReasonClass::BadDhValue;
    case SSL_R_CERTIFICATE_VERIFY_FAILED: return SslReasonClass::CertificateVerifyFailed;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST: return SslReasonClass::HttpRequest;
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS: return SslReasonClass::NoSharedSignatureAlgorithm;
    default: break;
  }
  // OpenSSL reports a received alert as SSL_AD_REASON_OFFSET + its description.
  return reason > SSL_AD_REASON_OFFSET ? SslReasonClass::Alert : SslReasonClass::Other;
}

bool isHostnameMismatch(int verify_error) {
  return verify_error == X509_V_ERR_HOSTNAME_MISMATCH || verify_error == X509_V_ERR_IP_ADDRESS_MISMATCH;
}

}  // namespace tlstrace::tls::crypto
