// --mirror-client: offer the server what the client offered (versions, cipher suites, groups,
// signature schemes), as far as OpenSSL allows, and say what could not be mirrored.
#pragma once
#include <openssl/ssl.h>

#include "trace/decoder.h"
#include "trace/json.h"

namespace tlstrace::tls {

// Configures `ssl` (client role, before the handshake) from `offer`. Returns the fields of the
// tls.mirror event: `mirrored` (what was applied) and `not_mirrored` (what was not, and why).
[[nodiscard]] trace::Json mirrorClientOffer(SSL* ssl, const trace::HelloOffer& offer);

}  // namespace tlstrace::tls
