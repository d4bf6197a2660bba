// Failed handshakes as first-class records: a machine-readable cause and a one-line hint a
// developer can act on, from what the TLS stack and the wire said.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tlstrace::analysis {

struct FailureFacts {
  bool client_leg = false;     // the leg facing the client (else facing the server)
  int ssl_reason = 0;          // ERR_GET_REASON of the first SSL-library error (else the first), 0 if none
  int verify_error = 0;        // X509_V_ERR_*, 0 if none
  std::string alert_received;  // description, "" if none
  std::string alert_sent;
  bool peer_reset = false;
  bool peer_closed = false;  // FIN during the handshake
  bool timeout = false;
  bool not_tls = false;
  // What the leg's own messages said before it failed.
  bool certificate_requested = false;    // the server sent a CertificateRequest on this leg
  bool client_certificate_sent = false;  // and the proxy answered with a certificate (mutual TLS)
  std::string invalid_dh;                // a DH value outside [2, p-2], named: "g = p-1", "Ys = 1" ...
  int dh_bits = 0;                       // the size of the server's DH prime, when one arrived
};

struct Diagnosis {
  std::string cause;
  std::string hint;
};

[[nodiscard]] Diagnosis diagnose(const FailureFacts& f);

// The client leg's refusal of a ClientHello, decided from the hello alone: none of the versions
// it offers (supported_versions, else legacy_version; GREASE ignored) lies within what the
// proxy's client leg accepts [min, max] (0: no bound). nullopt when one does.
[[nodiscard]] std::optional<Diagnosis> clientVersionRefusal(const std::vector<std::uint16_t>& offered,
                                                            std::uint16_t min, std::uint16_t max);

}  // namespace tlstrace::analysis
