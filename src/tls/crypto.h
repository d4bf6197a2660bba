// The OpenSSL arithmetic analysis/ needs (digests, Diffie-Hellman and curve checks, what an
// OpenSSL error code means), behind plain standard types so that OpenSSL stays in tls/ and pki/.
// Numbers are big-endian byte strings, as they travel on the wire.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tlstrace::tls::crypto {

using Bytes = std::span<const std::uint8_t>;

// Digests.
enum class DigestAlg { Md5, Sha256 };
inline constexpr std::size_t kMaxDigestSize = 64;
// Writes the digest of `data` to `out` and returns its length (16 for MD5, 32 for SHA-256), or 0
// when the algorithm is unavailable or the digest failed.
[[nodiscard]] std::size_t digest(DigestAlg alg, Bytes data, std::span<std::uint8_t, kMaxDigestSize> out);
[[nodiscard]] inline std::size_t digest(DigestAlg alg, std::string_view data,
                                        std::span<std::uint8_t, kMaxDigestSize> out) {
  return digest(alg, Bytes(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()), out);
}

// Finite-field Diffie-Hellman.
// Significant bits of the number (0 for zero).
[[nodiscard]] int bitLength(Bytes n);
// 2 <= v <= p-2.
[[nodiscard]] bool inRangeTwoToPMinusTwo(Bytes v, Bytes p);
// What is wrong with a DH value outside [2, p-2], named for a diagnosis: "0", "1", "p-1", "p or
// more"; "" when it is in range.
[[nodiscard]] std::string dhValueOutOfRange(Bytes v, Bytes p);
// y lies in the prime-order subgroup of the safe prime p = 2q+1 (y^q = 1 mod p).
[[nodiscard]] bool inPrimeOrderSubgroup(Bytes y, Bytes safe_prime);
// p and (p-1)/2 are both prime: slow (two primality tests), callers cache the answer.
[[nodiscard]] bool isSafePrime(Bytes p);

struct KnownPrime {
  std::string name;             // "modp2048", "ffdhe2048", "oakley768", "rfc5114_1024_160" ...
  std::vector<std::uint8_t> p;  // big-endian, no leading zero bytes
};
// The well-known DH primes (RFC 2409, RFC 3526, RFC 7919, RFC 5114), built once.
[[nodiscard]] const std::vector<KnownPrime>& knownPrimes();

// Elliptic curves.
enum class PointCheck { UnknownCurve, Valid, Invalid };
// Is `point` (SEC 1 encoding) a valid point of the curve of TLS named group `group` (secp*r1,
// secp256k1, brainpool*r1)? UnknownCurve for any other group (X25519/X448 included).
[[nodiscard]] PointCheck checkEcPoint(std::uint16_t group, Bytes point);

// OpenSSL's error codes, classified for diagnosis.
enum class SslReasonClass {
  NoSharedCipher,
  NoSharedGroup,
  VersionMismatch,
  DhKeyTooSmall,
  BadDhValue,  // OpenSSL found the server's DH parameters or public value invalid
  CertificateVerifyFailed,
  HttpRequest,
  NoSharedSignatureAlgorithm,
  Alert,  // a reason that stands for a TLS alert from the peer
  Other,
};
// `reason` is ERR_GET_REASON of an OpenSSL error.
[[nodiscard]] SslReasonClass classifySslReason(int reason);
// `verify_error` is an X509 verification result: the name or IP address asked for is not in the
// certificate.
[[nodiscard]] bool isHostnameMismatch(int verify_error);

}  // namespace tlstrace::tls::crypto
