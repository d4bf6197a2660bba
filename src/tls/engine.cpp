#include "tls/engine.h"

#include <openssl/err.h>

namespace tlstrace::tls {

namespace {

TlsEngine::Observer* observerOf(const SSL* ssl) { return static_cast<TlsEngine::Observer*>(SSL_get_app_data(ssl)); }

// SSL_CTX_set_msg_callback: called for each protocol message; we only copy bytes out.
void msgCallback(int write_p, int /*version*/, int content_type, const void* buf, size_t len, SSL* ssl, void* /*arg*/) {
  auto* obs = observerOf(ssl);
  if (!obs) return;
  std::span<const std::uint8_t> bytes(static_cast<const std::uint8_t*>(buf), len);
  if (content_type == SSL3_RT_HEADER) {
    obs->onRecordHeader(write_p != 0, bytes);
    return;
  }
  if (content_type == SSL3_RT_HANDSHAKE || content_type == SSL3_RT_ALERT || content_type == SSL3_RT_CHANGE_CIPHER_SPEC)
    obs->onTlsMessage(write_p != 0, content_type, bytes);
}

void keylogCallback(const SSL* ssl, const char* line) {
  if (auto* obs = observerOf(ssl)) obs->onKeylog(line);
}

// RFC 7301 3.2: answer with the protocol the upstream server chose, if this client offered it.
int alpnSelect(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
               void* /*arg*/) {
  auto* obs = observerOf(ssl);
  const std::string* choice = obs ? obs->alpnChoice() : nullptr;
  if (!choice || choice->empty() || choice->size() > 255) return SSL_TLSEXT_ERR_NOACK;
  unsigned int i = 0;
  while (i < inlen) {
    const unsigned int n = in[i];
    if (i + 1 + n > inlen) break;
    if (n == choice->size() && choice->compare(0, n, reinterpret_cast<const char*>(in + i + 1), n) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(n);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

int clientHelloCallback(SSL* ssl, int* al, void* /*arg*/) {
  auto* obs = observerOf(ssl);
  const int alert = obs ? obs->clientHelloAbortAlert() : 0;
  if (alert == 0) return SSL_CLIENT_HELLO_SUCCESS;
  *al = alert;
  return SSL_CLIENT_HELLO_ERROR;
}

}  // namespace

int TlsEngine::verifyCallback(int preverify_ok, X509_STORE_CTX* store) {
  if (!preverify_ok) {
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    if (auto* obs = ssl ? observerOf(ssl) : nullptr) {
      VerifyFailure f;
      f.error = X509_STORE_CTX_get_error(store);
      f.depth = X509_STORE_CTX_get_error_depth(store);
      if (STACK_OF(X509)* sk = X509_STORE_CTX_get0_untrusted(store))
        for (int i = 0; i < sk_X509_num(sk); ++i) f.chain.push_back(shareX509(sk_X509_value(sk, i)));
      else if (X509* cert = X509_STORE_CTX_get0_cert(store)) f.chain.push_back(shareX509(cert));
      obs->onVerifyError(std::move(f));
    }
  }
  return preverify_ok;
}

void TlsEngine::prepareContext(SSL_CTX* ctx) {
  SSL_CTX_set_msg_callback(ctx, msgCallback);
  SSL_CTX_set_alpn_select_cb(ctx, alpnSelect, nullptr);
  SSL_CTX_set_client_hello_cb(ctx, clientHelloCallback, nullptr);
}

void TlsEngine::reportSecrets(SSL_CTX* ctx) {
  // Only on request: with a key log callback set, OpenSSL hex-formats every secret with one
  // sprintf per byte, a visible share of a handshake's cost when nobody reads the lines.
  SSL_CTX_set_keylog_callback(ctx, keylogCallback);
}

TlsEngine::TlsEngine(SSL_CTX* ctx, bool server, Observer* obs) : ssl_(SSL_new(ctx)), obs_(obs) {
  if (!ssl_) throw OpensslError("SSL_new");
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (!rbio_ || !wbio_) {
    BIO_free(rbio_);
    BIO_free(wbio_);
    throw OpensslError("BIO_new");
  }
  // An empty read BIO must report "retry", not EOF, so that the engine asks for more input.
  BIO_set_mem_eof_return(rbio_, -1);
  SSL_set_bio(ssl_.get(), rbio_, wbio_);  // ownership of both BIOs passes to the SSL
  SSL_set_app_data(ssl_.get(), obs_);
  if (server) SSL_set_accept_state(ssl_.get());
  else SSL_set_connect_state(ssl_.get());
}

void TlsEngine::feed(std::span<const std::uint8_t> ciphertext) {
  if (ciphertext.empty()) return;
  BIO_write(rbio_, ciphertext.data(), static_cast<int>(ciphertext.size()));
}

TlsEngine::Status TlsEngine::classify(int ret, const char* what) {
  const int err = SSL_get_error(ssl_.get(), ret);
  switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: return Status::WantIo;
    case SSL_ERROR_ZERO_RETURN: return Status::Closed;
    default: break;
  }
  error_reason_ = ERR_GET_REASON(ERR_peek_error());
  std::string q = errorQueueText();
  error_ = std::string(what) + " failed";
  if (!q.empty()) error_ += ": " + q;
  else if (err == SSL_ERROR_SYSCALL) error_ += ": unexpected end of stream";
  return Status::Error;
}

TlsEngine::Status TlsEngine::handshake() {
  ERR_clear_error();
  const int ret = SSL_do_handshake(ssl_.get());
  if (ret == 1) return Status::Ok;
  return classify(ret, "handshake");
}

TlsEngine::Status TlsEngine::read(std::vector<std::uint8_t>& out) {
  std::uint8_t buf[16384];
  while (true) {
    // Nothing left to decrypt: another SSL_read would only find that out after allocating a fresh
    // 16 KiB record buffer, which an idle connection would then keep (RELEASE_BUFFERS frees it
    // only when a record is consumed).
    if (BIO_ctrl_pending(rbio_) == 0 && SSL_has_pending(ssl_.get()) == 0 &&
        (SSL_get_shutdown(ssl_.get()) & SSL_RECEIVED_SHUTDOWN) == 0) {
      SSL_free_buffers(ssl_.get());
      return Status::WantIo;
    }
    ERR_clear_error();
    size_t n = 0;
    const int ret = SSL_read_ex(ssl_.get(), buf, sizeof buf, &n);
    if (ret == 1) {
      out.insert(out.end(), buf, buf + n);
      continue;
    }
    return classify(ret, "read");
  }
}

TlsEngine::Status TlsEngine::write(std::span<const std::uint8_t> plain) {
  std::size_t off = 0;
  while (off < plain.size()) {
    ERR_clear_error();
    size_t n = 0;
    const int ret = SSL_write_ex(ssl_.get(), plain.data() + off, plain.size() - off, &n);
    if (ret != 1) return classify(ret, "write");
    off += n;
  }
  return Status::Ok;
}

void TlsEngine::shutdown() {
  ERR_clear_error();
  // Sends close_notify only; we do not wait for the peer's (RFC 8446 6.1 allows half-close).
  (void)SSL_shutdown(ssl_.get());
  ERR_clear_error();
}

void TlsEngine::compact() {
  if (BIO_ctrl_pending(rbio_) != 0 || BIO_ctrl_pending(wbio_) != 0) return;
  SSL_free_buffers(ssl_.get());  // the record buffers the handshake left allocated
  BIO* r = BIO_new(BIO_s_mem());
  BIO* w = BIO_new(BIO_s_mem());
  if (!r || !w) {
    BIO_free(r);
    BIO_free(w);
    return;
  }
  BIO_set_mem_eof_return(r, -1);
  SSL_set0_rbio(ssl_.get(), r);  // frees the old read BIO; the SSL owns the new one
  SSL_set0_wbio(ssl_.get(), w);  // likewise for the write BIO
  rbio_ = r;
  wbio_ = w;
}

std::size_t TlsEngine::pendingOut() const { return BIO_ctrl_pending(wbio_); }

std::size_t TlsEngine::takeOut(std::vector<std::uint8_t>& out, std::size_t cap) {
  const std::size_t n = std::min(pendingOut(), cap);
  if (n == 0) return 0;
  const std::size_t at = out.size();
  out.resize(at + n);
  const int got = BIO_read(wbio_, out.data() + at, static_cast<int>(n));
  out.resize(at + static_cast<std::size_t>(got > 0 ? got : 0));
  return got > 0 ? static_cast<std::size_t>(got) : 0;
}

}  // namespace tlstrace::tls
