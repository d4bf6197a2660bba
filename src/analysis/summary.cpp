#include "analysis/summary.h"

#include <algorithm>
#include <array>

#include "analysis/fingerprint.h"
#include "wire/registry.h"

namespace tlstrace::analysis {

using trace::Json;

namespace {

template <typename T>
bool has(const std::vector<T>& v, const T& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::vector<std::uint16_t> missing(const std::vector<std::uint16_t>& from, const std::vector<std::uint16_t>& in) {
  std::vector<std::uint16_t> out;
  for (auto x : from)
    if (!wire::isGrease(x) && !has(in, x)) out.push_back(x);
  return out;
}

Json names(const std::vector<std::uint16_t>& v, std::string_view (*namer)(std::uint16_t)) {
  Json a = Json::array();
  for (auto x : v) a.push(std::string(namer(x)));
  return a;
}

std::uint16_t maxVersion(const std::vector<std::uint16_t>& v) {
  std::uint16_t m = 0;
  for (auto x : v)
    if (!wire::isGrease(x)) m = std::max(m, x);
  return m;
}

const Json* field(const Json& j, std::string_view k) { return j.isObject() ? j.find(k) : nullptr; }

constexpr std::array<const char*, 6> kEstablishedKeys = {"version", "cipher", "group", "alpn", "resumed", "resumption"};
constexpr std::array<const char*, 4> kTrustKeys = {"verified", "error", "hostname", "hostname_match"};
constexpr std::array<const char*, 2> kKeyExchangeKeys = {"rating", "kex"};

// One leg's part of conn.summary that is fixed once its handshake is done.
Json legHandshake(const LegReport& l) {
  Json o = Json::object();
  if (l.offer && l.offer->seen) {
    o.set("offered_versions", names(l.offer->versions, wire::versionName));
    o.set("offered_cipher_suites", static_cast<unsigned long long>(l.offer->suites.size()));
    o.set("offered_groups", names(l.offer->groups, wire::namedGroupName));
    // The first ClientHello's shares; after a HelloRetryRequest the second's beside them.
    Json shares = Json::array(), latest = Json::array();
    for (const auto& [g, _] : l.offer->key_shares) latest.push(std::string(wire::namedGroupName(g)));
    for (auto g : l.offer->first_key_share_groups) shares.push(std::string(wire::namedGroupName(g)));
    o.set("offered_key_shares", std::move(l.offer->retried ? shares : latest));
    if (l.offer->retried) o.set("offered_key_shares_after_hrr", std::move(latest));
    Json alpn = Json::array();
    for (const auto& a : l.offer->alpn) alpn.push(a);
    o.set("offered_alpn", std::move(alpn));
    o.set("sni", l.offer->sni.empty() ? Json() : Json(l.offer->sni));
    const bool have = l.prints && !l.prints->ja3.empty();
    o.set("ja3", have ? l.prints->ja3 : ja3(*l.offer).hash);
    o.set("ja4", have ? l.prints->ja4 : ja4(*l.offer));
  }
  if (l.choice && l.choice->seen) {
    const bool have = l.prints && !l.prints->ja3s.empty();
    o.set("ja3s", have ? l.prints->ja3s : ja3s(*l.choice).hash);
    o.set("ja4s", have ? l.prints->ja4s : ja4s(*l.choice));
    if (l.choice->hrr) o.set("hello_retry_request", std::string(wire::namedGroupName(l.choice->hrr_group)));
  }
  for (const char* k : kEstablishedKeys)
    if (const Json* v = field(l.established, k)) o.set(k, *v);
  if (l.kex && l.kex->server_sig_scheme)
    o.set("signature_scheme", std::string(wire::signatureSchemeName(*l.kex->server_sig_scheme)));
  if (const Json* r = field(l.key_exchange, kKeyExchangeKeys[0])) o.set("key_exchange_rating", *r);
  if (const Json* k = field(l.key_exchange, kKeyExchangeKeys[1])) o.set("kex", *k);
  if (l.trust.isObject()) {
    Json t = Json::object();
    for (const char* k : kTrustKeys)
      if (const Json* v = field(l.trust, k)) t.set(k, *v);
    o.set("certificate", std::move(t));
  }
  return o;
}

// What can still change until the close, after the handshake part.
void appendLive(Json& o, const LegReport& l) {
  Json alerts = Json::array();
  for (const auto& a : l.alerts) alerts.push(a);
  o.set("alerts", std::move(alerts));
  Json timing = Json::object();
  if (l.connect_ms) timing.set("tcp_connect_ms", trace::timingMs(*l.connect_ms));
  if (l.handshake_ms) timing.set("handshake_ms", trace::timingMs(*l.handshake_ms));
  o.set("timings", std::move(timing));
  o.set("established", l.was_established || l.established.isObject());
  if (!l.error_cause.empty()) o.set("error", l.error_cause);
}

int ratingRank(const Json& kex) {
  const Json* r = field(kex, "rating");
  if (!r) return -1;
  const std::string& s = r->asString();
  return s == "strong" ? 0 : s == "acceptable" ? 1 : s == "weak" ? 2 : 3;
}

}  // namespace

Json keepForSummary(SummaryInput which, const Json& fields) {
  if (!fields.isObject()) return fields;
  Json kept = Json::object();
  const auto keep = [&](const auto& keys) {
    for (const char* k : keys)
      if (const Json* v = fields.find(k)) kept.set(k, *v);
  };
  switch (which) {
    case SummaryInput::Established: keep(kEstablishedKeys); break;
    case SummaryInput::Trust: keep(kTrustKeys); break;
    case SummaryInput::KeyExchange: keep(kKeyExchangeKeys); break;
  }
  return kept;
}

Json summaryHandshakePart(const LegReport& client, const LegReport& upstream) {
  Json s = Json::object();
  s.set("client", legHandshake(client));
  s.set("upstream", legHandshake(upstream));
  if (!client.offer || !client.offer->seen || !upstream.offer || !upstream.offer->seen) return s;
  const trace::HelloOffer& c = *client.offer;
  const trace::HelloOffer& u = *upstream.offer;

  Json nf = Json::object();
  nf.set("versions", names(missing(c.versions, u.versions), wire::versionName));
  nf.set("cipher_suites", names(missing(c.suites, u.suites), wire::cipherSuiteName));
  nf.set("groups", names(missing(c.groups, u.groups), wire::namedGroupName));
  nf.set("signature_algorithms", names(missing(c.sigalgs, u.sigalgs), wire::signatureSchemeName));
  nf.set("extensions", names(missing(c.extensions, u.extensions), wire::extensionName));
  Json alpn = Json::array();
  for (const auto& a : c.alpn)
    if (!has(u.alpn, a)) alpn.push(a);
  nf.set("alpn", std::move(alpn));
  s.set("not_forwarded", std::move(nf));

  Json downgrade = Json::array();
  const std::uint16_t cv = maxVersion(c.versions), pv = maxVersion(u.versions);
  const std::uint16_t uv = upstream.choice ? upstream.choice->version : 0;
  const std::uint16_t clv = client.choice ? client.choice->version : 0;
  if (uv && clv && uv < clv) {
    std::string why = "upstream negotiated " + std::string(wire::versionName(uv)) + " while the client leg has " +
                      std::string(wire::versionName(clv));
    why += pv < cv ? ": proxy-induced, the proxy offered at most " + std::string(wire::versionName(pv)) + " upstream"
                   : ": the server's limit";
    downgrade.push(why);
  }
  // A newer version upstream (a TLS 1.2 client, TLS 1.3 upstream) needs suites the client could not
  // offer: an upgrade, not a downgrade.
  const bool upgraded = uv && clv && uv > clv;
  if (!upgraded && upstream.choice && upstream.choice->suite && !has(c.suites, upstream.choice->suite))
    downgrade.push("upstream cipher suite " + std::string(wire::cipherSuiteName(upstream.choice->suite)) +
                   " is one the client did not offer (proxy-induced)");
  if (upstream.kex && upstream.kex->group && !c.groups.empty() && !has(c.groups, upstream.kex->group))
    downgrade.push("upstream group " + std::string(wire::namedGroupName(upstream.kex->group)) +
                   " is one the client did not offer (proxy-induced)");
  const int rc = ratingRank(client.key_exchange), ru = ratingRank(upstream.key_exchange);
  if (rc >= 0 && ru > rc)
    downgrade.push("the upstream key exchange is rated " + field(upstream.key_exchange, "rating")->asString() +
                   ", the client leg " + field(client.key_exchange, "rating")->asString());
  s.set("downgrade", std::move(downgrade));
  return s;
}

Json completeSummary(Json handshake_part, const LegReport& client, const LegReport& upstream) {
  if (!handshake_part.isObject()) handshake_part = Json::object();
  for (const auto& [name, leg] : {std::pair{"client", &client}, std::pair{"upstream", &upstream}}) {
    Json* o = handshake_part.find(name);
    if (!o || !o->isObject()) {
      handshake_part.set(name, Json::object());
      o = handshake_part.find(name);
    }
    appendLive(*o, *leg);
  }
  return handshake_part;
}

Json buildSummary(const LegReport& client, const LegReport& upstream) {
  return completeSummary(summaryHandshakePart(client, upstream), client, upstream);
}

}  // namespace tlstrace::analysis
