// --audit-clients: instead of a good forged leaf, each new connection from a client gets the next
// broken certificate (or protocol offer) of a list, and the session records whether the client
// refused it (an alert, or a close before any application data) or accepted it (it sent data:
// a finding). Nobody's app should trust a broken certificate; this checks that it does not.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pki/forge.h"

namespace tlstrace::pki {

enum class AuditScenario : std::uint8_t {
  SelfSigned,         // the leaf signs itself
  UnknownCa,          // signed by a CA the client has never seen
  WrongHost,          // valid, for another name
  Expired,            // notAfter yesterday
  NotYetValid,        // notBefore tomorrow
  Rsa1024,            // a 1024-bit RSA key
  Sha1Signature,      // signed with SHA-1
  NoServerAuth,       // extendedKeyUsage clientAuth only
  IntermediateNotCa,  // issued by an intermediate without basicConstraints CA:TRUE
  Tls10Only,          // only TLS 1.0 offered
  WeakCiphers,        // only TLS <= 1.2 RSA key transport with CBC and SHA-1 (no forward secrecy)
};
[[nodiscard]] std::string_view auditScenarioName(AuditScenario s);
// "all" or a comma list of names (self-signed, unknown-ca, ...); nullopt with `error` naming the
// unknown one.
[[nodiscard]] std::optional<std::vector<AuditScenario>> parseAuditScenarios(std::string_view list, std::string& error);
[[nodiscard]] const std::vector<std::string>& auditScenarioNames();

// The keys and certificates the scenarios need, made once at start; install() makes the leaf for
// one connection. Thread-safe (each call signs its own certificate).
class AuditCerts {
 public:
  explicit AuditCerts(const CertAuthority& ca);
  // Puts the scenario on `ssl` (server role, before the handshake): its certificate, chain, key,
  // and where needed the versions, suites and security level that let OpenSSL present it.
  [[nodiscard]] bool install(SSL* ssl, AuditScenario s, const std::string& target, std::string& error) const;

 private:
  const CertAuthority& ca_;
  tls::EvpPkeyPtr ec_key_, rsa_key_, rsa1024_key_;
  CertAuthority unknown_ca_;
  tls::X509Ptr intermediate_;  // signed by the real CA, without CA:TRUE
};

// Which scenario a client gets next: each key (client address and target) walks the list once,
// then gets the normal forged leaf.
class AuditPlan {
 public:
  explicit AuditPlan(std::vector<AuditScenario> scenarios) : scenarios_(std::move(scenarios)) {}
  [[nodiscard]] std::optional<AuditScenario> next(const std::string& key);

 private:
  std::vector<AuditScenario> scenarios_;
  std::map<std::string, std::size_t> done_;
  std::mutex mu_;
};

}  // namespace tlstrace::pki
