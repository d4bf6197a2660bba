#include "tls/ossl.h"

#include <openssl/err.h>

namespace tlstrace::tls {

std::string errorQueueText() {
  std::string out;
  const char* file = nullptr;
  const char* func = nullptr;
  int line = 0;
  while (unsigned long code = ERR_get_error_all(&file, &line, &func, nullptr, nullptr)) {
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

X509Ptr shareX509(X509* x) {
  if (x) X509_up_ref(x);
  return X509Ptr(x);
}

}  // namespace tlstrace::tls
