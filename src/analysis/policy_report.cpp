// The policy's verdicts as the files CI systems read: JUnit XML and SARIF 2.1.0.
#include <chrono>
#include <cstdio>

#include "analysis/policy.h"

namespace tlstrace::analysis {

namespace {

// The length of the valid UTF-8 sequence at s[i] (RFC 3629 section 4), 0 when it is not one.
std::size_t utf8Length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size() || (n == 2 && c < 0xc2)) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xc0) != 0x80) return 0;
  if (n == 3 && ((c == 0xe0 && b(i + 1) < 0xa0) || (c == 0xed && b(i + 1) >= 0xa0))) return 0;  // overlong, surrogate
  if (n == 4 && ((c == 0xf0 && b(i + 1) < 0x90) || c > 0xf4 || (c == 0xf4 && b(i + 1) >= 0x90))) return 0;
  return n;
}

// Text for an XML attribute or element (XML 1.0 section 2.2 allows no other control characters;
// peer-supplied names may hold anything, so those bytes are written as visible \xNN).
std::string xml(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const std::size_t n = utf8Length(s, i);
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

std::string renderJunit(const PolicyEngine& engine, double secs) {
  const auto cases = engine.cases();
  const auto unused = engine.unusedRules();
  std::size_t failed = 0;
  for (const auto* c : cases)
    if (!c->failures.empty()) ++failed;
  // Jenkins' schema (junit-10/jenkins-junit.xsd, which GitLab also reads) has no `skipped` on
  // <testsuites>; the suite and the test cases carry it.
  const std::string counts = " tests=\"" + std::to_string(cases.size() + unused.size()) + "\" failures=\"" +
                             std::to_string(failed) + "\" errors=\"0\" time=\"" + seconds(secs) + "\"";
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x += "<testsuites name=\"tlstrace policy\"" + counts + ">\n";
  x += "  <testsuite name=\"" + xml(engine.policy().file) + "\"" + counts + " skipped=\"" +
       std::to_string(unused.size()) + "\">\n";
  for (const auto* c : cases) {
    const std::string host = c->host.empty() ? "(no host name)" : c->host;
    x += "    <testcase classname=\"tlstrace.policy." + xml(c->rule) + "\" name=\"" + xml(c->rule + " @ " + host) +
         "\" time=\"0\">\n";
    if (!c->failures.empty()) {
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
  for (const auto* r : unused)
    x += "    <testcase classname=\"tlstrace.policy." + xml(r->id) + "\" name=\"" + xml(r->id) +
         "\" time=\"0\">\n      <skipped/>\n      <system-out>no connection this rule applies to</system-out>\n"
         "    </testcase>\n";
  x += "  </testsuite>\n</testsuites>\n";
  return x;
}

std::string renderSarif(const PolicyEngine& engine, const std::string& tool_version) {
  using trace::Json;
  const auto& rules = engine.policy().rules;
  Json descriptors = Json::array();
  for (const auto& r : rules) {
    Json d = Json::object();
    d.set("id", r.id);
    d.set("name", r.id);
    d.set("shortDescription", Json::Object{{"text", ruleText(r)}});
    d.set("defaultConfiguration", Json::Object{{"level", r.severity}});
    descriptors.push(std::move(d));
  }
  // A violation points at the rule in the policy file (what a code-scanning UI can open); the
  // events line it came from, when known, is a related location.
  auto ruleLocation = [](const config::PolicyRule& r) {
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
  };
  Json results = Json::array();
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
      res.set("locations", Json::Array{ruleLocation(rules[idx])});
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
