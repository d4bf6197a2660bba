// The policy's verdicts as the files CI systems read: JUnit XML and SARIF 2.1.0.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "analysis/policy.h"
#include "trace/escape.h"

namespace tlstrace::analysis {

namespace {

// Text for an XML attribute or element (XML 1.0 section 2.2 allows no other control characters;
// peer-supplied names may hold anything, so those bytes are written as visible \xNN).
std::string xml(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const std::size_t n = trace::utf8SequenceLength(reinterpret_cast<const unsigned char*>(s.data()) + i, s.size() - i);
    if (n == 0 || (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
      continue;
    }
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

std::string ruleText(const config::PolicyRule& r) {
  return r.description.empty() ? "tlstrace policy rule " + r.id + " (" + r.at + ")" : r.description;
}

}  // namespace

namespace {

struct Suite {
  std::string body;  // the <testcase> elements
  std::size_t tests = 0, failures = 0, skipped = 0;
};

Suite policySuite(const PolicyEngine& engine) {
  Suite st;
  const auto cases = engine.cases();
  const auto unused = engine.unusedRules();
  std::string& x = st.body;
  for (const auto* c : cases) {
    ++st.tests;
    const std::string host = c->host.empty() ? "(no host name)" : c->host;
    x += "    <testcase classname=\"tlstrace.policy." + xml(c->rule) + "\" name=\"" + xml(c->rule + " @ " + host) +
         "\" time=\"0\">\n";
    if (!c->failures.empty()) {
      ++st.failures;
      const auto& f0 = c->failures.front();
      std::string text;
      for (const auto& f : c->failures) {
        text += "conn " + std::to_string(f.conn) + " " + f.leg + ": " + f.message + "\nexpected: " + f.expected +
                "\nobserved: " + f.observed;
        if (!f.origin.file.empty()) text += "\nat: " + f.origin.file + ":" + std::to_string(f.origin.line);
        text += "\n";
      }
      x += "      <failure type=\"policy.violation\" message=\"" +
           xml(std::to_string(c->failures.size()) + " of " + std::to_string(c->checks) +
               " checks failed; first: " + f0.message) +
           "\">" + xml(text) + "</failure>\n";
    }
    x += "      <system-out>" + xml(std::to_string(c->checks) + " checks") + "</system-out>\n";
    x += "    </testcase>\n";
  }
  for (const auto* r : unused) {
    ++st.tests;
    ++st.skipped;
    x += "    <testcase classname=\"tlstrace.policy." + xml(r->id) + "\" name=\"" + xml(r->id) +
         "\" time=\"0\">\n      <skipped/>\n      <system-out>no connection this rule applies to</system-out>\n"
         "    </testcase>\n";
  }
  return st;
}

// One test case per scenario x client x target: accepting a broken certificate is the failure.
Suite auditSuite(const std::vector<AuditRow>& rows) {
  Suite st;
  for (const auto& r : rows) {
    ++st.tests;
    st.body += "    <testcase classname=\"tlstrace.audit." + xml(r.scenario) + "\" name=\"" +
               xml(r.scenario + " @ " + r.client + " -> " + r.target) + "\" time=\"0\">\n";
    if (r.verdict == "accepted") {
      ++st.failures;
      st.body += "      <failure type=\"audit.result\" message=\"" +
                 xml("the client accepted " + r.scenario + ": " + r.evidence) + "\">" +
                 xml("conn " + std::to_string(r.conn) + ": " + r.evidence) + "</failure>\n";
    }
    st.body += "      <system-out>" + xml(r.verdict + ": " + r.evidence) + "</system-out>\n    </testcase>\n";
  }
  return st;
}

}  // namespace

std::string renderJunit(const PolicyEngine* engine, const std::vector<AuditRow>& audit, double secs) {
  // Jenkins' schema (junit-10/jenkins-junit.xsd, which GitLab also reads) has no `skipped` on
  // <testsuites>; the suites and the test cases carry it.
  std::vector<std::pair<std::string, Suite>> suites;
  if (engine) suites.emplace_back(engine->policy().file, policySuite(*engine));
  if (!audit.empty() || !engine) suites.emplace_back("tlstrace client audit", auditSuite(audit));
  std::size_t tests = 0, failures = 0;
  for (const auto& [name, st] : suites) {
    tests += st.tests;
    failures += st.failures;
  }
  auto counts = [&](std::size_t t, std::size_t f) {
    return " tests=\"" + std::to_string(t) + "\" failures=\"" + std::to_string(f) + "\" errors=\"0\" time=\"" +
           seconds(secs) + "\"";
  };
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x += "<testsuites name=\"tlstrace\"" + counts(tests, failures) + ">\n";
  for (const auto& [name, st] : suites)
    x += "  <testsuite name=\"" + xml(name) + "\"" + counts(st.tests, st.failures) + " skipped=\"" +
         std::to_string(st.skipped) + "\">\n" + st.body + "  </testsuite>\n";
  x += "</testsuites>\n";
  return x;
}

namespace {

using trace::Json;

// A violation points at the rule in the policy file (what a code-scanning UI can open).
Json sarifRuleLocation(const config::PolicyRule& r) {
  std::string file = r.at;
  std::int64_t line = 1;
  if (const auto c2 = file.rfind(':'); c2 != std::string::npos) {
    const auto c1 = file.rfind(':', c2 - 1);
    if (c1 != std::string::npos) {
      line = std::atoll(file.c_str() + c1 + 1);
      file.resize(c1);
    }
  }
  return Json::Object{{"physicalLocation", Json::Object{{"artifactLocation", Json::Object{{"uri", file}}},
                                                        {"region", Json::Object{{"startLine", line}}}}}};
}

// The policy's violations; the events line each came from, when known, is a related location.
void sarifPolicyResults(const PolicyEngine& engine, const std::vector<config::PolicyRule>& rules, Json& results) {
  for (const auto* c : engine.cases()) {
    std::size_t idx = 0;
    while (idx < rules.size() && rules[idx].id != c->rule) ++idx;
    if (idx == rules.size()) continue;
    for (const auto& f : c->failures) {
      Json res = Json::object();
      res.set("ruleId", c->rule);
      res.set("ruleIndex", static_cast<std::int64_t>(idx));
      res.set("level", rules[idx].severity);
      res.set("message", Json::Object{{"text", "conn " + std::to_string(f.conn) + " " + f.leg + " " +
                                                   (c->host.empty() ? "(no host name)" : c->host) + ": " + f.message +
                                                   " (expected " + f.expected + ", observed " + f.observed + ")"}});
      res.set("locations", Json::Array{sarifRuleLocation(rules[idx])});
      if (!f.origin.file.empty())
        res.set("relatedLocations",
                Json::Array{Json::Object{
                    {"id", 0},
                    {"physicalLocation",
                     Json::Object{{"artifactLocation", Json::Object{{"uri", f.origin.file}}},
                                  {"region", Json::Object{{"startLine", static_cast<std::int64_t>(f.origin.line)}}}}},
                    {"message", Json::Object{{"text", "the event that failed the rule"}}}}});
      res.set("properties", Json::Object{{"conn", static_cast<std::int64_t>(f.conn)},
                                         {"leg", f.leg},
                                         {"host", c->host},
                                         {"expected", f.expected},
                                         {"observed", f.observed}});
      results.push(std::move(res));
    }
  }
}

// The audit's findings: a scenario a client accepted, as a rule of its own ("audit.<scenario>"),
// numbered after the policy's `first_index` rules.
void sarifAuditResults(const std::vector<AuditRow>& audit, std::size_t first_index, Json& descriptors, Json& results) {
  std::vector<std::string> scenarios;
  for (const auto& r : audit) {
    if (r.verdict != "accepted") continue;
    auto it = std::find(scenarios.begin(), scenarios.end(), r.scenario);
    if (it == scenarios.end()) {
      scenarios.push_back(r.scenario);
      descriptors.push(Json::Object{
          {"id", "audit." + r.scenario},
          {"name", "audit." + r.scenario},
          {"shortDescription",
           Json::Object{{"text", "a client accepted a certificate or offer it must refuse: " + r.scenario}}},
          {"defaultConfiguration", Json::Object{{"level", "error"}}}});
      it = scenarios.end() - 1;
    }
    results.push(Json::Object{
        {"ruleId", "audit." + r.scenario},
        {"ruleIndex", static_cast<std::int64_t>(first_index + static_cast<std::size_t>(it - scenarios.begin()))},
        {"level", "error"},
        {"message", Json::Object{{"text", "conn " + std::to_string(r.conn) + ": the client " + r.client + " accepted " +
                                              r.scenario + " for " + r.target + ": " + r.evidence}}},
        {"properties", Json::Object{{"conn", static_cast<std::int64_t>(r.conn)},
                                    {"client", r.client},
                                    {"target", r.target},
                                    {"evidence", r.evidence}}}});
  }
}

}  // namespace

std::string renderSarif(const PolicyEngine* engine, const std::vector<AuditRow>& audit,
                        const std::string& tool_version) {
  static const std::vector<config::PolicyRule> kNone;
  const auto& rules = engine ? engine->policy().rules : kNone;
  Json descriptors = Json::array();
  for (const auto& r : rules) {
    Json d = Json::object();
    d.set("id", r.id);
    d.set("name", r.id);
    d.set("shortDescription", Json::Object{{"text", ruleText(r)}});
    d.set("defaultConfiguration", Json::Object{{"level", r.severity}});
    descriptors.push(std::move(d));
  }
  Json results = Json::array();
  if (engine) sarifPolicyResults(*engine, rules, results);
  sarifAuditResults(audit, rules.size(), descriptors, results);
  Json driver = Json::object();
  driver.set("name", "tlstrace");
  driver.set("version", tool_version);
  driver.set("rules", std::move(descriptors));
  Json run = Json::object();
  run.set("tool", Json::Object{{"driver", std::move(driver)}});
  run.set("results", std::move(results));
  Json log = Json::object();
  log.set("$schema", "https://json.schemastore.org/sarif-2.1.0.json");
  log.set("version", "2.1.0");
  log.set("runs", Json::Array{std::move(run)});
  return log.dump() + "\n";
}

}  // namespace tlstrace::analysis
