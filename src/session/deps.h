// What every proxied connection shares: configuration, the tracer, forging, the two TLS contexts
// and the caches. Built by the composition root (app/), passed in, never global.
#pragma once
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "tls/context_ref.h"

namespace tlstrace::trace {
class Tracer;
class WireTap;
}  // namespace tlstrace::trace
namespace tlstrace::pki {
class Forger;
class AuditCerts;
class AuditPlan;
}  // namespace tlstrace::pki
namespace tlstrace::analysis {
class PrimeCache;
}
namespace tlstrace::tls {
class CertSummaryCache;
struct ClientIdentity;
}  // namespace tlstrace::tls

namespace tlstrace::session {

class Passthrough;
using SteadyClock = std::chrono::steady_clock;

struct Deps {
  const config::ProxyConfig* cfg = nullptr;
  trace::Tracer* tracer = nullptr;
  pki::Forger* forger = nullptr;
  tls::ContextRef client_ctx = nullptr;    // faces clients (server role)
  tls::ContextRef upstream_ctx = nullptr;  // faces servers (client role)
  // Every NSS key-log line of both legs (the key log file), or empty.
  std::function<void(std::string_view)> keylog;
  analysis::PrimeCache* primes = nullptr;
  tls::CertSummaryCache* certs = nullptr;  // summaries of certificates seen, by DER
  trace::WireTap* tap = nullptr;           // --pcap: gets the secrets here; the bytes from net/
  std::string expected_proxy_auth;         // "Basic <base64>" when --proxy-auth is set
  // --audit-clients: the broken certificates, and which one each client gets next (both or neither).
  pki::AuditCerts* audit_certs = nullptr;
  pki::AuditPlan* audit_plan = nullptr;
  // Mutual TLS upstream: the client certificates to present, per-host rules first, the default
  // (empty host) last; null or empty: none (tls/client_cert.h).
  const std::vector<tls::ClientIdentity>* client_identities = nullptr;
  // --passthrough / --auto-passthrough (session/passthrough.h), or null.
  Passthrough* passthrough = nullptr;
  // The session's clock (timeouts, durations): injected so that tests can move time.
  SteadyClock::time_point (*now)() = &SteadyClock::now;
};

}  // namespace tlstrace::session
