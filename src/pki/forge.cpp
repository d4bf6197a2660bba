#include "pki/forge.h"

#include <arpa/inet.h>
#include <openssl/rand.h>

#include <algorithm>
#include <set>

#include "pki/x509_util.h"
#include "tls/cert_summary.h"

namespace tlstrace::pki {

using namespace tlstrace::tls;

namespace {

bool isIpLiteral(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// Built through the GENERAL_NAME API, never through config strings: a hostile upstream SAN such as
// "a.com,IP:1.2.3.4" must stay one literal name.
bool addSubjectAltNames(X509* x, const LeafNames& names) {
  GeneralNamesPtr gens(sk_GENERAL_NAME_new_null());
  if (!gens) return false;
  for (const auto& d : names.dns) {
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    if (!gn || !s || !ASN1_STRING_set(s, d.data(), static_cast<int>(d.size()))) {
      GENERAL_NAME_free(gn);
      ASN1_IA5STRING_free(s);
      return false;
    }
    GENERAL_NAME_set0_value(gn, GEN_DNS, s);  // gn owns s
    sk_GENERAL_NAME_push(gens.get(), gn);     // gens owns gn
  }
  for (const auto& ip : names.ips) {
    ASN1_OCTET_STRING* s = a2i_IPADDRESS(ip.c_str());
    if (!s) continue;
    GENERAL_NAME* gn = GENERAL_NAME_new();
    if (!gn) {
      ASN1_OCTET_STRING_free(s);
      return false;
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, s);
    sk_GENERAL_NAME_push(gens.get(), gn);
  }
  if (sk_GENERAL_NAME_num(gens.get()) == 0) return true;
  return X509_add1_ext_i2d(x, NID_subject_alt_name, gens.get(), 0, X509V3_ADD_DEFAULT) == 1;
}

}  // namespace

std::string LeafNames::key() const {
  std::set<std::string> d(dns.begin(), dns.end());
  std::set<std::string> i(ips.begin(), ips.end());
  std::string k = common_name + "|";
  for (const auto& s : d) k += s + ",";
  k += "|";
  for (const auto& s : i) k += s + ",";
  return k;
}

LeafNames leafNamesFor(const std::string& target, X509* upstream_cert) {
  LeafNames n;
  auto add = [&](const std::string& name) {
    if (name.empty()) return;
    auto& list = isIpLiteral(name) ? n.ips : n.dns;
    if (std::find(list.begin(), list.end(), name) == list.end()) list.push_back(name);
  };
  if (upstream_cert) {
    // Exactly the real certificate's names, never the target beside them: a server whose
    // certificate lacks the name the client asked for (relayed with --insecure) must fail the
    // client's hostname check as it would directly.
    CertNames c = certificateNames(upstream_cert);
    n.common_name = c.common_name;
    for (const auto& d : c.dns) add(d);
    for (const auto& ip : c.ips) add(ip);
  } else {
    add(target);
    n.common_name = target;
  }
  // RFC 5280 upper bound for CN is 64 characters.
  if (n.common_name.size() > 64) n.common_name.resize(64);
  return n;
}

Forger::Forger(const CertAuthority& ca, std::size_t cache_capacity, KeyType key_type)
    : ca_(ca),
      leaf_key_(key_type == KeyType::Rsa ? generateRsaKey(2048) : generateP256Key()),
      capacity_(std::max<std::size_t>(1, cache_capacity)) {}

X509Ptr Forger::leaf(const LeafNames& names, std::string& error) {
  const std::string k = names.key();
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = map_.find(k); it != map_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    ++hits_;
    return shareX509(it->second->second.get());
  }
  X509Ptr cert = sign(names, error);
  if (!cert) return nullptr;
  lru_.emplace_front(k, shareX509(cert.get()));
  map_[k] = lru_.begin();
  if (map_.size() > capacity_) {
    map_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return cert;
}

X509Ptr Forger::sign(const LeafNames& names, std::string& error) {
  CertSpec spec;
  spec.names = &names;
  spec.key = leaf_key_.get();
  spec.issuer = ca_.cert.get();
  spec.issuer_key = ca_.key.get();
  X509Ptr x = makeCertificate(spec, error);
  if (x) ++signings_;
  return x;
}

X509Ptr makeCertificate(const CertSpec& spec, std::string& error) {
  X509Ptr x(X509_new());
  X509* c = x.get();
  auto bail = [&](const char* what) {
    error = std::string("forging a certificate failed at ") + what + ": " + errorQueueText();
    return nullptr;
  };
  if (!c) return bail("X509_new");
  X509_set_version(c, 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return bail("serial");
  serial[0] = static_cast<unsigned char>((serial[0] & 0x7f) | 0x01);
  BnPtr bn(BN_bin2bn(serial, sizeof serial, nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(c))) return bail("serial");
  X509_gmtime_adj(X509_getm_notBefore(c), spec.not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(c), spec.not_after_s);
  const LeafNames& names = *spec.names;
  X509NamePtr subj(X509_NAME_new());
  if (!names.common_name.empty() &&
      !X509_NAME_add_entry_by_txt(subj.get(), "CN", MBSTRING_UTF8,
                                  reinterpret_cast<const unsigned char*>(names.common_name.c_str()), -1, -1, 0))
    return bail("subject");
  X509_NAME_add_entry_by_txt(subj.get(), "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("tlstrace"), -1, -1,
                             0);
  X509_set_subject_name(c, subj.get());
  // No issuer: self-signed, the certificate is its own issuer (names and key identifier).
  X509* issuer = spec.issuer ? spec.issuer : c;
  X509_set_issuer_name(c, X509_get_subject_name(issuer));
  X509_set_pubkey(c, spec.key);
  if (!addSubjectAltNames(c, names)) return bail("subjectAltName");
  try {
    addExtension(c, issuer, NID_basic_constraints, spec.basic_constraints);
    // RSA leaves may also be used for RSA key transport (TLS <= 1.2 TLS_RSA_* suites).
    addExtension(c, issuer, NID_key_usage,
                 spec.ca                                          ? "critical,digitalSignature,keyCertSign"
                 : EVP_PKEY_get_base_id(spec.key) == EVP_PKEY_RSA ? "critical,digitalSignature,keyEncipherment"
                                                                  : "critical,digitalSignature");
    if (spec.ext_key_usage && *spec.ext_key_usage) addExtension(c, issuer, NID_ext_key_usage, spec.ext_key_usage);
    addExtension(c, issuer, NID_subject_key_identifier, "hash");
    if (spec.issuer) addExtension(c, issuer, NID_authority_key_identifier, "keyid:always");
  } catch (const std::exception& e) {
    error = e.what();
    return nullptr;
  }
  if (!X509_sign(c, spec.issuer_key ? spec.issuer_key : nullptr, spec.digest ? spec.digest : EVP_sha256()))
    return bail("signing");
  // Once through DER and back: a certificate built field by field is encoded anew by every
  // i2d_X509, which libssl calls twice per handshake that sends it (~34 K instructions each for a
  // forged leaf); one parsed from DER keeps its bytes and copies them.
  unsigned char* der = nullptr;
  const int n = i2d_X509(c, &der);
  if (n <= 0) return bail("encoding");
  const unsigned char* p = der;
  X509Ptr parsed(d2i_X509(nullptr, &p, n));
  OPENSSL_free(der);
  if (!parsed) return bail("decoding");
  return parsed;
}

bool installForgedLeaf(SSL* ssl, Forger& forger, const std::string& target, SSL* upstream, std::string& error) {
  X509* upstream_cert = upstream ? SSL_get0_peer_certificate(upstream) : nullptr;
  tls::X509Ptr leaf = forger.leaf(leafNamesFor(target, upstream_cert), error);
  if (leaf && SSL_use_certificate(ssl, leaf.get()) == 1 && SSL_use_PrivateKey(ssl, forger.leafKey()) == 1) return true;
  if (error.empty()) error = "cannot install the forged certificate: " + errorQueueText();
  return false;
}

}  // namespace tlstrace::pki
