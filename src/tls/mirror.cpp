#include "tls/mirror.h"

#include <openssl/err.h>

#include <string>
#include <vector>

#include "wire/handshake.h"
#include "wire/registry.h"

namespace tlstrace::tls {

using trace::Json;

namespace {

// OpenSSL's spelling of the groups it can offer (SSL_set1_groups_list).
const char* opensslGroup(std::uint16_t id) {
  switch (id) {
    case 23: return "P-256";
    case 24: return "P-384";
    case 25: return "P-521";
    case 29: return "X25519";
    case 30: return "X448";
    case 256: return "ffdhe2048";
    case 257: return "ffdhe3072";
    case 258: return "ffdhe4096";
    case 259: return "ffdhe6144";
    case 260: return "ffdhe8192";
    case 26: return "brainpoolP256r1";
    case 27: return "brainpoolP384r1";
    case 28: return "brainpoolP512r1";
    case 22: return "secp256k1";
    case 21: return "secp224r1";
    default: return nullptr;
  }
}

std::string join(const std::vector<std::string>& v, char sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : std::string(1, sep)) + x;
  return s;
}

Json strings(const std::vector<std::string>& v) {
  Json a = Json::array();
  for (const auto& x : v) a.push(x);
  return a;
}

// Items that could not be mirrored, each with the reason.
void skip(Json& skipped, std::string what, std::string why) {
  Json o = Json::object();
  o.set("item", std::move(what));
  o.set("reason", std::move(why));
  skipped.push(std::move(o));
}

// Versions: the client's range (RFC 8446 4.2.1; legacy_version when there is no extension).
void mirrorVersions(SSL* ssl, const trace::HelloOffer& offer, Json& mirrored) {
  std::uint16_t lo = 0xffff, hi = 0;
  for (auto v : offer.versions) {
    if (wire::isGrease(v) || v < 0x0300 || v > 0x0304) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (hi) {
    SSL_set_min_proto_version(ssl, lo);
    SSL_set_max_proto_version(ssl, hi);
    if (lo < TLS1_2_VERSION) SSL_set_security_level(ssl, 0);  // let OpenSSL speak what was asked
    mirrored.set("versions", std::string(wire::versionName(lo)) + ".." + std::string(wire::versionName(hi)));
  }
}

// Cipher suites, split by protocol as OpenSSL configures them.
void mirrorSuites(SSL* ssl, const trace::HelloOffer& offer, Json& mirrored, Json& skipped) {
  std::vector<std::string> tls12, tls13;
  for (auto id : offer.suites) {
    if (wire::isGrease(id)) continue;
    if (id == 0x00ff || id == 0x5600) continue;  // SCSVs: OpenSSL adds its own as needed
    const unsigned char b[2] = {static_cast<unsigned char>(id >> 8), static_cast<unsigned char>(id & 0xff)};
    const SSL_CIPHER* c = SSL_CIPHER_find(ssl, b);
    if (!c) {
      skip(skipped, std::string(wire::cipherSuiteName(id)), "not implemented by this OpenSSL");
      continue;
    }
    if ((id >> 8) == 0x13) tls13.push_back(SSL_CIPHER_standard_name(c));
    else tls12.push_back(SSL_CIPHER_get_name(c));
  }
  ERR_clear_error();
  if (!tls12.empty()) {
    // @SECLEVEL=0 so that weak suites the client offered are really offered too.
    if (SSL_set_cipher_list(ssl, (join(tls12, ':') + ":@SECLEVEL=0").c_str()) == 1)
      mirrored.set("cipher_suites_tls12", strings(tls12));
    else skip(skipped, "TLS 1.2 cipher suites", "OpenSSL refused the list");
  }
  if (!tls13.empty()) {
    if (SSL_set_ciphersuites(ssl, join(tls13, ':').c_str()) == 1) mirrored.set("cipher_suites_tls13", strings(tls13));
    else skip(skipped, "TLS 1.3 cipher suites", "OpenSSL refused the list");
  }
}

// Groups, each tried on its own first so one unknown name does not void the list.
void mirrorGroups(SSL* ssl, const trace::HelloOffer& offer, Json& mirrored, Json& skipped) {
  std::vector<std::string> groups;
  for (auto g : offer.groups) {
    if (wire::isGrease(g)) continue;
    const char* name = opensslGroup(g);
    if (!name || SSL_set1_groups_list(ssl, name) != 1) {
      skip(skipped, std::string(wire::namedGroupName(g)), "group not available in OpenSSL");
      continue;
    }
    groups.push_back(name);
  }
  if (!groups.empty() && SSL_set1_groups_list(ssl, join(groups, ':').c_str()) == 1)
    mirrored.set("groups", strings(groups));
}

// Signature schemes by their IANA names, which OpenSSL 3 accepts.
void mirrorSigalgs(SSL* ssl, const trace::HelloOffer& offer, Json& mirrored, Json& skipped) {
  std::vector<std::string> sigs;
  for (auto s : offer.sigalgs) {
    if (wire::isGrease(s)) continue;
    const std::string name(wire::signatureSchemeName(s));
    if (name == "unknown" || SSL_set1_sigalgs_list(ssl, name.c_str()) != 1) {
      skip(skipped, name == "unknown" ? std::to_string(s) : name, "signature scheme not available in OpenSSL");
      continue;
    }
    sigs.push_back(name);
  }
  if (!sigs.empty() && SSL_set1_sigalgs_list(ssl, join(sigs, ':').c_str()) == 1)
    mirrored.set("signature_algorithms", strings(sigs));
  ERR_clear_error();
}

// ALPN as offered; what OpenSSL cannot reproduce (key share choice, GREASE, layout, extensions).
void mirrorRest(const trace::HelloOffer& offer, Json& mirrored, Json& skipped) {
  if (!offer.alpn.empty()) mirrored.set("alpn", strings(offer.alpn));
  if (!offer.key_shares.empty()) skip(skipped, "key_share choice", "OpenSSL sends a share for its first group only");
  bool grease = false;
  for (auto x : offer.suites) grease = grease || wire::isGrease(x);
  if (grease) skip(skipped, "GREASE values", "OpenSSL does not send GREASE");
  skip(skipped, "extension order and padding", "OpenSSL builds its own ClientHello layout");
  for (auto e : offer.extensions) {
    using wire::ExtensionType;
    const auto t = static_cast<ExtensionType>(e);
    if (t == ExtensionType::CompressCertificate || t == ExtensionType::EncryptedClientHello ||
        t == ExtensionType::ApplicationSettings || t == ExtensionType::DelegatedCredentials)
      skip(skipped, std::string(wire::extensionName(e)), "not supported by OpenSSL 3.0 as a client");
  }
}

}  // namespace

Json mirrorClientOffer(SSL* ssl, const trace::HelloOffer& offer) {
  Json mirrored = Json::object();
  Json skipped = Json::array();
  mirrorVersions(ssl, offer, mirrored);
  mirrorSuites(ssl, offer, mirrored, skipped);
  mirrorGroups(ssl, offer, mirrored, skipped);
  mirrorSigalgs(ssl, offer, mirrored, skipped);
  mirrorRest(offer, mirrored, skipped);
  Json out = Json::object();
  out.set("mirrored", std::move(mirrored));
  out.set("not_mirrored", std::move(skipped));
  return out;
}

}  // namespace tlstrace::tls
