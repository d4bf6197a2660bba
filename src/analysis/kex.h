// Key-exchange analysis: the tls.key_exchange event of each leg (DHE group checks, EC point
// validity, key_share lengths, static RSA, PSK/resumption), with a rating and its reasons.
#pragma once
#include <mutex>
#include <optional>
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
  // Is p a safe prime (p and (p-1)/2 prime)? Computed once per distinct p (seconds for 4096 bits
  // and more: not on an io thread, see kInlinePrimeBits).
  [[nodiscard]] bool safePrime(const trace::Blob& p);
  // The verdict if p was tested already; never tests.
  [[nodiscard]] std::optional<bool> find(const trace::Blob& p);
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

// Custom primes up to this size are tested for safety during the assessment (tens of ms at most);
// a larger one's test takes 1.7-10 s and runs on a worker: the assessment says checks.safe_prime
// "pending" (safePrimePending), and the session re-assesses with the verdict (KexInput::safe_prime).
inline constexpr int kInlinePrimeBits = 2048;

struct KexInput {
  const trace::HelloOffer* offer = nullptr;
  const trace::ServerChoice* choice = nullptr;
  const trace::KexMaterial* kex = nullptr;
  bool resumed = false;
  int server_key_bits = 0;         // RSA key size for static RSA key transport
  std::optional<bool> safe_prime;  // the custom prime's verdict, tested elsewhere
};

// The fields of tls.key_exchange (docs/events.md). Not for a TLS <= 1.2 resumption, which has no
// key exchange (RFC 5246 7.3): that leg gets no tls.key_exchange (see resumptionFacts).
[[nodiscard]] bool hasKeyExchange(const KexInput& in);
[[nodiscard]] trace::Json assessKeyExchange(const KexInput& in, PrimeCache& primes);
// Whether an assessment left the safe-prime test to a worker (its p is the KexMaterial's).
[[nodiscard]] bool safePrimePending(const trace::Json& kex);

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
