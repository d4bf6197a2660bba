// Failed handshakes as first-class records: a machine-readable cause and a one-line hint a
// developer can act on, from what the TLS stack and the wire said.
#pragma once
#include <string>

namespace tlstrace::analysis {

struct FailureFacts {
  bool client_leg = false;     // the leg facing the client (else facing the server)
  int ssl_reason = 0;          // ERR_GET_REASON of the first OpenSSL error, 0 if none
  int verify_error = 0;        // X509_V_ERR_*, 0 if none
  std::string alert_received;  // description, "" if none
  std::string alert_sent;
  bool peer_reset = false;
  bool peer_closed = false;  // FIN during the handshake
  bool timeout = false;
  bool not_tls = false;
};

struct Diagnosis {
  std::string cause;
  std::string hint;
};

[[nodiscard]] Diagnosis diagnose(const FailureFacts& f);

}  // namespace tlstrace::analysis
