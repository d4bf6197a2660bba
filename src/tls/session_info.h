// What a finished (or failed) handshake tells: the fields of tls.established and tls.trust.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tls/engine.h"
#include "tls/ossl.h"
#include "trace/events.h"
#include "trace/json.h"

namespace tlstrace::tls {

// What a completed handshake negotiated (tls.established).
[[nodiscard]] trace::ev::TlsEstablished established(SSL* ssl, double handshake_ms);
// verified, error, depth, hostname, hostname_match, chain. `failure` is what the verify callback
// saw (error 0 when nothing failed); its chain stands in when the handshake left no peer chain.
[[nodiscard]] trace::Json trustFields(SSL* ssl, const std::string& hostname, const VerifyFailure& failure,
                                      class CertSummaryCache* cache = nullptr);
// IANA-style name of the negotiated key-exchange group ("x25519", "secp256r1", "ffdhe2048"), or "".
[[nodiscard]] std::string negotiatedGroup(SSL* ssl);
[[nodiscard]] std::string selectedAlpn(SSL* ssl);
// Configures SNI, hostname verification and the ALPN list of an upstream (client-role) SSL.
// `sni` may be empty (no server_name sent). Returns false with the queue text in `error`.
[[nodiscard]] bool configureUpstream(SSL* ssl, const std::string& sni, const std::string& verify_name,
                                     const std::vector<std::string>& alpn, std::string& error);
[[nodiscard]] bool isIpAddress(const std::string& s);

// Was the session resumed (ID, ticket or PSK)?
[[nodiscard]] bool sessionReused(SSL* ssl);
// The session a resumed handshake took up: its lifetime in seconds (the server's session timeout,
// which OpenSSL announces as a ticket's lifetime; in the client role the ticket's lifetime hint)
// and its age, seconds since it was made (OpenSSL keeps whole seconds); -1 when unknown.
struct SessionTimes {
  long lifetime = -1;
  long age = -1;
};
[[nodiscard]] SessionTimes sessionTimes(SSL* ssl, bool server);
// Key size in bits of the server's certificate: the peer's when `peer_is_server` (our client
// role), else our own (the forged leaf); 0 when there is none.
[[nodiscard]] int serverKeyBits(SSL* ssl, bool peer_is_server);
// A session kept from one handshake to offer in a later one (the probe's resumption attempt): an
// opaque holder, so that session/ keeps no OpenSSL type.
class SavedSession {
 public:
  SavedSession();
  ~SavedSession();
  SavedSession(const SavedSession&) = delete;
  SavedSession& operator=(const SavedSession&) = delete;
  // Takes the SSL's current session if it can be resumed (a session ID or a ticket); true if so.
  bool save(SSL* ssl);
  // Offers the kept session in the SSL's next ClientHello; false when there is none.
  bool offer(SSL* ssl) const;
  [[nodiscard]] bool saved() const;
  [[nodiscard]] bool hasTicket() const;       // a ticket (TLS 1.2 RFC 5077, TLS 1.3 PSK), else a session ID
  [[nodiscard]] long ticketLifetime() const;  // the server's lifetime hint in seconds, -1 if none

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// OpenSSL's text for an X509_V_ERR_* code.
[[nodiscard]] std::string verifyErrorText(int error);

}  // namespace tlstrace::tls
