// Key-exchange analysis: the tls.key_exchange event of each leg (DHE group checks, EC point
// validity, key_share lengths, static RSA, PSK/resumption), with a rating and its reasons.
#pragma once
#include <mutex>
#include <string>
#include <unordered_map>

#include "trace/decoder.h"
#include "trace/json.h"

namespace tlstrace::analysis {

// Results of the (slow) primality tests, per prime; injected so each io thread can own one.
// y (big-endian) lies in the prime-order subgroup of the safe prime p = 2q+1 (y^q = 1 mod p).
[[nodiscard]] bool dhPublicInPrimeOrderSubgroup(const trace::Blob& y, const trace::Blob& safe_prime);

class PrimeCache {
 public:
  // Is p a safe prime (p and (p-1)/2 prime)? Computed once per distinct p.
  [[nodiscard]] bool safePrime(const trace::Blob& p);
  [[nodiscard]] std::size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return cache_.size();
  }

 private:
  std::mutex mu_;  // shared by the io threads
  std::unordered_map<std::string, bool> cache_;
};

// Which well-known group a DH prime is ("ffdhe2048", "modp2048", "oakley768", "rfc5114_1024_160"
// ...), or "" when it is none of them.
[[nodiscard]] std::string knownDhGroup(const trace::Blob& p);

struct KexInput {
  const trace::HelloOffer* offer = nullptr;
  const trace::ServerChoice* choice = nullptr;
  const trace::KexMaterial* kex = nullptr;
  bool resumed = false;
  int server_key_bits = 0;  // RSA key size for static RSA key transport
};

// The fields of tls.key_exchange (docs/events.md). Not for a TLS <= 1.2 resumption, which has no
// key exchange (RFC 5246 7.3): that leg gets no tls.key_exchange (see resumptionFacts).
[[nodiscard]] bool hasKeyExchange(const KexInput& in);
[[nodiscard]] trace::Json assessKeyExchange(const KexInput& in, PrimeCache& primes);

// tls.established's `resumption` object of a resumed handshake: what was resumed (`session_id`,
// `ticket`, `psk`), what the client sent for it, and the session's lifetime and age (seconds, -1
// when unknown) as the endpoint that kept it knows them.
struct ResumedTimes {
  long lifetime = -1;
  long age = -1;
};
[[nodiscard]] trace::Json resumptionFacts(const trace::HelloOffer& offer, const trace::ServerChoice& choice,
                                          ResumedTimes times);

// The first DH value outside [2, p-2] that the key exchange carries, named for a diagnosis
// ("g = p-1", "the server's public value Ys = 1", ...), or "" when there is none (or no DH).
// TLS 1.3 FFDHE key shares take p from the group the ServerHello names.
[[nodiscard]] std::string invalidDhValue(const trace::KexMaterial& k, const trace::ServerChoice& c);

}  // namespace tlstrace::analysis
