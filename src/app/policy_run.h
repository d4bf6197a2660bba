// CI policies at the top: the sink that applies a policy to the live trace, the reports it
// writes at shutdown, and `tlstrace check` (the same engine over recorded events files).
#pragma once
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "analysis/policy.h"
#include "trace/event.h"

namespace tlstrace::app {

// Registered last on the tracer: it sees every event the others saw, and writes each
// policy.violation it finds into those others right after the event that caused it.
class PolicySink : public trace::Sink {
 public:
  // `say`: also log each violation on stderr (when no console sink shows it: -q).
  PolicySink(config::Policy policy, std::vector<std::shared_ptr<trace::Sink>> downstream, bool say);
  void write(const trace::Event& e) override;
  // After Tracer::flush(), from the main thread.
  [[nodiscard]] const analysis::PolicyEngine& engine() const { return engine_; }

 private:
  analysis::PolicyEngine engine_;
  std::vector<std::shared_ptr<trace::Sink>> downstream_;
  std::vector<trace::Event> found_;
  bool say_;
};

// The JUnit / SARIF files ("" = not asked for) and the summary lines on stderr. False when a
// report could not be written (said on stderr).
bool writePolicyReports(const analysis::PolicyEngine& engine, const std::string& junit, const std::string& sarif,
                        double seconds, const std::string& version);

// `tlstrace check --policy FILE [--junit F] [--sarif F] EVENTS...`: 0 every rule held, 1 a rule
// failed, 2 an unreadable policy or events file or a malformed line (named by file:line).
int runCheckCommand(const std::string& policy_file, const std::vector<std::string>& events_files,
                    const std::string& junit, const std::string& sarif, const std::string& version);

}  // namespace tlstrace::app
