#include "app/policy_run.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <iostream>

#include "sinks/console.h"
#include "trace/text.h"

namespace tlstrace::app {

PolicySink::PolicySink(config::Policy policy, std::vector<std::shared_ptr<trace::Sink>> downstream, bool say)
    : engine_(std::move(policy)), downstream_(std::move(downstream)), say_(say) {}

void PolicySink::write(const trace::Event& e) {
  engine_.observe(e, found_);
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

bool writePolicyReports(const analysis::PolicyEngine& engine, const std::string& junit, const std::string& sarif,
                        double seconds, const std::string& version) {
  const auto cases = engine.cases();
  std::size_t failed = 0;
  for (const auto* c : cases) failed += c->failures.empty() ? 0 : 1;
  const auto unused = engine.unusedRules();
  const std::string head = "policy " + engine.policy().file + ": " + std::to_string(engine.policy().rules.size()) +
                           " rules, " + std::to_string(cases.size()) + " rule x host checks, " +
                           std::to_string(failed) + " failed, " + std::to_string(engine.violations()) +
                           " violations in " + std::to_string(engine.connections()) + " connections";
  if (failed > 0) spdlog::warn("{}", head);
  else spdlog::info("{}", head);
  for (const auto* c : cases)
    if (!c->failures.empty())
      spdlog::warn("  FAILED {} @ {}: {} of {} checks (first: conn {} {}: {})", c->rule,
                   c->host.empty() ? "(no host name)" : c->host, c->failures.size(), c->checks,
                   c->failures.front().conn, c->failures.front().leg, c->failures.front().message);
  for (const auto* r : unused) spdlog::info("  not applied: {} (no connection it applies to)", r->id);
  bool ok = true;
  if (!junit.empty()) ok = writeFile(junit, analysis::renderJunit(engine, seconds), "JUnit") && ok;
  if (!sarif.empty()) ok = writeFile(sarif, analysis::renderSarif(engine, version), "SARIF") && ok;
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
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      spdlog::error("{}: cannot read", file);
      return 2;
    }
    std::string line;
    for (std::size_t n = 1; std::getline(in, line); ++n) {
      if (line.empty()) continue;
      std::string err;
      auto j = trace::Json::parse(line, &err);
      trace::Event e;
      if (!j || !trace::fromJson(*j, e)) {
        spdlog::error("{}:{}: not an event ({})", file, n,
                      err.empty() ? "missing ts/conn/event, or a field of the wrong type" : err);
        return 2;
      }
      engine.observe(e, found, {file, n});
      for (const auto& v : found) std::cout << trace::renderText(v, trace::TextFormat::Default);
      found.clear();
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!writePolicyReports(engine, junit, sarif, secs, version)) return 2;
  return engine.violations() > 0 ? 1 : 0;
}

}  // namespace tlstrace::app
