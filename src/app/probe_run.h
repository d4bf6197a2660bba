// `tlstrace probe HOST:PORT`: one TLS handshake to a server through the proxy's own upstream leg
// (ProxySession without a client, session/probe.h), its trace, and a report; with --scan, one
// handshake per candidate (versions, cipher suites, groups, signature algorithms). docs/probe.md.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "analysis/policy.h"
#include "session/probe.h"
#include "tls/session_info.h"
#include "trace/json.h"

namespace tlstrace::app {

struct ProbeOptions {
  std::string target;  // HOST:PORT
  std::string sni;     // "" = the host when it is a name, none for an address
  bool no_sni = false;
  std::vector<std::string> alpn;
  std::vector<std::string> scan;  // versions, ciphers, groups, sigalgs (or all)
  std::string policy_file;
  bool json = false;
  std::string events_file;
  std::string tls_min, tls_max, ciphers, ciphersuites, groups;
  std::string upstream_ca;
  double timeout_s = 10;
  unsigned concurrency = 8;
  std::string format = "default";
  std::string upstream_proxy;  // --upstream-proxy (config/upstream_proxy.h)
};

CLI::App* addProbeCommand(CLI::App& app, ProbeOptions& opt);
// 0: handshake done and every rule held; 1: the handshake failed or a rule failed; 2: bad input.
int runProbeCommand(const ProbeOptions& opt);

// One scan handshake's result, as its events told it.
struct ScanOutcome {
  bool ok = false;
  std::string version, cipher, group;
  bool hrr = false;          // a HelloRetryRequest came
  trace::Json key_exchange;  // the tls.key_exchange event's fields, or null
  std::string cause;         // tls.error's cause when it failed
};

// What the scan needs from the runner: a handshake with these options, its outcome to `done`.
struct ScanOffer {
  std::string min, max, ciphers, ciphersuites, groups, sigalgs;
};
class ScanRunner {
 public:
  virtual ~ScanRunner() = default;
  virtual void handshake(const ScanOffer& offer, std::function<void(const ScanOutcome&)> done) = 0;
};
// What the scan found, filled as the handshakes complete.
struct ScanResults {
  std::vector<std::string> versions;                                      // accepted, low to high
  std::vector<std::pair<std::string, std::vector<std::string>>> ciphers;  // per version, server's order
  std::string groups_version, sigalgs_version;                            // the version they were tried at
  std::vector<std::string> groups, sigalgs;
  std::string hrr_key_share, hrr_result;  // "" when not tried
  trace::Json dhe;                        // the key exchange of a DHE-only handshake (TLS <= 1.2), or null
};
// Starts the scans asked for; the runner carries them out, concurrently, calling back as each
// handshake completes. The versions are found first: the other scans use them.
void startScan(ScanRunner& runner, const std::vector<std::string>& what, const ScanOffer& base,
               std::shared_ptr<ScanResults> res);
// The report's "scan" object (docs/probe.md).
[[nodiscard]] trace::Json scanReport(const ScanResults& r, const std::vector<std::string>& what);

// The report (docs/probe.md) from the events of the handshake and of the resumption attempt
// (null: not attempted), and its text form (probe_report.cpp).
[[nodiscard]] trace::Json probeReport(const std::string& target, const session::ProbeSpec& spec,
                                      const std::vector<trace::Json>& first, const std::vector<trace::Json>* second,
                                      const tls::SavedSession& saved);
[[nodiscard]] trace::Json policyReport(const analysis::PolicyEngine& engine, const std::string& file);
[[nodiscard]] std::string renderProbeReport(const trace::Json& report);

}  // namespace tlstrace::app
