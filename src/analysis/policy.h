// A policy applied to the events of connections, as they come: the proxy feeds it the events it
// writes (live), `tlstrace check` the events it reads back from files (offline). One code path, so
// a recorded run gives the verdicts the live run gave.
//
// Each check runs at the event that settles it: versions, suites, ALPN and handshake time at the
// leg's tls.established; forward secrecy, group sizes, rating and resumption at tls.key_exchange;
// the certificate at tls.trust; fatal alerts at tls.alert; a failed handshake at tls.error; a
// proxy-induced downgrade at conn.summary. A failed check is one policy.violation event, at once.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/policy.h"
#include "trace/event.h"

namespace tlstrace::analysis {

// Where an event came from, for the reports (`check` knows the file and line; live runs do not).
struct EventOrigin {
  std::string file;
  std::size_t line = 0;
};

// The verdicts of one rule for one host (SNI, else target host): a JUnit test case.
struct PolicyCase {
  std::string rule, host;
  std::uint64_t checks = 0;  // checks made (passed or failed)
  struct Failure {
    std::uint64_t conn = 0;
    std::string leg, expected, observed, message;
    EventOrigin origin;
  };
  std::vector<Failure> failures;
};

class PolicyEngine {
 public:
  explicit PolicyEngine(config::Policy policy);

  // Feeds one event (in the order they were written); appends a policy.violation event to `out`
  // for each check that failed on it.
  void observe(const trace::Event& e, std::vector<trace::Event>& out, const EventOrigin& origin = {});

  [[nodiscard]] const config::Policy& policy() const { return policy_; }
  // Every (rule, host) that was checked at least once, in rule order then host order.
  [[nodiscard]] std::vector<const PolicyCase*> cases() const;
  [[nodiscard]] std::uint64_t violations() const { return violations_; }
  [[nodiscard]] std::uint64_t connections() const { return connections_; }
  // Rules that never applied to any connection (no matching host or leg, or no event they need).
  [[nodiscard]] std::vector<const config::PolicyRule*> unusedRules() const;

 private:
  struct LegState {
    std::string sni;
    bool established = false;
    bool failed = false;
  };
  struct ConnState {
    std::string target_host;  // CONNECT or reverse target, without the port
    LegState legs[2];
  };
  struct Check {  // one check's outcome, before it becomes a case entry and maybe a violation
    const config::PolicyRule* rule;
    bool ok;
    std::string expected, observed, message;
  };

  [[nodiscard]] std::string hostOf(const ConnState& c, trace::Leg leg) const;
  [[nodiscard]] bool applies(const config::PolicyRule& r, trace::Leg leg, const std::string& host) const;
  void record(const trace::Event& e, trace::Leg leg, const std::string& host, std::vector<Check>& checks,
              std::vector<trace::Event>& out, const EventOrigin& origin);

  void onEstablished(const trace::ev::TlsEstablished& t, trace::Leg leg, const std::string& host,
                     std::vector<Check>& out) const;
  void onKeyExchange(const trace::Json& k, trace::Leg leg, const std::string& host, std::vector<Check>& out) const;
  void onTrust(const trace::Json& t, trace::Clock::time_point now, const std::string& host,
               std::vector<Check>& out) const;
  void onPrimeCheck(const trace::Json& report, trace::Leg leg, const std::string& host, std::vector<Check>& out) const;
  void onFatalAlert(const trace::ev::TlsAlert& a, trace::Leg leg, const std::string& host,
                    std::vector<Check>& out) const;
  void onFailedHandshake(const trace::ev::TlsError& er, trace::Leg leg, const std::string& host,
                         std::vector<Check>& out) const;
  void onSummary(const trace::Json& summary, const std::string& host, std::vector<Check>& out) const;
  void onClose(const trace::Event& e, const ConnState& c, std::vector<trace::Event>& out, const EventOrigin& origin);

  config::Policy policy_;
  std::unordered_map<std::uint64_t, ConnState> conns_;
  std::map<std::pair<std::size_t, std::string>, PolicyCase> cases_;  // (rule index, host)
  std::vector<bool> used_;
  std::uint64_t violations_ = 0;
  std::uint64_t connections_ = 0;
};

// One audit.result event (--audit-clients).
struct AuditRow {
  std::uint64_t conn = 0;
  std::string scenario, client, target, verdict, evidence;
};

// JUnit XML (the schema Jenkins and GitLab read): a <testsuite> for the policy (when there is one:
// one <testcase> per rule x host, a <failure> per violation with the observed values and
// connection ids, a skipped test case for a rule that never applied) and one for the client audit
// (one <testcase> per scenario x client x target, failed when the client accepted it).
[[nodiscard]] std::string renderJunit(const PolicyEngine* engine, const std::vector<AuditRow>& audit, double seconds);
// SARIF 2.1.0: the rules as reportingDescriptors, one result per violation and per accepted audit
// scenario.
[[nodiscard]] std::string renderSarif(const PolicyEngine* engine, const std::vector<AuditRow>& audit,
                                      const std::string& tool_version);

}  // namespace tlstrace::analysis
