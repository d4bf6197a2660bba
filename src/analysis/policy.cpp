#include "analysis/policy.h"

#include <algorithm>
#include <cctype>
#include <ctime>

#include "wire/registry.h"

namespace tlstrace::analysis {

using config::PolicyLeg;
using config::PolicyRule;
using trace::Json;
using trace::Leg;

namespace {

std::string str(const Json* j) { return j && j->isString() ? std::string(j->asString()) : std::string(); }

// "host:port" / "[v6]:port" -> host.
std::string hostOfTarget(std::string_view t) {
  if (!t.empty() && t.front() == '[') {
    const auto close = t.find(']');
    return std::string(t.substr(1, close == std::string_view::npos ? t.size() - 1 : close - 1));
  }
  const auto colon = t.rfind(':');
  return std::string(colon == std::string_view::npos ? t : t.substr(0, colon));
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

bool anyMatch(const std::vector<std::string>& globs, std::string_view name) {
  return std::any_of(globs.begin(), globs.end(), [&](const std::string& g) { return config::globMatch(g, name); });
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

// RFC 3339 UTC "2026-12-27T09:31:53Z" (the chain's not_after) as seconds since the epoch; -1 if not one.
std::int64_t parseUtc(std::string_view s) {
  std::tm tm{};
  if (s.size() < 19 || std::sscanf(std::string(s).c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon,
                                   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&tm));
}

bool isSha1(std::string_view sigalg) {
  std::string s(sigalg);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s.find("sha1") != std::string::npos || s == "ecdsa-with-sha1";
}

bool forwardSecret(std::string_view kex) {
  return kex == "ECDHE" || kex == "DHE" || kex == "PSK_ECDHE" || kex == "PSK_DHE";
}

}  // namespace

PolicyEngine::PolicyEngine(config::Policy policy) : policy_(std::move(policy)), used_(policy_.rules.size()) {}

std::string PolicyEngine::hostOf(const ConnState& c, Leg leg) const {
  const LegState& l = c.legs[leg == Leg::Upstream ? 1 : 0];
  if (!l.sni.empty()) return l.sni;
  if (!c.legs[0].sni.empty()) return c.legs[0].sni;
  return c.target_host;
}

bool PolicyEngine::applies(const PolicyRule& r, Leg leg, const std::string& host) const {
  if (r.leg == PolicyLeg::Client && leg != Leg::Client) return false;
  if (r.leg == PolicyLeg::Upstream && leg != Leg::Upstream) return false;
  return r.hosts.empty() || anyMatch(r.hosts, host);
}

void PolicyEngine::onEstablished(const trace::ev::TlsEstablished& t, Leg leg, const std::string& host,
                                 std::vector<Check>& out) const {
  const std::uint16_t v = config::parseTlsVersion(t.version);
  const std::string alpn = t.alpn.value.value_or("");
  for (const auto& r : policy_.rules) {
    if (!applies(r, leg, host)) continue;
    if (r.min_version)
      out.push_back(
          {&r, v >= r.min_version, ">= " + std::string(wire::versionName(r.min_version)), t.version,
           "negotiated " + t.version + ", below the minimum " + std::string(wire::versionName(r.min_version))});
    if (r.max_version)
      out.push_back(
          {&r, v <= r.max_version, "<= " + std::string(wire::versionName(r.max_version)), t.version,
           "negotiated " + t.version + ", above the maximum " + std::string(wire::versionName(r.max_version))});
    if (!r.allowed_ciphers.empty())
      out.push_back({&r, anyMatch(r.allowed_ciphers, t.cipher.name), "one of " + joined(r.allowed_ciphers),
                     t.cipher.name, "cipher suite " + t.cipher.name + " is not allowed"});
    if (!r.forbidden_ciphers.empty())
      out.push_back({&r, !anyMatch(r.forbidden_ciphers, t.cipher.name), "none of " + joined(r.forbidden_ciphers),
                     t.cipher.name, "cipher suite " + t.cipher.name + " is forbidden"});
    if (r.require_alpn && *r.require_alpn)
      out.push_back({&r, !alpn.empty(), "an ALPN protocol", alpn.empty() ? "none" : alpn,
                     "no application protocol was negotiated (ALPN)"});
    if (!r.allowed_alpn.empty() && !alpn.empty())
      out.push_back({&r, anyMatch(r.allowed_alpn, alpn), "one of " + joined(r.allowed_alpn), alpn,
                     "ALPN protocol " + alpn + " is not allowed"});
    if (r.max_handshake_ms)
      out.push_back({&r, t.handshake_ms <= *r.max_handshake_ms, "<= " + number(*r.max_handshake_ms) + " ms",
                     number(t.handshake_ms) + " ms", "the handshake took " + number(t.handshake_ms) + " ms"});
  }
}

void PolicyEngine::onKeyExchange(const Json& k, Leg leg, const std::string& host, std::vector<Check>& out) const {
  const std::string kex = str(k.find("kex")), group = str(k.find("group")), rating_text = str(k.find("rating"));
  const Json* b = k.find("bits");
  const std::int64_t bits = b && b->isInt() ? b->asInt() : 0;
  auto rating = config::parseKexRating(rating_text);
  // A large custom prime still being tested: the rating is not final; tls.prime_check brings it.
  if (const Json* ch = k.find("checks"); ch && ch->isObject())
    if (const Json* sp = ch->find("safe_prime"); sp && sp->isString() && sp->asString() == "pending") rating.reset();
  const Json* offered = k.find("psk_offered");
  const Json* resumed = k.find("resumed");
  std::string reasons;
  if (const Json* rs = k.find("reasons"); rs && rs->isArray())
    for (const Json& x : rs->asArray()) reasons += (reasons.empty() ? "" : "; ") + std::string(x.asString());
  const bool dh = kex == "DHE" || kex == "PSK_DHE", ec = kex == "ECDHE" || kex == "PSK_ECDHE";
  const std::string what = kex + " " + group + " " + std::to_string(bits) + "-bit";
  for (const auto& r : policy_.rules) {
    if (!applies(r, leg, host)) continue;
    if (r.require_forward_secrecy && *r.require_forward_secrecy)
      out.push_back({&r, forwardSecret(kex), "ECDHE or DHE", kex, kex + " key exchange has no forward secrecy"});
    if (r.min_dh_bits && dh)
      out.push_back({&r, bits >= *r.min_dh_bits, ">= " + std::to_string(*r.min_dh_bits) + "-bit prime", what,
                     "DH prime of " + std::to_string(bits) + " bits, below " + std::to_string(*r.min_dh_bits)});
    if (r.min_ec_bits && ec)
      out.push_back(
          {&r, bits >= *r.min_ec_bits, ">= " + std::to_string(*r.min_ec_bits) + "-bit curve", what,
           "curve " + group + " of " + std::to_string(bits) + " bits, below " + std::to_string(*r.min_ec_bits)});
    if (r.min_kex_rating && rating)
      out.push_back({&r, *rating >= *r.min_kex_rating,
                     std::string(config::kexRatingName(*r.min_kex_rating)) + " or better",
                     rating_text + (reasons.empty() ? "" : " (" + reasons + ")"),
                     "key exchange " + what + " is rated " + rating_text + (reasons.empty() ? "" : ": " + reasons)});
    if (r.require_resumption && *r.require_resumption && offered && offered->asBool())
      out.push_back({&r, resumed && resumed->asBool(), "resumed", "full handshake",
                     "the client offered a session to resume (ticket or PSK) and a full handshake followed"});
  }
}

void PolicyEngine::onTrust(const Json& t, trace::Clock::time_point now, const std::string& host,
                           std::vector<Check>& out) const {
  const Json* verified = t.find("verified");
  const Json* match = t.find("hostname_match");
  const Json* chain = t.find("chain");
  const Json* leaf = chain && chain->isArray() && chain->asArray().size() > 0 ? &chain->asArray().front() : nullptr;
  const Json* key = leaf ? leaf->find("key") : nullptr;
  const std::string key_type = key ? str(key->find("type")) : std::string();
  const Json* kb = key ? key->find("bits") : nullptr;
  const std::int64_t key_bits = kb && kb->isInt() ? kb->asInt() : 0;
  const std::string error = str(t.find("error"));
  for (const auto& r : policy_.rules) {
    if (!applies(r, Leg::Upstream, host)) continue;
    if (r.require_verified && *r.require_verified && verified)
      out.push_back({&r, verified->asBool(), "verified", verified->asBool() ? "verified" : "unverified: " + error,
                     "the server's certificate did not verify: " + error});
    if (r.require_hostname_match && *r.require_hostname_match && match)
      out.push_back({&r, match->asBool(), "names " + str(t.find("hostname")),
                     leaf ? "names " +
                                [&] {
                                  std::string s;
                                  if (const Json* san = leaf->find("san"); san && san->isArray())
                                    for (const Json& x : san->asArray())
                                      s += (s.empty() ? "" : ", ") + std::string(x.asString());
                                  return s.empty() ? str(leaf->find("subject")) : s;
                                }()
                          : "no certificate",
                     "the certificate does not name " + str(t.find("hostname"))});
    if (r.min_days_to_expiry && leaf) {
      const std::int64_t end = parseUtc(str(leaf->find("not_after")));
      const double days =
          static_cast<double>(end - std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()) /
          86400.0;
      out.push_back({&r, end >= 0 && days >= static_cast<double>(*r.min_days_to_expiry),
                     "expires in >= " + std::to_string(*r.min_days_to_expiry) + " days",
                     str(leaf->find("not_after")) + " (" + number(days) + " days)",
                     "the certificate expires in " + number(days) + " days (" + str(leaf->find("not_after")) + ")"});
    }
    if (!r.allowed_key_types.empty() && leaf)
      out.push_back(
          {&r, std::find(r.allowed_key_types.begin(), r.allowed_key_types.end(), key_type) != r.allowed_key_types.end(),
           "one of " + joined(r.allowed_key_types), key_type, "the certificate's key is " + key_type});
    if (r.min_rsa_bits && (key_type == "RSA" || key_type == "RSA-PSS"))
      out.push_back({&r, key_bits >= *r.min_rsa_bits, ">= " + std::to_string(*r.min_rsa_bits) + "-bit RSA",
                     std::to_string(key_bits) + "-bit " + key_type,
                     "the certificate's RSA key has " + std::to_string(key_bits) + " bits"});
    if (r.min_ec_key_bits && key_type == "EC")
      out.push_back({&r, key_bits >= *r.min_ec_key_bits, ">= " + std::to_string(*r.min_ec_key_bits) + "-bit EC",
                     std::to_string(key_bits) + "-bit EC",
                     "the certificate's EC key has " + std::to_string(key_bits) + " bits"});
    if (r.forbid_sha1_signature && *r.forbid_sha1_signature && chain && chain->isArray()) {
      // A self-signed root's own signature is not checked by anyone (RFC 5280 6.1): it does not count.
      std::string sha1;
      for (const Json& c : chain->asArray())
        if (str(c.find("subject")) != str(c.find("issuer")) && isSha1(str(c.find("signature_algorithm"))))
          sha1 += (sha1.empty() ? "" : ", ") + str(c.find("subject")) + " (" + str(c.find("signature_algorithm")) + ")";
      out.push_back({&r, sha1.empty(), "no SHA-1 signature", sha1.empty() ? "none" : sha1,
                     "SHA-1 signature in the chain: " + sha1});
    }
  }
}

void PolicyEngine::record(const trace::Event& e, Leg leg, const std::string& host, std::vector<Check>& checks,
                          std::vector<trace::Event>& out, const EventOrigin& origin) {
  for (auto& c : checks) {
    const std::size_t idx = static_cast<std::size_t>(c.rule - policy_.rules.data());
    used_[idx] = true;
    PolicyCase& pc = cases_[{idx, host}];
    pc.rule = c.rule->id;
    pc.host = host;
    ++pc.checks;
    if (c.ok) continue;
    ++violations_;
    pc.failures.push_back({e.conn, std::string(trace::legName(leg)), c.expected, c.observed, c.message, origin});
    out.emplace_back(e.ts, e.conn, leg,
                     trace::ev::PolicyViolation{c.rule->id, c.rule->severity, host, std::move(c.expected),
                                                std::move(c.observed), std::move(c.message)});
  }
  checks.clear();
}

// The final rating of a key exchange whose prime was tested off the io thread.
void PolicyEngine::onPrimeCheck(const Json& r, Leg leg, const std::string& host, std::vector<Check>& out) const {
  const auto rating = config::parseKexRating(str(r.find("rating")));
  if (!rating) return;
  std::string reasons;
  if (const Json* rs = r.find("reasons"); rs && rs->isArray())
    for (const Json& x : rs->asArray()) reasons += (reasons.empty() ? "" : "; ") + std::string(x.asString());
  for (const auto& rule : policy_.rules)
    if (rule.min_kex_rating && applies(rule, leg, host))
      out.push_back({&rule, *rating >= *rule.min_kex_rating,
                     std::string(config::kexRatingName(*rule.min_kex_rating)) + " or better",
                     str(r.find("rating")) + (reasons.empty() ? "" : " (" + reasons + ")"),
                     "key exchange is rated " + str(r.find("rating")) + (reasons.empty() ? "" : ": " + reasons)});
}

void PolicyEngine::onFatalAlert(const trace::ev::TlsAlert& a, Leg leg, const std::string& host,
                                std::vector<Check>& out) const {
  for (const auto& r : policy_.rules)
    if (r.forbid_fatal_alerts && *r.forbid_fatal_alerts && applies(r, leg, host))
      out.push_back({&r, false, "no fatal alert", (a.dir == "in" ? "received fatal " : "sent fatal ") + a.description,
                     (a.dir == "in" ? "fatal alert received: " : "fatal alert sent: ") + a.description});
}

void PolicyEngine::onFailedHandshake(const trace::ev::TlsError& er, Leg leg, const std::string& host,
                                     std::vector<Check>& out) const {
  for (const auto& r : policy_.rules)
    if (r.require_handshake && *r.require_handshake && applies(r, leg, host))
      out.push_back({&r, false, "a completed handshake", er.cause,
                     "the handshake failed: " + er.cause + (er.hint.empty() ? "" : " (" + er.hint + ")")});
}

void PolicyEngine::onSummary(const Json& summary, const std::string& host, std::vector<Check>& out) const {
  const Json* d = summary.find("downgrade");
  if (!d || !d->isArray()) return;
  std::string induced;
  for (const Json& x : d->asArray())
    if (x.asString().find("proxy-induced") != std::string_view::npos)
      induced += (induced.empty() ? "" : "; ") + std::string(x.asString());
  for (const auto& r : policy_.rules)
    if (r.forbid_proxy_downgrade && *r.forbid_proxy_downgrade && applies(r, Leg::Upstream, host))
      out.push_back({&r, induced.empty(), "no proxy-induced downgrade", induced.empty() ? "none" : induced,
                     "the proxy downgraded the upstream leg: " + induced});
}

// A leg that saw no fatal alert and no failed handshake passed those rules: count it.
void PolicyEngine::onClose(const trace::Event& e, const ConnState& c, std::vector<trace::Event>& out,
                           const EventOrigin& origin) {
  std::vector<Check> checks;
  for (int i = 0; i < 2; ++i) {
    const Leg leg = i == 0 ? Leg::Client : Leg::Upstream;
    if (!c.legs[i].established) continue;
    const std::string host = hostOf(c, leg);
    for (const auto& r : policy_.rules)
      if (applies(r, leg, host) && ((r.forbid_fatal_alerts && *r.forbid_fatal_alerts && !c.legs[i].failed) ||
                                    (r.require_handshake && *r.require_handshake)))
        checks.push_back({&r, true, "", "", ""});
    record(e, leg, host, checks, out, origin);
  }
}

void PolicyEngine::observe(const trace::Event& e, std::vector<trace::Event>& out, const EventOrigin& origin) {
  using namespace trace::ev;
  if (e.as<PolicyViolation>()) return;  // our own output, read back by `check`
  if (const auto* o = e.as<ConnOpen>()) {
    ++connections_;
    ConnState& c = conns_[e.conn];
    if (o->target) c.target_host = hostOfTarget(*o->target);
    return;
  }
  auto it = conns_.find(e.conn);
  if (it == conns_.end()) return;  // a connection whose start was not seen
  ConnState& c = it->second;
  const int li = e.leg == Leg::Upstream ? 1 : 0;
  LegState& l = c.legs[li];
  std::vector<Check> checks;
  if (const auto* q = e.as<ProxyRequest>()) {
    c.target_host = hostOfTarget(q->target);
  } else if (const auto* m = e.as<TlsMessage>()) {
    if (m->type == "ClientHello" && l.sni.empty())
      if (const auto sni = m->body.find("sni")) l.sni = std::string(sni->asString());
  } else if (const auto* t = e.as<TlsEstablished>()) {
    if (t->sni.value && !t->sni.value->empty()) l.sni = *t->sni.value;
    l.established = true;
    onEstablished(*t, e.leg, hostOf(c, e.leg), checks);
  } else if (const auto* k = e.as<TlsKeyExchange>()) {
    if (l.established) onKeyExchange(k->report.object, e.leg, hostOf(c, e.leg), checks);  // not a failed one
  } else if (const auto* pc = e.as<TlsPrimeCheck>()) {
    onPrimeCheck(pc->report.object, e.leg, hostOf(c, e.leg), checks);
  } else if (const auto* tr = e.as<TlsTrust>()) {
    if (const std::string h = str(tr->report.object.find("hostname")); !h.empty() && l.sni.empty()) l.sni = h;
    onTrust(tr->report.object, e.ts, hostOf(c, Leg::Upstream), checks);
  } else if (const auto* a = e.as<TlsAlert>()) {
    if (a->level == "fatal") {
      l.failed = true;
      onFatalAlert(*a, e.leg, hostOf(c, e.leg), checks);
    }
  } else if (const auto* er = e.as<TlsError>()) {
    if (!l.established && e.leg != Leg::None) onFailedHandshake(*er, e.leg, hostOf(c, e.leg), checks);
  } else if (const auto* s = e.as<ConnSummary>()) {
    const std::string host = hostOf(c, Leg::Upstream);
    onSummary(s->report.object, host, checks);
    record(e, Leg::Upstream, host, checks, out, origin);
    return;
  } else if (e.as<ConnClose>()) {
    onClose(e, c, out, origin);
    conns_.erase(it);
    return;
  }
  if (!checks.empty()) record(e, e.leg, hostOf(c, e.leg), checks, out, origin);
}

std::vector<const PolicyCase*> PolicyEngine::cases() const {
  std::vector<const PolicyCase*> v;
  for (const auto& [key, pc] : cases_) v.push_back(&pc);
  return v;
}

std::vector<const PolicyRule*> PolicyEngine::unusedRules() const {
  std::vector<const PolicyRule*> v;
  for (std::size_t i = 0; i < policy_.rules.size(); ++i)
    if (!used_[i]) v.push_back(&policy_.rules[i]);
  return v;
}

}  // namespace tlstrace::analysis
