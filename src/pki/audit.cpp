#include "pki/audit.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>

#include "pki/x509_util.h"

namespace tlstrace::pki {

namespace {

struct Named {
  AuditScenario s;
  const char* name;
};
constexpr Named kScenarios[] = {
    {AuditScenario::SelfSigned, "self-signed"},
    {AuditScenario::UnknownCa, "unknown-ca"},
    {AuditScenario::WrongHost, "wrong-host"},
    {AuditScenario::Expired, "expired"},
    {AuditScenario::NotYetValid, "not-yet-valid"},
    {AuditScenario::Rsa1024, "rsa-1024"},
    {AuditScenario::Sha1Signature, "sha1-signature"},
    {AuditScenario::NoServerAuth, "no-server-auth"},
    {AuditScenario::IntermediateNotCa, "intermediate-not-ca"},
    {AuditScenario::Tls10Only, "tls1.0-only"},
    {AuditScenario::WeakCiphers, "weak-ciphers"},
};

constexpr long kDay = 24L * 3600;

}  // namespace

std::string_view auditScenarioName(AuditScenario s) {
  for (const auto& n : kScenarios)
    if (n.s == s) return n.name;
  return "?";
}

const std::vector<std::string>& auditScenarioNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& n : kScenarios) v.emplace_back(n.name);
    return v;
  }();
  return names;
}

std::optional<std::vector<AuditScenario>> parseAuditScenarios(std::string_view list, std::string& error) {
  std::vector<AuditScenario> out;
  if (list.empty() || list == "all") {
    for (const auto& n : kScenarios) out.push_back(n.s);
    return out;
  }
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    bool found = false;
    for (const auto& n : kScenarios)
      if (item == n.name) {
        out.push_back(n.s);
        found = true;
      }
    if (!found) {
      std::string all;
      for (const auto& n : kScenarios) all += std::string(all.empty() ? "" : ", ") + n.name;
      error = "unknown audit scenario '" + std::string(item) + "' (one of: all, " + all + ")";
      return std::nullopt;
    }
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  return out;
}

AuditCerts::AuditCerts(const CertAuthority& ca)
    : ca_(ca),
      ec_key_(generateP256Key()),
      rsa_key_(generateRsaKey(2048)),
      rsa1024_key_(generateRsaKey(1024)),
      unknown_ca_(createCa("tlstrace audit: a CA nobody trusts")) {
  LeafNames n;
  n.common_name = "tlstrace audit intermediate (not a CA)";
  CertSpec spec;
  spec.names = &n;
  spec.key = ec_key_.get();
  spec.issuer = ca.cert.get();
  spec.issuer_key = ca.key.get();
  spec.ext_key_usage = "";
  spec.ca = true;  // it may sign (keyCertSign) but basicConstraints says it is no CA
  std::string error;
  intermediate_ = makeCertificate(spec, error);
  if (!intermediate_) throw std::runtime_error(error);
}

bool AuditCerts::install(SSL* ssl, AuditScenario s, const std::string& target, std::string& error) const {
  LeafNames names = leafNamesFor(target, nullptr);
  CertSpec spec;
  spec.names = &names;
  spec.key = ec_key_.get();
  spec.issuer = ca_.cert.get();
  spec.issuer_key = ca_.key.get();
  X509* chain_extra = nullptr;
  bool weak_ok = false;  // OpenSSL itself refuses to present the weak ones above security level 0
  switch (s) {
    case AuditScenario::SelfSigned:
      spec.issuer = nullptr;
      spec.issuer_key = ec_key_.get();
      break;
    case AuditScenario::UnknownCa:
      spec.issuer = unknown_ca_.cert.get();
      spec.issuer_key = unknown_ca_.key.get();
      break;
    case AuditScenario::WrongHost:
      names = LeafNames{"wrong-host.tlstrace.invalid", {"wrong-host.tlstrace.invalid"}, {}};
      break;
    case AuditScenario::Expired:
      spec.not_before_s = -30 * kDay;
      spec.not_after_s = -kDay;
      break;
    case AuditScenario::NotYetValid:
      spec.not_before_s = kDay;
      spec.not_after_s = 30 * kDay;
      break;
    case AuditScenario::Rsa1024:
      spec.key = rsa1024_key_.get();
      weak_ok = true;
      break;
    case AuditScenario::Sha1Signature:
      spec.digest = EVP_sha1();
      weak_ok = true;
      break;
    case AuditScenario::NoServerAuth: spec.ext_key_usage = "clientAuth"; break;
    case AuditScenario::IntermediateNotCa:
      spec.issuer = intermediate_.get();
      spec.issuer_key = ec_key_.get();
      chain_extra = intermediate_.get();
      break;
    case AuditScenario::Tls10Only:
      weak_ok = true;
      if (!SSL_set_min_proto_version(ssl, TLS1_VERSION) || !SSL_set_max_proto_version(ssl, TLS1_VERSION)) {
        error = "cannot limit the client leg to TLS 1.0: " + tls::errorQueueText();
        return false;
      }
      break;
    case AuditScenario::WeakCiphers:
      spec.key = rsa_key_.get();  // RSA key transport needs an RSA certificate
      weak_ok = true;
      if (!SSL_set_max_proto_version(ssl, TLS1_2_VERSION) ||
          !SSL_set_cipher_list(ssl, "AES128-SHA:AES256-SHA:@SECLEVEL=0")) {
        error = "cannot offer only weak cipher suites: " + tls::errorQueueText();
        return false;
      }
      break;
  }
  if (weak_ok) SSL_set_security_level(ssl, 0);
  // A session of another connection is never resumed here (a resumption shows no certificate):
  // each scenario has a session context of its own (RFC 5246 7.4.1.2 / RFC 8446 4.6.1 tickets
  // are bound to it by OpenSSL).
  const std::string sid = "tlstrace-audit-" + std::string(auditScenarioName(s));
  SSL_set_session_id_context(ssl, reinterpret_cast<const unsigned char*>(sid.data()),
                             static_cast<unsigned>(std::min<std::size_t>(sid.size(), SSL_MAX_SID_CTX_LENGTH)));
  tls::X509Ptr leaf = makeCertificate(spec, error);
  if (!leaf) return false;
  EVP_PKEY* key = spec.key;
  if (SSL_use_certificate(ssl, leaf.get()) != 1 || SSL_use_PrivateKey(ssl, key) != 1 ||
      (chain_extra && SSL_add1_chain_cert(ssl, chain_extra) != 1)) {
    error = "cannot install the audit certificate: " + tls::errorQueueText();
    return false;
  }
  return true;
}

std::optional<AuditScenario> AuditPlan::next(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  std::size_t& i = done_[key];
  if (i >= scenarios_.size()) return std::nullopt;
  return scenarios_[i++];
}

}  // namespace tlstrace::pki
