#include "tls/engine.h"

#include <openssl/err.h>

#include <algorithm>
#include <cstring>

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

// What a burst fills: one socket read (64 KiB) or one relayed write chunk of records (64 KiB of
// plaintext, plus record overhead).
constexpr std::size_t kBurstRoom = 80 * 1024;

// The engine's BIO: OpenSSL reads the engine's received bytes and appends what it writes to the
// engine's output, both in place. An empty input is "retry" (not EOF), so OpenSSL asks for more.
struct EngineBio {
  static TlsEngine& engine(BIO* b) { return *static_cast<TlsEngine*>(BIO_get_data(b)); }

  static int write(BIO* b, const char* data, size_t len, size_t* written) {
    BIO_clear_retry_flags(b);
    TlsEngine& e = engine(b);
    // Room for a full write chunk of records: a bulk burst then fills one buffer without growing it.
    if (e.out_.empty() && e.out_.capacity() == 0) e.out_ = borrowBuffer(std::max<std::size_t>(len, kBurstRoom));
    if (e.out_off_ > 0 && e.out_.size() + len > e.out_.capacity()) {
      // Drop what was already taken before growing: the buffer would otherwise keep (and copy) a
      // dead prefix, and grow without bound while a leg keeps a partial chunk queued.
      e.out_.erase(e.out_.begin(), e.out_.begin() + static_cast<std::ptrdiff_t>(e.out_off_));
      e.out_off_ = 0;
    }
    const auto* p = reinterpret_cast<const std::uint8_t*>(data);
    e.out_.insert(e.out_.end(), p, p + len);
    *written = len;
    return 1;
  }

  static int read(BIO* b, char* data, size_t len, size_t* readbytes) {
    BIO_clear_retry_flags(b);
    TlsEngine& e = engine(b);
    if (e.in_off_ == e.in_.size() && !e.lent_.empty()) {
      const std::size_t n = std::min(len, e.lent_.size());
      std::memcpy(data, e.lent_.data(), n);
      e.lent_ = e.lent_.subspan(n);
      *readbytes = n;
      return 1;
    }
    const std::size_t n = std::min(len, e.in_.size() - e.in_off_);
    *readbytes = n;
    if (n == 0) {
      BIO_set_retry_read(b);
      return 0;
    }
    std::memcpy(data, e.in_.data() + e.in_off_, n);
    e.in_off_ += n;
    if (e.in_off_ == e.in_.size()) {
      e.in_.clear();
      e.in_off_ = 0;
    }
    return 1;
  }

  static long ctrl(BIO* b, int cmd, long /*num*/, void* /*ptr*/) {
    TlsEngine& e = engine(b);
    switch (cmd) {
      case BIO_CTRL_PENDING: return static_cast<long>(e.in_.size() - e.in_off_ + e.lent_.size());
      case BIO_CTRL_WPENDING: return static_cast<long>(e.out_.size() - e.out_off_);
      case BIO_CTRL_FLUSH: return 1;
      default: return 0;
    }
  }

  static int create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  }

  static const BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
      BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tlstrace engine");
      if (bm) {
        BIO_meth_set_write_ex(bm, write);
        BIO_meth_set_read_ex(bm, read);
        BIO_meth_set_ctrl(bm, ctrl);
        BIO_meth_set_create(bm, create);
      }
      return bm;
    }();
    return m;
  }
};

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
  const BIO_METHOD* method = EngineBio::method();
  BIO* bio = method ? BIO_new(method) : nullptr;
  if (!bio) throw OpensslError("BIO_new");
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_.get(), bio, bio);  // one BIO both ways; the SSL takes its one reference
  SSL_set_app_data(ssl_.get(), obs_);
  if (server) SSL_set_accept_state(ssl_.get());
  else SSL_set_connect_state(ssl_.get());
}

void TlsEngine::feed(std::span<const std::uint8_t> ciphertext) {
  keepRest();  // lent bytes came first
  if (ciphertext.empty()) return;
  if (in_off_ > 0) {  // keep only what OpenSSL has not read yet (less than a record)
    in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(in_off_));
    in_off_ = 0;
  }
  if (in_.capacity() < in_.size() + ciphertext.size()) {
    ByteBuffer bigger = borrowBuffer(std::max(in_.size() + ciphertext.size(), kBurstRoom));
    bigger.assign(in_.begin(), in_.end());
    returnBuffer(in_);
    in_ = std::move(bigger);
  }
  in_.insert(in_.end(), ciphertext.begin(), ciphertext.end());
}

void TlsEngine::lend(std::span<const std::uint8_t> ciphertext) {
  // Behind bytes the engine holds, the new ones are copied: OpenSSL reads in_ first.
  if (!lent_.empty() || in_off_ != in_.size()) return feed(ciphertext);
  lent_ = ciphertext;
}

void TlsEngine::keepRest() {
  if (lent_.empty()) return;
  const auto rest = lent_;
  lent_ = {};
  feed(rest);
}

TlsEngine::Status TlsEngine::classify(int ret, const char* what) {
  const int err = SSL_get_error(ssl_.get(), ret);
  switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: return Status::WantIo;
    case SSL_ERROR_ZERO_RETURN: return Status::Closed;
    default: break;
  }
  std::string q = errorQueueText(error_reason_);
  error_ = std::string(what) + " failed";
  if (!q.empty()) error_ += ": " + q;
  else if (err == SSL_ERROR_SYSCALL) error_ += ": unexpected end of stream";
  return Status::Error;
}

namespace {

// Stale errors would make SSL_get_error misreport the next call, so each call starts with an empty
// queue. ERR_clear_error itself is not free in OpenSSL 3.0: it frees two strings in each of its 16
// slots, empty or not (32 free(NULL) calls; 200 per proxied keep-alive request, a tenth of the
// request's instructions with jemalloc), so it runs only when there is something to clear.
void clearStaleErrors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

}  // namespace

TlsEngine::Status TlsEngine::handshake() {
  clearStaleErrors();
  const int ret = SSL_do_handshake(ssl_.get());
  if (ret == 1) return Status::Ok;
  return classify(ret, "handshake");
}

TlsEngine::Status TlsEngine::readRecord(std::uint8_t* buf, std::size_t cap, std::size_t& n) {
  // Nothing left to decrypt: another SSL_read would only find that out after allocating a fresh
  // 16 KiB record buffer, which an idle connection would then keep (RELEASE_BUFFERS frees it
  // only when a record is consumed).
  if (in_.empty() && lent_.empty() && SSL_has_pending(ssl_.get()) == 0 &&
      (SSL_get_shutdown(ssl_.get()) & SSL_RECEIVED_SHUTDOWN) == 0) {
    SSL_free_buffers(ssl_.get());
    returnBuffer(in_);
    return Status::WantIo;
  }
  clearStaleErrors();
  const int ret = SSL_read_ex(ssl_.get(), buf, cap, &n);
  if (ret == 1) return Status::Ok;
  return classify(ret, "read");
}

TlsEngine::Status TlsEngine::read(std::vector<std::uint8_t>& out) {
  return readEach([&out](std::span<const std::uint8_t> plain) {
    out.insert(out.end(), plain.begin(), plain.end());
    return true;
  });
}

TlsEngine::Status TlsEngine::write(std::span<const std::uint8_t> plain) {
  std::size_t off = 0;
  while (off < plain.size()) {
    clearStaleErrors();
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
  if (!in_.empty() || !lent_.empty() || out_.size() != out_off_) return;
  SSL_free_buffers(ssl_.get());  // the record buffers the handshake left allocated
  returnBuffer(in_);
  returnBuffer(out_);
  out_off_ = 0;
}

std::size_t TlsEngine::pendingOut() const { return out_.size() - out_off_; }

std::size_t TlsEngine::takeOut(std::vector<std::uint8_t>& out, std::size_t cap) {
  if (pendingOut() == 0) return 0;
  if (out.empty() && out_off_ == 0) {
    const std::size_t n = out_.size();
    out.swap(out_);      // the whole output, without a copy
    returnBuffer(out_);  // the caller's spare capacity, for whoever writes next on this thread
    return n;
  }
  const std::size_t n = std::min(pendingOut(), cap);
  const auto from = out_.begin() + static_cast<std::ptrdiff_t>(out_off_);
  out.insert(out.end(), from, from + static_cast<std::ptrdiff_t>(n));
  out_off_ += n;
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
  }
  return n;
}

}  // namespace tlstrace::tls
