// One TLS endpoint over in-memory buffers (its own BIO): ciphertext in and out as bytes, no
// sockets. The proxy feeds what it reads from a socket and writes what the engine produces;
// OpenSSL's message and key-log callbacks report every handshake message and secret to an Observer.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tls/buffer_pool.h"
#include "tls/ossl.h"

namespace tlstrace::tls {

// What the verify callback saw at the first failure: OpenSSL's error, the depth, and the chain as
// the peer sent it (kept because a failed handshake leaves no peer certificate on the SSL).
struct VerifyFailure {
  int error = 0;
  int depth = -1;
  std::vector<X509Ptr> chain;
};

class TlsEngine {
 public:
  class Observer {
   public:
    virtual ~Observer() = default;
    // content_type: 20 ChangeCipherSpec, 21 alert, 22 handshake (RFC 8446 5.1); `sent` when the
    // engine produced it. `bytes` is the plaintext message (handshake header included).
    virtual void onTlsMessage(bool sent, int content_type, std::span<const std::uint8_t> bytes) = 0;
    virtual void onRecordHeader(bool sent, std::span<const std::uint8_t> header) = 0;
    virtual void onKeylog(std::string_view line) = 0;
    // Server role: the ALPN protocol to answer with (the one the upstream server chose), or
    // nullptr for no ALPN. The string must outlive the handshake.
    virtual const std::string* alpnChoice() { return nullptr; }
    // Server role: a TLS alert to abort the handshake with right after the ClientHello (used when
    // the upstream leg failed), or 0 to continue.
    virtual int clientHelloAbortAlert() { return 0; }
    // Client role: a certificate-chain verification error (the first one is the one to report).
    virtual void onVerifyError(VerifyFailure&& /*failure*/) {}
  };

  enum class Status { Ok, WantIo, Closed, Error };

  // `server` selects the role. The context must have been prepared with prepareContext().
  TlsEngine(SSL_CTX* ctx, bool server, Observer* obs);
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  // Installs the callbacks that route to the engine's observer; call once per context.
  static void prepareContext(SSL_CTX* ctx);
  // Makes the engines of this context report their secrets (Observer::onKeylog). Costly; only
  // for the key log, the capture and the keys category.
  static void reportSecrets(SSL_CTX* ctx);
  // The verify callback for SSL_CTX_set_verify: reports errors to the observer and keeps
  // OpenSSL's own verdict (the verify mode decides whether it is enforced).
  static int verifyCallback(int preverify_ok, X509_STORE_CTX* store);

  [[nodiscard]] SSL* ssl() const { return ssl_.get(); }
  // Received ciphertext, copied into the engine.
  void feed(std::span<const std::uint8_t> ciphertext);
  // The same without the copy: OpenSSL reads the caller's bytes in place until keepRest(), which
  // the caller must call before those bytes change (it copies what is still unread).
  void lend(std::span<const std::uint8_t> ciphertext);
  void keepRest();

  // Advances the handshake: Ok when complete, WantIo when more input is needed.
  [[nodiscard]] Status handshake();
  [[nodiscard]] bool handshakeDone() const { return SSL_is_init_finished(ssl_.get()) == 1; }
  // Decrypts whatever is buffered, appending plaintext to `out`. Closed on close_notify.
  [[nodiscard]] Status read(std::vector<std::uint8_t>& out);
  // The same, handing each record's plaintext to `on_plain` (valid during the call only) instead
  // of gathering it; WantIo as soon as `on_plain` returns false.
  template <typename F>
  [[nodiscard]] Status readEach(F&& on_plain) {
    std::uint8_t buf[16384];  // SSL3_RT_MAX_PLAIN_LENGTH: one record
    while (true) {
      std::size_t n = 0;
      const Status st = readRecord(buf, sizeof buf, n);
      if (st != Status::Ok) return st;
      if (!on_plain(std::span<const std::uint8_t>(buf, n))) return Status::WantIo;
    }
  }
  // Encrypts plaintext into the outgoing buffer.
  [[nodiscard]] Status write(std::span<const std::uint8_t> plain);
  // Queues close_notify.
  void shutdown();
  // Gives back OpenSSL's record buffers and the engine's own when nothing is buffered: called
  // once a connection settles into relaying.
  void compact();

  [[nodiscard]] std::size_t pendingOut() const;
  // Bytes of buffer capacity the engine itself holds (OpenSSL's own buffers not counted).
  [[nodiscard]] std::size_t heldBytes() const { return in_.capacity() + out_.capacity(); }
  // Moves produced ciphertext into `out`: into an empty `out` all of it, without a copy (the
  // buffers swap); else up to `cap` bytes, appended.
  std::size_t takeOut(std::vector<std::uint8_t>& out, std::size_t cap);

  // The text of the last error (OpenSSL error queue included).
  [[nodiscard]] const std::string& error() const { return error_; }
  // ERR_GET_REASON of the last failure's first SSL-library error, else of its first error (0 when none).
  [[nodiscard]] int errorReason() const { return error_reason_; }
  [[nodiscard]] bool sawCloseNotify() const { return (SSL_get_shutdown(ssl_.get()) & SSL_RECEIVED_SHUTDOWN) != 0; }

 private:
  Status classify(int ret, const char* what);
  // One SSL_read_ex: Ok with `n` bytes, or why there are none.
  Status readRecord(std::uint8_t* buf, std::size_t cap, std::size_t& n);
  friend struct EngineBio;

  // Ciphertext between the sockets and OpenSSL, through the engine's own BIO rather than two
  // memory BIOs: no copy out of them, and an idle engine holds no buffer (see buffer_pool.h).
  ByteBuffer in_;  // received, not yet read by OpenSSL
  std::size_t in_off_ = 0;
  // Lent by the caller (lend()); only while in_ holds nothing unread, so it always comes after in_.
  std::span<const std::uint8_t> lent_;
  ByteBuffer out_;  // produced, not yet taken
  std::size_t out_off_ = 0;
  SslPtr ssl_;  // declared after the buffers its BIO points at
  Observer* obs_;
  std::string error_;
  int error_reason_ = 0;
};

}  // namespace tlstrace::tls
