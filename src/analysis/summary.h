// conn.summary: both legs side by side (offered vs selected), what the client offered that the
// proxy did not pass upstream, and any downgrade that follows from it.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "analysis/fingerprint.h"
#include "trace/decoder.h"
#include "trace/json.h"

namespace tlstrace::analysis {

struct LegReport {
  const trace::HelloOffer* offer = nullptr;
  const trace::ServerChoice* choice = nullptr;
  const trace::KexMaterial* kex = nullptr;
  trace::Json established;          // tls.established fields, or null
  trace::Json trust;                // tls.trust fields, or null
  trace::Json key_exchange;         // tls.key_exchange fields, or null
  std::vector<std::string> alerts;  // "sent fatal handshake_failure"
  std::optional<double> connect_ms;
  std::optional<double> handshake_ms;
  std::string error_cause;
  bool was_established = false;             // the handshake completed (for a leg whose `established` was let go)
  const LegFingerprints* prints = nullptr;  // hashes already computed for this leg's events, if any
};

[[nodiscard]] trace::Json buildSummary(const LegReport& client, const LegReport& upstream);

// buildSummary in two steps: the handshake part, fixed once both legs are established (an idle
// connection keeps it rendered instead of both decoders' state), and the rest at close. Only the
// inputs' handshake fields are read by the first, only alerts, timings and errors by the second.
[[nodiscard]] trace::Json summaryHandshakePart(const LegReport& client, const LegReport& upstream);
[[nodiscard]] trace::Json completeSummary(trace::Json handshake_part, const LegReport& client,
                                          const LegReport& upstream);

// The part of a tls.established / tls.trust / tls.key_exchange event that buildSummary reads: a
// connection keeps only this until the summary's handshake part is rendered, or until its close
// when a handshake never completes (null stays null).
enum class SummaryInput { Established, Trust, KeyExchange };
[[nodiscard]] trace::Json keepForSummary(SummaryInput which, const trace::Json& fields);

}  // namespace tlstrace::analysis
