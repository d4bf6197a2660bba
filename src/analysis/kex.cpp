#include "analysis/kex.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/dh.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include <array>
#include <memory>

#include "wire/byte_reader.h"
#include "wire/registry.h"

namespace tlstrace::analysis {

using trace::Blob;
using trace::Json;

namespace {

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct BnCtxFree {
  void operator()(BN_CTX* c) const { BN_CTX_free(c); }
};
using Bn = std::unique_ptr<BIGNUM, BnFree>;
using BnCtx = std::unique_ptr<BN_CTX, BnCtxFree>;

Bn toBn(const Blob& b) { return Bn(BN_bin2bn(b.data(), static_cast<int>(b.size()), nullptr)); }

std::string bnKey(const BIGNUM* p) {
  char* h = BN_bn2hex(p);
  std::string s = h ? h : "";
  OPENSSL_free(h);
  return s;
}

// The well-known primes, built from OpenSSL's own copies (RFC 2409, RFC 3526, RFC 7919,
// RFC 5114), so no hex tables are retyped here.
const std::vector<std::pair<std::string, std::string>>& knownPrimes() {
  static const auto* table = [] {
    auto* t = new std::vector<std::pair<std::string, std::string>>;
    auto add = [&](const char* name, BIGNUM* p) {
      if (p) t->emplace_back(bnKey(p), name);
      BN_free(p);
    };
    add("oakley768", BN_get_rfc2409_prime_768(nullptr));
    add("oakley1024", BN_get_rfc2409_prime_1024(nullptr));
    add("modp1536", BN_get_rfc3526_prime_1536(nullptr));
    add("modp2048", BN_get_rfc3526_prime_2048(nullptr));
    add("modp3072", BN_get_rfc3526_prime_3072(nullptr));
    add("modp4096", BN_get_rfc3526_prime_4096(nullptr));
    add("modp6144", BN_get_rfc3526_prime_6144(nullptr));
    add("modp8192", BN_get_rfc3526_prime_8192(nullptr));
    for (const char* g : {"ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192", "dh_1024_160", "dh_2048_224",
                          "dh_2048_256"}) {
      // RFC 7919 and RFC 5114 groups by name through the provider.
      EVP_PKEY_CTX* pctx = EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr);
      EVP_PKEY* params = nullptr;
      if (pctx && EVP_PKEY_paramgen_init(pctx) > 0) {
        OSSL_PARAM ps[] = {OSSL_PARAM_construct_utf8_string("group", const_cast<char*>(g), 0), OSSL_PARAM_END};
        if (EVP_PKEY_CTX_set_params(pctx, ps) > 0 && EVP_PKEY_paramgen(pctx, &params) > 0) {
          BIGNUM* p = nullptr;
          if (EVP_PKEY_get_bn_param(params, OSSL_PKEY_PARAM_FFC_P, &p)) {
            std::string name = g;
            if (name.rfind("dh_", 0) == 0) name = "rfc5114_" + name.substr(3);
            add(name.c_str(), p);
          }
        }
      }
      EVP_PKEY_free(params);
      EVP_PKEY_CTX_free(pctx);
    }
    return t;
  }();
  return *table;
}

bool isKnownSafe(const std::string& name) { return name.rfind("rfc5114", 0) != 0 && !name.empty(); }

// 2 <= v <= p-2 (RFC 7919 5.1, NIST SP 800-56A 5.6.2.3.1).
bool inRange(const BIGNUM* v, const BIGNUM* p) {
  Bn pm2(BN_dup(p));
  BN_sub_word(pm2.get(), 2);
  Bn two(BN_new());
  BN_set_word(two.get(), 2);
  return BN_cmp(v, two.get()) >= 0 && BN_cmp(v, pm2.get()) <= 0;
}

// For a safe prime p = 2q+1 the group has subgroups of order 1, 2, q and 2q; y in [2, p-2] lies
// in the order-q one iff y^q = 1 mod p, i.e. (Euler's criterion) iff y is a quadratic residue.
// The Legendre symbol (y/p), computed like a gcd, says the same as that 2048-bit exponentiation
// for a small fraction of its cost (it ran on every DHE handshake, twice).
bool inPrimeOrderSubgroup(const BIGNUM* y, const BIGNUM* p, BN_CTX* ctx) { return BN_kronecker(y, p, ctx) == 1; }

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
  const int nid = nidOfCurve(group);
  if (nid == NID_undef) return;
  std::unique_ptr<EC_GROUP, decltype(&EC_GROUP_free)> g(EC_GROUP_new_by_curve_name(nid), EC_GROUP_free);
  std::unique_ptr<EC_POINT, decltype(&EC_POINT_free)> pt(EC_POINT_new(g.get()), EC_POINT_free);
  const bool on = g && pt && EC_POINT_oct2point(g.get(), pt.get(), pub.data(), pub.size(), nullptr) == 1 &&
                  EC_POINT_is_on_curve(g.get(), pt.get(), nullptr) == 1 && !EC_POINT_is_at_infinity(g.get(), pt.get());
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
void checkDh(const Blob& p_bytes, const Blob& g_bytes, const Blob& ys, const Blob& yc, Json& out, Json& checks,
             Verdict& v, PrimeCache& primes) {
  BnCtx ctx(BN_CTX_new());
  Bn p = toBn(p_bytes), g = toBn(g_bytes);
  const int bits = BN_num_bits(p.get());
  out.set("bits", bits);
  const std::string known = knownDhGroup(p_bytes);
  checks.set("known_group", !known.empty());
  if (!known.empty()) out.set("known_group", known);
  const bool safe = isKnownSafe(known) || (known.empty() && primes.safePrime(p_bytes));
  checks.set("safe_prime", safe);
  const bool g_ok = inRange(g.get(), p.get());
  checks.set("g_in_range", g_ok);
  if (!g_ok) v.cap(Rating::Broken, "g is outside [2, p-2]");
  bool pub_ok = true;
  for (const auto& [who, y] : {std::pair<const char*, const Blob*>{"server", &ys}, {"client", &yc}}) {
    if (y->empty()) continue;
    Bn yb = toBn(*y);
    const bool r = inRange(yb.get(), p.get());
    checks.set(std::string(who) + "_public_in_range", r);
    pub_ok = pub_ok && r;
    if (!r) v.cap(Rating::Broken, std::string(who) + " public value is outside [2, p-2]");
    if (safe && r) {
      const bool sub = inPrimeOrderSubgroup(yb.get(), p.get(), ctx.get());
      checks.set(std::string(who) + "_public_in_subgroup", sub);
      if (!sub)
        v.cap(Rating::Weak, std::string(who) + " public value is not in the prime-order subgroup (leaks a bit)");
    }
  }
  checks.set("public_in_range", pub_ok);
  if (bits < 1024) v.cap(Rating::Broken, std::to_string(bits) + "-bit prime (< 1024: breakable, cf. Logjam)");
  else if (bits < 2048) v.cap(Rating::Weak, std::to_string(bits) + "-bit prime (< 2048)");
  else if (bits < 3072) v.cap(Rating::Acceptable, std::to_string(bits) + "-bit prime");
  if (!safe && known.empty()) v.cap(Rating::Weak, "p is not a safe prime and not a known group");
  if (known.rfind("rfc5114", 0) == 0) v.cap(Rating::Weak, known + " has a small subgroup and unverifiable origin");
  if (known == "oakley768" || known == "oakley1024")
    v.reasons.push(known + " is a widely shared prime (precomputation target)");
}

}  // namespace

bool dhPublicInPrimeOrderSubgroup(const Blob& y, const Blob& safe_prime) {
  BnCtx ctx(BN_CTX_new());
  Bn yb = toBn(y), p = toBn(safe_prime);
  return inPrimeOrderSubgroup(yb.get(), p.get(), ctx.get());
}

bool PrimeCache::safePrime(const Blob& p) {
  const std::string key = wire::toHex(p);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  }
  BnCtx ctx(BN_CTX_new());
  Bn bn = toBn(p);
  bool safe = BN_check_prime(bn.get(), ctx.get(), nullptr) == 1;
  if (safe) {
    Bn q(BN_dup(bn.get()));
    BN_sub_word(q.get(), 1);
    BN_rshift1(q.get(), q.get());
    safe = BN_check_prime(q.get(), ctx.get(), nullptr) == 1;
  }
  std::lock_guard<std::mutex> lock(mu_);
  cache_.emplace(key, safe);
  return safe;
}

std::string knownDhGroup(const Blob& p) {
  Bn bn = toBn(p);
  const std::string key = bnKey(bn.get());
  for (const auto& [k, name] : knownPrimes())
    if (k == key) return name;
  return {};
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
    kex = c.psk_selected ? (dhe ? "PSK_DHE" : "PSK")
                         : (dhe ? (c.key_share_group >= 256 && c.key_share_group <= 260 ? "DHE" : "ECDHE") : "unknown");
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
    checkDh(k.p, k.g, k.server_public, k.client_public, out, checks, v, primes);
  } else if (group >= 256 && group <= 260) {  // RFC 7919 group named in a TLS 1.3 key share
    const std::string name(wire::namedGroupName(group));
    Blob p;
    for (const auto& [key, known] : knownPrimes()) {
      if (known != name) continue;
      BIGNUM* bn = nullptr;
      BN_hex2bn(&bn, key.c_str());
      p.resize(static_cast<std::size_t>(BN_num_bytes(bn)));
      BN_bn2bin(bn, p.data());
      BN_free(bn);
    }
    out.set("group", name);
    if (!p.empty()) checkDh(p, Blob{2}, k.server_public, k.client_public, out, checks, v, primes);
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
    out.set("psk_offered", in.offer->psk);
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
