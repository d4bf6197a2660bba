#include "tls/cert_summary.h"

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cstdio>
#include <ctime>

#include "wire/byte_reader.h"

namespace tlstrace::tls {

using trace::Json;

namespace {

std::string nameText(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || !name) return {};
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n > 0 ? n : 0));
}

std::string timeText(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string ipText(const ASN1_OCTET_STRING* ip) {
  const unsigned char* p = ASN1_STRING_get0_data(ip);
  const int n = ASN1_STRING_length(ip);
  char buf[64] = {};
  if (n == 4) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", p[0], p[1], p[2], p[3]);
  } else if (n == 16) {
    std::string s;
    for (int i = 0; i < 16; i += 2) {
      char part[8];
      std::snprintf(part, sizeof part, "%x", (p[i] << 8) | p[i + 1]);
      if (i) s += ":";
      s += part;
    }
    return s;
  }
  return buf;
}

std::string hexOf(const unsigned char* p, std::size_t n) { return wire::toHex({p, n}); }

// The X.509 v3 extensions (RFC 5280 4.2) as OpenSSL prints them (X509V3_EXT_print, the text
// `openssl x509 -text` shows), with their OIDs and criticality: the jsse/openssl text formats
// rebuild their certificate blocks from these.
Json x509Extensions(X509* cert) {
  Json a = Json::array();
  for (int i = 0; i < X509_get_ext_count(cert); ++i) {
    X509_EXTENSION* ext = X509_get_ext(cert, i);
    const ASN1_OBJECT* obj = X509_EXTENSION_get_object(ext);
    char oid[128] = {};
    OBJ_obj2txt(oid, sizeof oid, obj, 1);
    Json e = Json::object();
    e.set("oid", std::string(oid));
    const int nid = OBJ_obj2nid(obj);
    e.set("name", std::string(nid != NID_undef ? OBJ_nid2ln(nid) : oid));
    e.set("critical", X509_EXTENSION_get_critical(ext) != 0);
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (bio && X509V3_EXT_print(bio.get(), ext, 0, 0) == 1) {
      char* data = nullptr;
      const long n = BIO_get_mem_data(bio.get(), &data);
      e.set("text", std::string(data, static_cast<std::size_t>(n > 0 ? n : 0)));
    } else {
      const ASN1_OCTET_STRING* v = X509_EXTENSION_get_data(ext);
      e.set("der", hexOf(ASN1_STRING_get0_data(v), static_cast<std::size_t>(ASN1_STRING_length(v))));
    }
    a.push(std::move(e));
  }
  return a;
}

}  // namespace

CertNames certificateNames(X509* cert) {
  CertNames out;
  X509_NAME* subj = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
  if (idx >= 0) {
    ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n > 0) out.common_name.assign(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
    OPENSSL_free(utf8);
  }
  GeneralNamesPtr sans(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
      if (gn->type == GEN_DNS) {
        const ASN1_IA5STRING* s = gn->d.dNSName;
        out.dns.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                             static_cast<std::size_t>(ASN1_STRING_length(s)));
      } else if (gn->type == GEN_IPADD) {
        out.ips.push_back(ipText(gn->d.iPAddress));
      }
    }
  }
  return out;
}

Json summarizeCertificate(X509* cert) {
  Json j = Json::object();
  if (!cert) return j;
  j.set("subject", nameText(X509_get_subject_name(cert)));
  j.set("issuer", nameText(X509_get_issuer_name(cert)));
  if (BnPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)); bn) {
    char* hex = BN_bn2hex(bn.get());
    std::string s = hex ? hex : "";
    OPENSSL_free(hex);
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    j.set("serial", s);
  }
  j.set("not_before", timeText(X509_get0_notBefore(cert)));
  j.set("not_after", timeText(X509_get0_notAfter(cert)));
  CertNames names = certificateNames(cert);
  Json san = Json::array();
  for (const auto& d : names.dns) san.push("DNS:" + d);
  for (const auto& ip : names.ips) san.push("IP:" + ip);
  j.set("san", std::move(san));
  Json key = Json::object();
  if (EVP_PKEY* pk = X509_get0_pubkey(cert)) {
    const int id = EVP_PKEY_get_base_id(pk);
    if (id == EVP_PKEY_EC) {
      key.set("type", "EC");
      char curve[64] = {};
      size_t len = 0;
      if (EVP_PKEY_get_utf8_string_param(pk, "group", curve, sizeof curve, &len)) key.set("curve", std::string(curve));
      key.set("bits", EVP_PKEY_get_bits(pk));
      unsigned char point[256];
      size_t point_len = 0;
      if (EVP_PKEY_get_octet_string_param(pk, "encoded-pub-key", point, sizeof point, &point_len))
        key.set("public", hexOf(point, point_len));
    } else {
      const char* tn = OBJ_nid2sn(id);
      key.set("type", id == EVP_PKEY_RSA ? "RSA" : (tn ? tn : "unknown"));
      key.set("bits", EVP_PKEY_get_bits(pk));
    }
  }
  j.set("key", std::move(key));
  j.set("signature_algorithm", std::string(OBJ_nid2ln(X509_get_signature_nid(cert))));
  j.set("version", X509_get_version(cert) + 1);
  j.set("x509_extensions", x509Extensions(cert));
  const ASN1_BIT_STRING* sig = nullptr;
  X509_get0_signature(&sig, nullptr, cert);
  if (sig) j.set("signature", hexOf(ASN1_STRING_get0_data(sig), static_cast<std::size_t>(ASN1_STRING_length(sig))));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (X509_digest(cert, EVP_sha256(), md, &mdlen)) j.set("sha256", wire::toHex({md, mdlen}));
  return j;
}

Json summarizeCertificateDer(std::span<const std::uint8_t> der) {
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) {
    Json j = Json::object();
    j.set("error", "certificate does not parse: " + errorQueueText());
    return j;
  }
  return summarizeCertificate(cert.get());
}

}  // namespace tlstrace::tls

namespace tlstrace::tls {

Json CertSummaryCache::get(std::span<const std::uint8_t> der) {
  std::string key(der.begin(), der.end());
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = map_.find(key); it != map_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  Json j = summarizeCertificateDer(der);  // outside the lock: the expensive part
  std::lock_guard<std::mutex> lock(mu_);
  if (map_.find(key) == map_.end()) {
    lru_.emplace_front(key, j);
    map_[std::move(key)] = lru_.begin();
    if (map_.size() > capacity_) {
      map_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }
  return j;
}

Json CertSummaryCache::get(X509* cert) {
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert, &der);
  if (n <= 0) return summarizeCertificate(cert);
  Json j = get(std::span<const std::uint8_t>(der, static_cast<std::size_t>(n)));
  OPENSSL_free(der);
  return j;
}

std::size_t CertSummaryCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_.size();
}

trace::DerDecoders derDecoders(CertSummaryCache* cache) {
  trace::DerDecoders d;
  if (cache) d.certificate = [cache](wire::Bytes der) { return cache->get(der); };
  else d.certificate = [](wire::Bytes der) { return summarizeCertificateDer(der); };
  d.distinguished_name = [](wire::Bytes der) {
    const unsigned char* p = der.data();
    X509_NAME* n = d2i_X509_NAME(nullptr, &p, static_cast<long>(der.size()));
    if (!n) {
      (void)errorQueueText();
      return std::string("(undecodable name)");
    }
    std::string s = nameText(n);
    X509_NAME_free(n);
    return s;
  };
  return d;
}

}  // namespace tlstrace::tls
