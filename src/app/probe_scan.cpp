// The probe's --scan: which versions, cipher suites, groups and signature algorithms a server
// accepts, one handshake per candidate through the runner (bounded and concurrent there). Cipher
// suites are found in the server's order of preference the usual way: offer all, note the one it
// chooses, offer the rest, until it refuses.
#include <algorithm>
#include <memory>

#include "app/probe_run.h"
#include "tls/context.h"

namespace tlstrace::app {

using trace::Json;

namespace {

struct Version {
  const char* name;  // as tls.established names it
  const char* option;
};
constexpr Version kVersions[] = {{"TLSv1", "1.0"}, {"TLSv1.1", "1.1"}, {"TLSv1.2", "1.2"}, {"TLSv1.3", "1.3"}};

// Every TLS <= 1.2 suite OpenSSL can speak; security level 0 so that weak ones are offered too
// (a scan looks for what the server accepts, not for what we would).
constexpr const char* kAllCiphers = "ALL:COMPLEMENTOFALL:@SECLEVEL=0";
constexpr const char* kTls13Suites[] = {"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
                                        "TLS_AES_128_GCM_SHA256", "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"};
// Groups OpenSSL 3.0 offers: (name in OpenSSL's list syntax, as tls.established names it).
constexpr std::pair<const char*, const char*> kGroups[] = {
    {"X25519", "x25519"},       {"X448", "x448"},           {"P-256", "secp256r1"},     {"P-384", "secp384r1"},
    {"P-521", "secp521r1"},     {"ffdhe2048", "ffdhe2048"}, {"ffdhe3072", "ffdhe3072"}, {"ffdhe4096", "ffdhe4096"},
    {"ffdhe6144", "ffdhe6144"}, {"ffdhe8192", "ffdhe8192"}};
// Signature algorithms (RFC 8446 4.2.3 names), in OpenSSL's list syntax where it differs.
constexpr std::pair<const char*, const char*> kSigalgs[] = {{"ecdsa_secp256r1_sha256", "ECDSA+SHA256"},
                                                            {"ecdsa_secp384r1_sha384", "ECDSA+SHA384"},
                                                            {"ecdsa_secp521r1_sha512", "ECDSA+SHA512"},
                                                            {"ed25519", "ed25519"},
                                                            {"ed448", "ed448"},
                                                            {"rsa_pss_rsae_sha256", "rsa_pss_rsae_sha256"},
                                                            {"rsa_pss_rsae_sha384", "rsa_pss_rsae_sha384"},
                                                            {"rsa_pss_rsae_sha512", "rsa_pss_rsae_sha512"},
                                                            {"rsa_pss_pss_sha256", "rsa_pss_pss_sha256"},
                                                            {"rsa_pss_pss_sha384", "rsa_pss_pss_sha384"},
                                                            {"rsa_pss_pss_sha512", "rsa_pss_pss_sha512"},
                                                            {"rsa_pkcs1_sha256", "RSA+SHA256"},
                                                            {"rsa_pkcs1_sha384", "RSA+SHA384"},
                                                            {"rsa_pkcs1_sha512", "RSA+SHA512"},
                                                            {"ecdsa_sha1", "ECDSA+SHA1"},
                                                            {"rsa_pkcs1_sha1", "RSA+SHA1"}};

struct Scan {
  ScanRunner* runner = nullptr;
  std::vector<std::string> what;
  ScanOffer base;
  std::shared_ptr<ScanResults> res;
  [[nodiscard]] bool wants(const char* w) const {
    return std::find(what.begin(), what.end(), w) != what.end() ||
           std::find(what.begin(), what.end(), "all") != what.end();
  }
};

ScanOffer forVersion(const ScanOffer& base, const Version& v) {
  ScanOffer o = base;
  o.min = o.max = v.option;
  if (std::string(v.option) != "1.3" && o.ciphers.empty()) o.ciphers = kAllCiphers;
  return o;
}

const Version* versionNamed(const std::string& name) {
  for (const Version& v : kVersions)
    if (name == v.name) return &v;
  return nullptr;
}

// One version's suites in the server's order: offer what is left, note the choice, drop it.
void nextCipher(const std::shared_ptr<Scan>& s, const Version& v, std::shared_ptr<std::vector<tls::CipherName>> left,
                std::size_t out) {
  if (left->empty()) return;
  ScanOffer o = forVersion(s->base, v);
  std::string list;
  for (const auto& c : *left)
    list += (list.empty() ? "" : ":") + (std::string(v.option) == "1.3" ? c.standard : c.openssl);
  if (std::string(v.option) == "1.3") o.ciphersuites = list;
  else o.ciphers = list + ":@SECLEVEL=0";
  s->runner->handshake(o, [s, &v, left, out](const ScanOutcome& r) {
    if (!r.ok || r.version != v.name) return;
    const auto it = std::find_if(left->begin(), left->end(), [&](const auto& c) { return c.standard == r.cipher; });
    if (it == left->end()) return;  // chose what was not offered: stop rather than loop
    s->res->ciphers[out].second.push_back(r.cipher);
    left->erase(it);
    nextCipher(s, v, left, out);
  });
}

void scanCiphers(const std::shared_ptr<Scan>& s) {
  for (const std::string& name : s->res->versions) {
    const Version* v = versionNamed(name);
    if (!v) continue;
    auto left = std::make_shared<std::vector<tls::CipherName>>();
    if (std::string(v->option) == "1.3") {
      for (const char* suite : kTls13Suites) left->push_back({0, suite, suite});
    } else {
      *left = tls::offeredCiphers({v->option, v->option, kAllCiphers, "", ""});
    }
    s->res->ciphers.push_back({name, {}});
    nextCipher(s, *v, left, s->res->ciphers.size() - 1);
  }
}

// Groups at the highest version accepted (TLS 1.3: key_share; TLS 1.2: ECDHE suites), one per
// handshake; then, with one group refused and one accepted offered, whether the server asks for
// the accepted one with a HelloRetryRequest (RFC 8446 4.1.4) or refuses.
void scanGroups(const std::shared_ptr<Scan>& s) {
  const Version* v = versionNamed(s->res->versions.back());
  const bool tls13 = std::string(v->option) == "1.3";
  auto accepted = std::make_shared<std::vector<int>>();
  auto pending = std::make_shared<int>(static_cast<int>(std::size(kGroups)));
  s->res->groups_version = v->name;
  for (int i = 0; i < static_cast<int>(std::size(kGroups)); ++i) {
    ScanOffer o = forVersion(s->base, *v);
    o.groups = kGroups[i].first;
    // TLS 1.2: ECDHE suites for a curve, DHE ones for an RFC 7919 group (which the server may
    // answer with its own prime: only the group named in the handshake counts).
    const bool ffdhe = std::string_view(kGroups[i].first).starts_with("ffdhe");
    if (!tls13) o.ciphers = ffdhe ? "kDHE:@SECLEVEL=0" : "kECDHE:@SECLEVEL=0";
    s->runner->handshake(o, [s, i, accepted, pending, tls13, v](const ScanOutcome& r) {
      if (r.ok && r.group == kGroups[i].second) accepted->push_back(i);
      if (--*pending > 0) return;
      std::sort(accepted->begin(), accepted->end());
      for (int a : *accepted) s->res->groups.emplace_back(kGroups[a].second);
      int refused = -1;
      for (int k = 0; k < static_cast<int>(std::size(kGroups)) && refused < 0; ++k)
        if (std::find(accepted->begin(), accepted->end(), k) == accepted->end()) refused = k;
      if (!tls13 || accepted->empty() || refused < 0) return;
      ScanOffer h = forVersion(s->base, *v);
      // OpenSSL sends a key share for the first group of its list only.
      h.groups = std::string(kGroups[refused].first) + ":" + kGroups[accepted->front()].first;
      s->runner->handshake(h, [s, refused](const ScanOutcome& r2) {
        s->res->hrr_key_share = kGroups[refused].second;
        s->res->hrr_result = r2.hrr && r2.ok ? "hello_retry_request" : r2.ok ? "accepted" : "refused";
      });
    });
  }
}

// TLS <= 1.2 DH parameters: one handshake offering DHE suites only, its key exchange as the
// proxy rates it (the prime's size, a known group or not, safe prime; analysis/kex).
void scanDhe(const std::shared_ptr<Scan>& s) {
  const Version* v = nullptr;
  for (const std::string& name : s->res->versions)
    if (name != "TLSv1.3") v = versionNamed(name);
  if (!v) return;
  ScanOffer o = forVersion(s->base, *v);
  o.ciphers = "kDHE:@SECLEVEL=0";
  s->runner->handshake(o, [s](const ScanOutcome& r) {
    if (r.ok) s->res->dhe = r.key_exchange;
  });
}

void scanSigalgs(const std::shared_ptr<Scan>& s) {
  const Version* v = versionNamed(s->res->versions.back());
  s->res->sigalgs_version = v->name;
  auto ok = std::make_shared<std::vector<int>>();
  auto pending = std::make_shared<int>(static_cast<int>(std::size(kSigalgs)));
  for (int i = 0; i < static_cast<int>(std::size(kSigalgs)); ++i) {
    ScanOffer o = forVersion(s->base, *v);
    o.sigalgs = kSigalgs[i].second;
    s->runner->handshake(o, [s, i, ok, pending](const ScanOutcome& r) {
      if (r.ok) ok->push_back(i);
      if (--*pending > 0) return;
      std::sort(ok->begin(), ok->end());
      for (int a : *ok) s->res->sigalgs.emplace_back(kSigalgs[a].first);
    });
  }
}

}  // namespace

void startScan(ScanRunner& runner, const std::vector<std::string>& what, const ScanOffer& base,
               std::shared_ptr<ScanResults> res) {
  auto s = std::make_shared<Scan>(Scan{&runner, what, base, std::move(res)});
  auto results = std::make_shared<std::vector<bool>>(std::size(kVersions), false);
  auto pending = std::make_shared<int>(static_cast<int>(std::size(kVersions)));
  for (std::size_t i = 0; i < std::size(kVersions); ++i) {
    runner.handshake(forVersion(base, kVersions[i]), [s, i, results, pending](const ScanOutcome& r) {
      (*results)[i] = r.ok && r.version == kVersions[i].name;
      if (--*pending > 0) return;
      for (std::size_t k = 0; k < std::size(kVersions); ++k)
        if ((*results)[k]) s->res->versions.emplace_back(kVersions[k].name);
      if (s->res->versions.empty()) return;
      if (s->wants("ciphers")) scanCiphers(s);
      if (s->wants("groups")) {
        scanGroups(s);
        scanDhe(s);
      }
      if (s->wants("sigalgs")) scanSigalgs(s);
    });
  }
}

Json scanReport(const ScanResults& r, const std::vector<std::string>& what) {
  auto wants = [&](const char* w) {
    return std::find(what.begin(), what.end(), w) != what.end() ||
           std::find(what.begin(), what.end(), "all") != what.end();
  };
  auto list = [](const std::vector<std::string>& v) {
    Json a = Json::array();
    for (const auto& x : v) a.push(x);
    return a;
  };
  Json out = Json::object();
  out.set("versions", list(r.versions));
  if (wants("ciphers")) {
    Json c = Json::object();
    for (const auto& [version, suites] : r.ciphers) c.set(version, list(suites));
    out.set("ciphers", std::move(c));
  }
  if (wants("groups")) {
    Json g = Json::object();
    g.set("version", r.groups_version.empty() ? Json() : Json(r.groups_version));
    g.set("accepted", list(r.groups));
    if (!r.hrr_result.empty()) {
      Json h = Json::object();
      h.set("key_share", r.hrr_key_share);
      h.set("result", r.hrr_result);
      g.set("hrr", std::move(h));
    } else {
      g.set("hrr", Json());
    }
    out.set("groups", std::move(g));
    out.set("dhe", r.dhe);
  }
  if (wants("sigalgs")) {
    Json g = Json::object();
    g.set("version", r.sigalgs_version.empty() ? Json() : Json(r.sigalgs_version));
    g.set("accepted", list(r.sigalgs));
    out.set("sigalgs", std::move(g));
  }
  return out;
}

}  // namespace tlstrace::app
