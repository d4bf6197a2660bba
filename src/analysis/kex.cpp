#include "analysis/kex.h"

#include <algorithm>
#include <string>

#include "tls/crypto.h"
#include "wire/byte_reader.h"
#include "wire/registry.h"

namespace tlstrace::analysis {

using trace::Blob;
using trace::Json;

namespace {

bool isKnownSafe(const std::string& name) { return name.rfind("rfc5114", 0) != 0 && !name.empty(); }

enum class Rating { Strong, Acceptable, Weak, Broken };
const char* ratingName(Rating r) {
  switch (r) {
    case Rating::Strong: return "strong";
    case Rating::Acceptable: return "acceptable";
    case Rating::Weak: return "weak";
    case Rating::Broken: return "broken";
  }
  return "broken";
}

struct Verdict {
  Rating rating = Rating::Strong;
  Json reasons = Json::array();
  void cap(Rating r, const std::string& why) {
    if (static_cast<int>(r) > static_cast<int>(rating)) rating = r;
    reasons.push(why);
  }
};

// Checks an EC point (RFC 8422 5.4.1 / SEC 1 2.3.4) or an X25519/X448 key (RFC 7748 6).
void checkEcPublic(std::uint16_t group, const Blob& pub, const char* who, Json& checks, Verdict& v) {
  const std::string key = std::string(who) + "_point_on_curve";
  if (pub.empty()) return;
  if (group == 29 || group == 30) {
    const std::size_t want = group == 29 ? 32 : 56;
    const bool ok = pub.size() == want;
    checks.set(std::string(who) + "_length_ok", ok);
    if (!ok)
      v.cap(Rating::Broken,
            std::string(who) + " key is " + std::to_string(pub.size()) + " bytes, not " + std::to_string(want));
    bool zero = true;
    for (auto b : pub) zero = zero && b == 0;
    if (ok && zero) v.cap(Rating::Broken, std::string(who) + " key is all zeros");
    return;
  }
  const tls::crypto::PointCheck point = tls::crypto::checkEcPoint(group, pub);
  if (point == tls::crypto::PointCheck::UnknownCurve) return;
  const bool on = point == tls::crypto::PointCheck::Valid;
  checks.set(key, on);
  const char* form = pub[0] == 4 ? "uncompressed" : (pub[0] == 2 || pub[0] == 3) ? "compressed" : "invalid";
  checks.set(std::string(who) + "_point_form_" + form, true);
  if (!on) v.cap(Rating::Broken, std::string(who) + " point is not on " + std::string(wire::namedGroupName(group)));
  if (pub[0] != 4) v.reasons.push(std::string(who) + " point uses the " + form + " form");
}

void rateCurve(std::uint16_t group, Verdict& v) {
  const int bits = wire::namedGroupBits(group);
  if (bits == 0) return;
  if (bits < 160) v.cap(Rating::Broken, std::to_string(bits) + "-bit curve");
  else if (bits < 224) v.cap(Rating::Weak, std::to_string(bits) + "-bit curve is below 224 bits");
  else if (bits < 255) v.cap(Rating::Acceptable, std::to_string(bits) + "-bit curve");
}

// DHE (RFC 5246 7.4.3) or a TLS 1.3 FFDHE key share: known group, safe prime, ranges, subgroup.
struct DhParams {
  const Blob& p;
  const Blob& g;
  const Blob& ys;
  const Blob& yc;
  std::optional<bool> tested;  // a custom p's verdict from a worker
};

// A known group's safety is known; a custom prime's comes from the worker's test, the cache, or
// (small primes) a test now; otherwise it is pending (nullopt).
std::optional<bool> safePrimeNow(const Blob& p, const std::string& known, int bits, const DhParams& dh,
                                 PrimeCache& primes) {
  if (!known.empty()) return isKnownSafe(known);
  if (dh.tested) return dh.tested;
  if (auto cached = primes.find(p)) return cached;
  if (bits <= kInlinePrimeBits) return primes.safePrime(p);
  return std::nullopt;
}

void checkDh(const DhParams& dh, Json& out, Json& checks, Verdict& v, PrimeCache& primes) {
  const Blob& p_bytes = dh.p;
  const Blob& g_bytes = dh.g;
  const Blob& ys = dh.ys;
  const Blob& yc = dh.yc;
  const int bits = tls::crypto::bitLength(p_bytes);
  out.set("bits", bits);
  const std::string known = knownDhGroup(p_bytes);
  checks.set("known_group", !known.empty());
  if (!known.empty()) out.set("known_group", known);
  const std::optional<bool> verdict = safePrimeNow(p_bytes, known, bits, dh, primes);
  const bool safe = verdict.value_or(false);
  if (verdict) checks.set("safe_prime", safe);
  else checks.set("safe_prime", "pending");
  const bool g_ok = tls::crypto::inRangeTwoToPMinusTwo(g_bytes, p_bytes);
  checks.set("g_in_range", g_ok);
  if (!g_ok) v.cap(Rating::Broken, "g is outside [2, p-2]");
  bool pub_ok = true;
  for (const auto& [who, y] : {std::pair<const char*, const Blob*>{"server", &ys}, {"client", &yc}}) {
    if (y->empty()) continue;
    const bool r = tls::crypto::inRangeTwoToPMinusTwo(*y, p_bytes);
    checks.set(std::string(who) + "_public_in_range", r);
    pub_ok = pub_ok && r;
    if (!r) v.cap(Rating::Broken, std::string(who) + " public value is outside [2, p-2]");
    if (safe && r) {
      const bool sub = tls::crypto::inPrimeOrderSubgroup(*y, p_bytes);
      checks.set(std::string(who) + "_public_in_subgroup", sub);
      if (!sub)
        v.cap(Rating::Weak, std::string(who) + " public value is not in the prime-order subgroup (leaks a bit)");
    }
  }
  checks.set("public_in_range", pub_ok);
  if (bits < 1024) v.cap(Rating::Broken, std::to_string(bits) + "-bit prime (< 1024: breakable, cf. Logjam)");
  else if (bits < 2048) v.cap(Rating::Weak, std::to_string(bits) + "-bit prime (< 2048)");
  else if (bits < 3072) v.cap(Rating::Acceptable, std::to_string(bits) + "-bit prime");
  if (!verdict)
    v.reasons.push("safe-prime test of the " + std::to_string(bits) + "-bit prime pending (tls.prime_check follows)");
  else if (!safe && known.empty()) v.cap(Rating::Weak, "p is not a safe prime and not a known group");
  if (known.rfind("rfc5114", 0) == 0) v.cap(Rating::Weak, known + " has a small subgroup and unverifiable origin");
  if (known == "oakley768" || known == "oakley1024")
    v.reasons.push(known + " is a widely shared prime (precomputation target)");
}

}  // namespace

bool dhPublicInPrimeOrderSubgroup(const Blob& y, const Blob& safe_prime) {
  return tls::crypto::inPrimeOrderSubgroup(y, safe_prime);
}

std::optional<bool> PrimeCache::find(const Blob& p) {
  const std::string key = wire::toHex(p);
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  return std::nullopt;
}

bool safePrimePending(const Json& kex) {
  const Json* checks = kex.find("checks");
  const Json* safe = checks ? checks->find("safe_prime") : nullptr;
  return safe && safe->isString();
}

bool PrimeCache::safePrime(const Blob& p) {
  const std::string key = wire::toHex(p);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  }
  const bool safe = tls::crypto::isSafePrime(p);
  std::lock_guard<std::mutex> lock(mu_);
  cache_.emplace(key, safe);
  return safe;
}

std::string knownDhGroup(const Blob& p) {
  // Compared as numbers: leading zero bytes do not count.
  const auto first = std::find_if(p.begin(), p.end(), [](std::uint8_t b) { return b != 0; });
  const tls::crypto::Bytes digits(p.data() + (first - p.begin()), static_cast<std::size_t>(p.end() - first));
  for (const auto& known : tls::crypto::knownPrimes())
    if (std::equal(digits.begin(), digits.end(), known.p.begin(), known.p.end())) return known.name;
  return {};
}

std::string invalidDhValue(const trace::KexMaterial& k, const trace::ServerChoice& c) {
  Blob p = k.p;
  Blob g = k.g;
  if (p.empty() && c.version == 0x0304 && c.key_share_group >= 256 && c.key_share_group <= 260) {
    const std::string name(wire::namedGroupName(c.key_share_group));
    for (const auto& known : tls::crypto::knownPrimes())
      if (known.name == name) p = known.p;
    g = Blob{2};
  }
  if (p.empty()) return {};
  if (const std::string bad = tls::crypto::dhValueOutOfRange(g, p); !bad.empty()) return "g = " + bad;
  if (const std::string bad = tls::crypto::dhValueOutOfRange(k.server_public, p);
      !k.server_public.empty() && !bad.empty())
    return "the server's public value Ys = " + bad;
  if (const std::string bad = tls::crypto::dhValueOutOfRange(k.client_public, p);
      !k.client_public.empty() && !bad.empty())
    return "the client's public value Yc = " + bad;
  return {};
}

bool hasKeyExchange(const KexInput& in) { return !in.resumed || (in.choice && in.choice->version == 0x0304); }

Json resumptionFacts(const trace::HelloOffer& offer, const trace::ServerChoice& choice, ResumedTimes times) {
  Json r = Json::object();
  if (choice.version == 0x0304) {
    // RFC 8446 4.2.11: the identity the server selected; its age is obfuscated with the ticket's
    // age_add, which only the ticket's issuer holds (OpenSSL does not expose it).
    r.set("mechanism", "psk");
    if (choice.psk_selected_identity < offer.psk_identities.size()) {
      const auto& id = offer.psk_identities[choice.psk_selected_identity];
      r.set("ticket_length", id.identity_length);
      r.set("obfuscated_ticket_age", static_cast<unsigned long long>(id.obfuscated_ticket_age));
      r.set("note",
            "obfuscated_ticket_age is the ticket's age in ms plus its age_add (RFC 8446 4.2.11), not "
            "decodable here; age is the session's, in whole seconds");
    }
  } else if (offer.ticket_length.value_or(0) > 0) {
    // RFC 5077 3.4: OpenSSL resumes by a ticket when one was sent and decrypted, never falling
    // back to the session ID then.
    r.set("mechanism", "ticket");
    r.set("ticket_length", *offer.ticket_length);
  } else {
    r.set("mechanism", "session_id");
    r.set("session_id_length", offer.session_id_length);
  }
  if (times.lifetime >= 0) r.set("lifetime", static_cast<long long>(times.lifetime));
  if (times.age >= 0) r.set("age", static_cast<long long>(times.age));
  return r;
}

Json assessKeyExchange(const KexInput& in, PrimeCache& primes) {
  const trace::KexMaterial& k = *in.kex;
  const trace::ServerChoice& c = *in.choice;
  Json out = Json::object();
  Json checks = Json::object();
  Verdict v;
  const bool tls13 = c.version == 0x0304;
  std::string kex;
  if (tls13) {
    const bool dhe = c.key_share_group != 0;
    // The (EC)DHE part is named as a full handshake over the same group names it (RFC 8446 4.2.9
    // psk_dhe_ke covers both): ffdhe groups are DHE, curves ECDHE.
    const bool ff = c.key_share_group >= 256 && c.key_share_group <= 260;
    kex = c.psk_selected ? (dhe ? (ff ? "PSK_DHE" : "PSK_ECDHE") : "PSK") : (dhe ? (ff ? "DHE" : "ECDHE") : "unknown");
  } else {
    kex = std::string(wire::kexName(k.kind));
  }
  out.set("kex", kex);
  const std::uint16_t group = tls13 ? c.key_share_group : k.group;
  if (!k.p.empty()) {  // TLS <= 1.2 DHE with explicit parameters
    const std::string known = knownDhGroup(k.p);
    out.set("group", known.empty() ? "custom" : known);
    out.set("p", wire::toHex(k.p));
    out.set("g", wire::toHex(k.g));
    checkDh({k.p, k.g, k.server_public, k.client_public, in.safe_prime}, out, checks, v, primes);
  } else if (group >= 256 && group <= 260) {  // RFC 7919 group named in a TLS 1.3 key share
    const std::string name(wire::namedGroupName(group));
    Blob p;
    for (const auto& known : tls::crypto::knownPrimes())
      if (known.name == name) p = known.p;
    out.set("group", name);
    const Blob two{2};
    if (!p.empty()) checkDh({p, two, k.server_public, k.client_public, std::nullopt}, out, checks, v, primes);
    else out.set("bits", wire::namedGroupBits(group));
  } else if (group != 0) {
    out.set("group", std::string(wire::namedGroupName(group)));
    out.set("bits", wire::namedGroupBits(group));
    rateCurve(group, v);
    checkEcPublic(group, k.server_public, "server", checks, v);
    checkEcPublic(group, k.client_public, "client", checks, v);
  } else if (kex == "RSA") {
    out.set("group", "rsa");
    out.set("bits", in.server_key_bits);
    v.cap(Rating::Weak, "no forward secrecy: static RSA key transport");
    if (in.server_key_bits && in.server_key_bits < 2048)
      v.cap(Rating::Weak, std::to_string(in.server_key_bits) + "-bit RSA key");
  } else {
    out.set("group", c.psk_selected ? "psk" : "unknown");
    out.set("bits", 0);
    if (c.psk_selected) v.cap(Rating::Acceptable, "PSK without (EC)DHE: no forward secrecy for this session");
  }
  out.set("server_public", wire::toHex(k.server_public));
  out.set("client_public", wire::toHex(k.client_public));
  if (tls13 && c.hrr) {
    out.set("hello_retry_request", std::string(wire::namedGroupName(c.hrr_group)));
    v.reasons.push("HelloRetryRequest: the client's first key shares did not include " +
                   std::string(wire::namedGroupName(c.hrr_group)) + " (one extra round trip)");
  }
  // PSK and resumption (RFC 8446 4.2.9, 4.6.1; RFC 5077).
  if (in.offer) {
    Json modes = Json::array();
    for (auto m : in.offer->psk_modes) modes.push(m == 1 ? "psk_dhe_ke" : m == 0 ? "psk_ke" : "unknown");
    if (!in.offer->psk_modes.empty()) out.set("psk_key_exchange_modes", std::move(modes));
    // A TLS 1.3 pre_shared_key, or a TLS 1.2 session ticket (an empty session_ticket extension
    // only asks for one, RFC 5077 3.2).
    out.set("psk_offered", in.offer->psk || in.offer->ticket_length.value_or(0) > 0);
  }
  out.set("resumed", in.resumed);
  if (!k.ticket_lifetimes.empty()) {
    Json l = Json::array();
    for (auto t : k.ticket_lifetimes) l.push(static_cast<unsigned long long>(t));
    out.set("ticket_lifetimes", std::move(l));
  }
  out.set("checks", std::move(checks));
  out.set("rating", ratingName(v.rating));
  out.set("reasons", std::move(v.reasons));
  return out;
}

}  // namespace tlstrace::analysis
