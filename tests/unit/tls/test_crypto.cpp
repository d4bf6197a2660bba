// tls/crypto.h: the OpenSSL arithmetic analysis/ uses, against OpenSSL's own constants and values.
#include <doctest/doctest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/ssl.h>
#include <openssl/sslerr.h>
#include <openssl/x509_vfy.h>

#include <array>
#include <string>
#include <vector>

#include "tls/crypto.h"
#include "wire/byte_reader.h"

using namespace tlstrace::tls::crypto;
using Blob = std::vector<std::uint8_t>;

namespace {

std::string hexDigest(DigestAlg alg, std::string_view s) {
  std::array<std::uint8_t, kMaxDigestSize> out{};
  const std::size_t n = digest(alg, s, out);
  return tlstrace::wire::toHex({out.data(), n});
}

Blob bytesOf(const BIGNUM* b) {
  Blob out(static_cast<std::size_t>(BN_num_bytes(b)));
  BN_bn2bin(b, out.data());
  return out;
}

}  // namespace

TEST_CASE("digests: MD5 and SHA-256 test vectors") {
  CHECK(hexDigest(DigestAlg::Md5, "") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(hexDigest(DigestAlg::Md5, "abc") == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(hexDigest(DigestAlg::Sha256, "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("big numbers: bit length and the [2, p-2] range") {
  CHECK(bitLength(Blob{}) == 0);
  CHECK(bitLength(Blob{0, 0, 1}) == 1);
  CHECK(bitLength(Blob{0x80, 0}) == 16);
  const Blob p{0, 23};  // leading zero bytes do not change the number
  CHECK_FALSE(inRangeTwoToPMinusTwo(Blob{1}, p));
  CHECK(inRangeTwoToPMinusTwo(Blob{2}, p));
  CHECK(inRangeTwoToPMinusTwo(Blob{21}, p));
  CHECK_FALSE(inRangeTwoToPMinusTwo(Blob{22}, p));
}

TEST_CASE("safe primes and the prime-order subgroup") {
  CHECK(isSafePrime(Blob{23}));        // 23 = 2 * 11 + 1
  CHECK_FALSE(isSafePrime(Blob{13}));  // (13 - 1) / 2 = 6
  CHECK_FALSE(isSafePrime(Blob{21}));
  // The squares mod 23 form the subgroup of order 11.
  CHECK(inPrimeOrderSubgroup(Blob{4}, Blob{23}));
  CHECK(inPrimeOrderSubgroup(Blob{2}, Blob{23}));  // 5^2 = 25 = 2
  CHECK_FALSE(inPrimeOrderSubgroup(Blob{5}, Blob{23}));
}

TEST_CASE("the known DH primes are OpenSSL's, without leading zeros") {
  const auto& known = knownPrimes();
  CHECK(known.size() == 16);
  BIGNUM* p = BN_get_rfc3526_prime_2048(nullptr);
  bool found = false;
  for (const auto& k : known) {
    CHECK(!k.p.empty());
    CHECK(k.p.front() != 0);
    if (k.name == "modp2048") found = k.p == bytesOf(p);
  }
  BN_free(p);
  CHECK(found);
  for (const char* name : {"ffdhe2048", "ffdhe8192", "rfc5114_1024_160", "rfc5114_2048_256", "oakley768"}) {
    CAPTURE(name);
    bool has = false;
    for (const auto& k : known) has = has || k.name == name;
    CHECK(has);
  }
}

TEST_CASE("EC points: generator on the curve, garbage not, unknown groups unknown") {
  EC_GROUP* g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
  REQUIRE(g);
  Blob gen(65);
  REQUIRE(EC_POINT_point2oct(g, EC_GROUP_get0_generator(g), POINT_CONVERSION_UNCOMPRESSED, gen.data(), gen.size(),
                             nullptr) == 65);
  EC_GROUP_free(g);
  CHECK(checkEcPoint(23, gen) == PointCheck::Valid);
  Blob bad = gen;
  bad.back() ^= 1;
  CHECK(checkEcPoint(23, bad) == PointCheck::Invalid);
  CHECK(checkEcPoint(24, gen) == PointCheck::Invalid);  // a P-256 point is not a P-384 one
  CHECK(checkEcPoint(29, gen) == PointCheck::UnknownCurve);
  CHECK(checkEcPoint(0x1234, gen) == PointCheck::UnknownCurve);
}

TEST_CASE("SSL reasons and verify errors classify as diagnose() expects") {
  struct Row {
    int reason;
    SslReasonClass cls;
  };
  const Row rows[] = {
      {SSL_R_NO_SHARED_CIPHER, SslReasonClass::NoSharedCipher},
      {SSL_R_NO_SUITABLE_KEY_SHARE, SslReasonClass::NoSharedGroup},
      {SSL_R_NO_SHARED_GROUPS, SslReasonClass::NoSharedGroup},
      {SSL_R_UNSUPPORTED_PROTOCOL, SslReasonClass::VersionMismatch},
      {SSL_R_WRONG_VERSION_NUMBER, SslReasonClass::VersionMismatch},
      {SSL_R_VERSION_TOO_LOW, SslReasonClass::VersionMismatch},
      {SSL_R_VERSION_TOO_HIGH, SslReasonClass::VersionMismatch},
      {SSL_R_UNKNOWN_PROTOCOL, SslReasonClass::VersionMismatch},
      {SSL_R_DH_KEY_TOO_SMALL, SslReasonClass::DhKeyTooSmall},
      {SSL_R_BAD_DH_VALUE, SslReasonClass::BadDhValue},
      {SSL_R_CERTIFICATE_VERIFY_FAILED, SslReasonClass::CertificateVerifyFailed},
      {SSL_R_HTTP_REQUEST, SslReasonClass::HttpRequest},
      {SSL_R_HTTPS_PROXY_REQUEST, SslReasonClass::HttpRequest},
      {SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM, SslReasonClass::NoSharedSignatureAlgorithm},
      {SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS, SslReasonClass::NoSharedSignatureAlgorithm},
      {SSL_R_TLSV1_ALERT_PROTOCOL_VERSION, SslReasonClass::Alert},
      {SSL_AD_REASON_OFFSET + SSL_AD_HANDSHAKE_FAILURE, SslReasonClass::Alert},
      {SSL_AD_REASON_OFFSET, SslReasonClass::Other},
      {SSL_R_UNEXPECTED_MESSAGE, SslReasonClass::Other},
      {0, SslReasonClass::Other},
  };
  for (const Row& r : rows) {
    CAPTURE(r.reason);
    CHECK(classifySslReason(r.reason) == r.cls);
  }
  CHECK(isHostnameMismatch(X509_V_ERR_HOSTNAME_MISMATCH));
  CHECK(isHostnameMismatch(X509_V_ERR_IP_ADDRESS_MISMATCH));
  CHECK_FALSE(isHostnameMismatch(X509_V_ERR_EMAIL_MISMATCH));
  CHECK_FALSE(isHostnameMismatch(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY));
  CHECK_FALSE(isHostnameMismatch(0));
}
