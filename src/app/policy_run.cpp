#include "app/policy_run.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <iostream>

#include "sinks/console.h"
#include "sinks/convert.h"
#include "trace/escape.h"
#include "trace/text.h"

namespace tlstrace::app {

PolicySink::PolicySink(std::optional<config::Policy> policy, std::vector<std::shared_ptr<trace::Sink>> downstream,
                       bool say)
    : downstream_(std::move(downstream)), say_(say) {
  if (policy) engine_.emplace(std::move(*policy));
}

bool PolicySink::failed() const {
  if (engine_ && engine_->violations() > 0) return true;
  for (const auto& r : audit_)
    if (r.verdict == "accepted") return true;
  return false;
}

void PolicySink::write(const trace::Event& e) {
  if (const auto* a = e.as<trace::ev::AuditResult>()) {
    audit_.push_back({e.conn, a->scenario, a->client, a->target, a->verdict, a->evidence});
    if (say_ && a->verdict == "accepted") spdlog::warn("{}", sinks::auditLine(e));
    return;
  }
  if (!engine_) return;
  engine_->observe(e, found_);
  for (const auto& v : found_) {
    for (const auto& s : downstream_) s->write(v);
    if (say_) spdlog::warn("{}", sinks::violationLine(v));
  }
  found_.clear();
}

namespace {

bool writeFile(const std::string& path, const std::string& text, const char* what) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    spdlog::error("cannot write the {} report {}", what, path);
    return false;
  }
  return true;
}

}  // namespace

bool writePolicyReports(const analysis::PolicyEngine* engine, const std::vector<analysis::AuditRow>& audit,
                        const std::string& junit, const std::string& sarif, double seconds,
                        const std::string& version) {
  if (engine) {
    const auto cases = engine->cases();
    std::size_t failed = 0;
    for (const auto* c : cases) failed += c->failures.empty() ? 0 : 1;
    const std::string head = "policy " + engine->policy().file + ": " + std::to_string(engine->policy().rules.size()) +
                             " rules, " + std::to_string(cases.size()) + " rule x host checks, " +
                             std::to_string(failed) + " failed, " + std::to_string(engine->violations()) +
                             " violations in " + std::to_string(engine->connections()) + " connections";
    if (failed > 0) spdlog::warn("{}", head);
    else spdlog::info("{}", head);
    for (const auto* c : cases)
      if (!c->failures.empty())
        spdlog::warn("  FAILED {} @ {}: {} of {} checks (first: conn {} {}: {})", c->rule,
                     c->host.empty() ? "(no host name)" : trace::escapeText(c->host), c->failures.size(), c->checks,
                     c->failures.front().conn, c->failures.front().leg, trace::escapeText(c->failures.front().message));
    for (const auto* r : engine->unusedRules()) spdlog::info("  not applied: {} (no connection it applies to)", r->id);
  }
  if (!audit.empty()) {
    std::size_t accepted = 0;
    for (const auto& r : audit) accepted += r.verdict == "accepted" ? 1 : 0;
    if (accepted > 0)
      spdlog::warn("client audit: {} scenarios presented, {} ACCEPTED by the client", audit.size(), accepted);
    else spdlog::info("client audit: {} scenarios presented, all refused", audit.size());
    for (const auto& r : audit)
      if (r.verdict == "accepted")
        spdlog::warn("  ACCEPTED {} by {} for {}: {}", r.scenario, r.client, trace::escapeText(r.target),
                     trace::escapeText(r.evidence));
  }
  bool ok = true;
  if (!junit.empty()) ok = writeFile(junit, analysis::renderJunit(engine, audit, seconds), "JUnit") && ok;
  if (!sarif.empty()) ok = writeFile(sarif, analysis::renderSarif(engine, audit, version), "SARIF") && ok;
  return ok;
}

int runCheckCommand(const std::string& policy_file, const std::vector<std::string>& events_files,
                    const std::string& junit, const std::string& sarif, const std::string& version) {
  std::string error;
  auto policy = config::readPolicyFile(policy_file, error);
  if (!policy) {
    spdlog::error("{}", error);
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();
  analysis::PolicyEngine engine(std::move(*policy));
  std::vector<trace::Event> found;
  for (const auto& file : events_files) {
    std::FILE* in = file == "-" ? stdin : std::fopen(file.c_str(), "rb");
    if (!in) {
      spdlog::error("{}: cannot read", file);
      return 2;
    }
    // The events reader of `convert`: the same checks (UTF-8, JSON, every field), and the first bad
    // line stops the check (a verdict over part of a run would mislead).
    std::size_t n = 0;
    bool bad = false;
    sinks::forEachLine(in, [&](std::string_view line, bool) {
      ++n;
      if (bad || line.empty()) return;
      trace::Event e;
      if (std::string why; !sinks::parseEventLine(line, e, why)) {
        spdlog::error("{}:{}: {}", file, n, why);
        bad = true;
        return;
      }
      engine.observe(e, found, {file, n});
      for (const auto& v : found) std::cout << trace::renderText(v, trace::TextFormat::Default);
      found.clear();
    });
    if (in != stdin) std::fclose(in);
    if (bad) return 2;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!writePolicyReports(&engine, {}, junit, sarif, secs, version)) return 2;
  return engine.violations() > 0 ? 1 : 0;
}

}  // namespace tlstrace::app
