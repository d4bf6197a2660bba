// An SSL_CTX as the layers above tls/ hold it: an opaque pointer they pass back to tls/, without
// OpenSSL's headers (openssl/types.h spells the type the same way).
#pragma once

typedef struct ssl_ctx_st SSL_CTX;

namespace tlstrace::tls {
using ContextRef = SSL_CTX*;
}
