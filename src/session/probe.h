// `tlstrace probe`: one ProxySession that has no client leg. It connects to the target and runs
// the proxy's upstream leg as it is (same engine, decoder, analysis, trust verdict and events),
// offering what the spec says instead of what a client offered, then closes.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "tls/session_info.h"

namespace tlstrace::session {

struct ProbeSpec {
  config::HostPort target;
  std::string sni;                // "" = no server_name (the target host verifies the certificate)
  std::vector<std::string> alpn;  // offered protocols, in order
  // After the handshake, wait this long for a TLS 1.3 NewSessionTicket (0: close at once).
  double ticket_wait_s = 0;
  std::shared_ptr<tls::SavedSession> resume;  // a session to offer (a resumption attempt), or null
  std::shared_ptr<tls::SavedSession> save;    // where the session received is kept, or null
};

}  // namespace tlstrace::session
