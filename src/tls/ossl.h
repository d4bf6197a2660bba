// RAII holders for OpenSSL objects and the error-queue text that every error carries.
#pragma once
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace tlstrace::tls {

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};

using SslPtr = std::unique_ptr<SSL, Deleter<&SSL_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<&SSL_CTX_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<&X509_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<&EVP_PKEY_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<&EVP_PKEY_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<&BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<&BN_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, Deleter<&X509_NAME_free>>;
using X509ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<&X509_EXTENSION_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<&GENERAL_NAMES_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, Deleter<&X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<&X509_STORE_CTX_free>>;

// The OpenSSL library in use ("OpenSSL 3.0.x <date>"), for --version.
[[nodiscard]] std::string libraryVersion();

// Drains the thread's OpenSSL error queue into one line ("" when empty).
[[nodiscard]] std::string errorQueueText();
// The same, and the reason of the first error raised by the SSL library itself in `ssl_reason`
// (another library's error, e.g. the DH check's "not suitable generator", comes first in the
// queue when it caused OpenSSL's SSL_R_BAD_DH_VALUE), else of the first error, else 0.
[[nodiscard]] std::string errorQueueText(int& ssl_reason);

// Start-up failures (config, CA): an exception carrying the queue text.
class OpensslError : public std::runtime_error {
 public:
  explicit OpensslError(const std::string& what);
};

// Shares one more reference of an X509 (X509_up_ref) in an owning holder.
[[nodiscard]] X509Ptr shareX509(X509* x);

// Routes OpenSSL's allocations through malloc/realloc/free as before, except that freeing NULL
// returns at once. OpenSSL 3.0 frees NULL a lot on hot paths (SSL_free_buffers clears 32 record
// slots, ERR_clear_error 16 error slots, every call), and jemalloc's free(NULL) is not a no-op.
// Must run before OpenSSL allocates anything: false when it is too late (nothing changes then).
bool installOpensslAllocator();

}  // namespace tlstrace::tls
