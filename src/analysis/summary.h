// conn.summary: both legs side by side (offered vs selected), what the client offered that the
// proxy did not pass upstream, and any downgrade that follows from it.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "trace/decoder.h"
#include "trace/json.h"

namespace tlstrace::analysis {

struct LegReport {
  const trace::HelloOffer* offer = nullptr;
  const trace::ServerChoice* choice = nullptr;
  const trace::KexMaterial* kex = nullptr;
  trace::Json established;   // tls.established fields, or null
  trace::Json trust;         // tls.trust fields, or null
  trace::Json key_exchange;  // tls.key_exchange fields, or null
  std::vector<std::string> alerts;  // "sent fatal handshake_failure"
  std::optional<double> connect_ms;
  std::optional<double> handshake_ms;
  std::string error_cause;
};

[[nodiscard]] trace::Json buildSummary(const LegReport& client, const LegReport& upstream);

}  // namespace tlstrace::analysis
