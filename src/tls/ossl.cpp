#include "tls/ossl.h"

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <cstdlib>

namespace tlstrace::tls {

std::string errorQueueText() {
  int reason = 0;
  return errorQueueText(reason);
}

std::string errorQueueText(int& ssl_reason) {
  std::string out;
  const char* file = nullptr;
  const char* func = nullptr;
  int line = 0;
  ssl_reason = 0;
  bool from_ssl = false;
  while (unsigned long code = ERR_get_error_all(&file, &line, &func, nullptr, nullptr)) {
    if (!from_ssl && (ssl_reason == 0 || ERR_GET_LIB(code) == ERR_LIB_SSL)) {
      ssl_reason = ERR_GET_REASON(code);
      from_ssl = ERR_GET_LIB(code) == ERR_LIB_SSL;
    }
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

OpensslError::OpensslError(const std::string& what)
    : std::runtime_error([&] {
        std::string q = errorQueueText();
        return q.empty() ? what : what + ": " + q;
      }()) {}

namespace {

// The same contract as OpenSSL's own CRYPTO_malloc/CRYPTO_realloc (crypto/mem.c): a zero-size
// allocation is NULL, and realloc to zero frees.
void* osslMalloc(std::size_t n, const char* /*file*/, int /*line*/) { return n == 0 ? nullptr : std::malloc(n); }

void osslFree(void* p, const char* /*file*/, int /*line*/) {
  if (p != nullptr) std::free(p);
}

void* osslRealloc(void* p, std::size_t n, const char* file, int line) {
  if (p == nullptr) return osslMalloc(n, file, line);
  if (n == 0) {
    std::free(p);
    return nullptr;
  }
  return std::realloc(p, n);
}

}  // namespace

bool installOpensslAllocator() { return CRYPTO_set_mem_functions(osslMalloc, osslRealloc, osslFree) == 1; }

X509Ptr shareX509(X509* x) {
  if (x) X509_up_ref(x);
  return X509Ptr(x);
}

std::string libraryVersion() { return OpenSSL_version(OPENSSL_VERSION); }

}  // namespace tlstrace::tls
