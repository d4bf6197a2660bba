#include "tls/session_info.h"

#include <arpa/inet.h>
#include <openssl/err.h>

#include <cctype>
#include <ctime>

#include "tls/cert_summary.h"
#include "wire/registry.h"

namespace tlstrace::tls {

using trace::Json;

bool isIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string negotiatedGroup(SSL* ssl) {
  const int nid = static_cast<int>(SSL_get_negotiated_group(ssl));
  if (nid == NID_undef || nid == 0) return {};
  // OpenSSL spells some groups differently from the IANA registry.
  switch (nid) {
    case NID_X9_62_prime256v1: return "secp256r1";
    case NID_secp384r1: return "secp384r1";
    case NID_secp521r1: return "secp521r1";
    case NID_X25519: return "x25519";
    case NID_X448: return "x448";
    default: break;
  }
  const char* n = SSL_group_to_name(ssl, nid);
  if (!n) n = OBJ_nid2sn(nid);
  return n ? n : "";
}

std::string selectedAlpn(SSL* ssl) {
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  SSL_get0_alpn_selected(ssl, &p, &n);
  return p ? std::string(reinterpret_cast<const char*>(p), n) : std::string{};
}

trace::ev::TlsEstablished established(SSL* ssl, double handshake_ms) {
  trace::ev::TlsEstablished e;
  // The contract's names ("TLSv1.0", not OpenSSL's "TLSv1").
  e.version = std::string(wire::versionName(static_cast<std::uint16_t>(SSL_version(ssl))));
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl)) {
    e.cipher.id = SSL_CIPHER_get_protocol_id(c);
    const char* std_name = SSL_CIPHER_standard_name(c);
    e.cipher.name = std_name ? std_name : SSL_CIPHER_get_name(c);
  } else {
    e.cipher = {0, "unknown"};
  }
  if (auto g = negotiatedGroup(ssl); !g.empty()) e.group.value = std::move(g);
  if (auto a = selectedAlpn(ssl); !a.empty()) e.alpn.value = std::move(a);
  if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) e.sni.value = sni;
  e.resumed = SSL_session_reused(ssl) == 1;
  e.handshake_ms = trace::timingMs(handshake_ms);
  return e;
}

Json trustFields(SSL* ssl, const std::string& hostname, const VerifyFailure& failure, CertSummaryCache* cache) {
  auto summary = [cache](X509* c) { return cache ? cache->get(c) : summarizeCertificate(c); };
  Json j = Json::object();
  long res = SSL_get_verify_result(ssl);
  if (res == X509_V_OK && failure.error != 0) res = failure.error;
  X509* leaf = SSL_get0_peer_certificate(ssl);
  if (!leaf && !failure.chain.empty()) leaf = failure.chain.front().get();
  j.set("verified", res == X509_V_OK && leaf != nullptr);
  if (!leaf) j.set("error", "no certificate presented");
  else if (res != X509_V_OK) j.set("error", std::string(X509_verify_cert_error_string(res)));
  if (failure.depth >= 0) j.set("depth", failure.depth);
  j.set("hostname", hostname);
  bool match = false;
  if (leaf && !hostname.empty()) {
    match = isIpAddress(hostname) ? X509_check_ip_asc(leaf, hostname.c_str(), 0) == 1
                                  : X509_check_host(leaf, hostname.c_str(), hostname.size(), 0, nullptr) == 1;
  }
  j.set("hostname_match", match);
  Json chain = Json::array();
  // As sent by the server, leaf first (client side: the peer chain includes the leaf).
  if (STACK_OF(X509)* sk = SSL_get_peer_cert_chain(ssl)) {
    for (int i = 0; i < sk_X509_num(sk); ++i) chain.push(summary(sk_X509_value(sk, i)));
  } else {
    for (const auto& c : failure.chain) chain.push(summary(c.get()));
  }
  j.set("chain", std::move(chain));
  return j;
}

bool configureUpstream(SSL* ssl, const std::string& sni, const std::string& verify_name,
                       const std::vector<std::string>& alpn, std::string& error) {
  ERR_clear_error();
  if (!sni.empty() && !SSL_set_tlsext_host_name(ssl, sni.c_str())) {
    error = "cannot set SNI: " + errorQueueText();
    return false;
  }
  if (!verify_name.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    const bool ok = isIpAddress(verify_name) ? X509_VERIFY_PARAM_set1_ip_asc(param, verify_name.c_str()) == 1
                                             : SSL_set1_host(ssl, verify_name.c_str()) == 1;
    if (!ok) {
      error = "cannot set the name to verify: " + errorQueueText();
      return false;
    }
  }
  if (!alpn.empty()) {
    std::string wire;
    for (const auto& p : alpn) {
      if (p.empty() || p.size() > 255) continue;
      wire.push_back(static_cast<char>(p.size()));
      wire += p;
    }
    // Note the inverted convention: SSL_set_alpn_protos returns 0 on success.
    if (!wire.empty() && SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()),
                                             static_cast<unsigned>(wire.size())) != 0) {
      error = "cannot set ALPN: " + errorQueueText();
      return false;
    }
  }
  return true;
}

bool sessionReused(SSL* ssl) { return SSL_session_reused(ssl) == 1; }

struct SavedSession::Impl {
  std::unique_ptr<SSL_SESSION, Deleter<&SSL_SESSION_free>> session;
};
SavedSession::SavedSession() : impl_(std::make_unique<Impl>()) {}
SavedSession::~SavedSession() = default;

bool SavedSession::save(SSL* ssl) {
  SSL_SESSION* s = SSL_get1_session(ssl);
  if (!s) return false;
  std::unique_ptr<SSL_SESSION, Deleter<&SSL_SESSION_free>> held(s);
  if (SSL_SESSION_is_resumable(s) != 1) return false;
  impl_->session = std::move(held);
  return true;
}

bool SavedSession::offer(SSL* ssl) const { return impl_->session && SSL_set_session(ssl, impl_->session.get()) == 1; }
bool SavedSession::saved() const { return impl_->session != nullptr; }
bool SavedSession::hasTicket() const { return impl_->session && SSL_SESSION_has_ticket(impl_->session.get()) == 1; }
long SavedSession::ticketLifetime() const {
  if (!hasTicket()) return -1;
  return static_cast<long>(SSL_SESSION_get_ticket_lifetime_hint(impl_->session.get()));
}

SessionTimes sessionTimes(SSL* ssl, bool server) {
  SessionTimes t;
  const SSL_SESSION* sess = SSL_get_session(ssl);
  if (!sess) return t;
  t.lifetime = server ? SSL_SESSION_get_timeout(sess) : static_cast<long>(SSL_SESSION_get_ticket_lifetime_hint(sess));
  const long made = SSL_SESSION_get_time(sess);
  const long now = static_cast<long>(time(nullptr));
  if (made > 0 && now >= made) t.age = now - made;
  return t;
}

int serverKeyBits(SSL* ssl, bool peer_is_server) {
  X509* cert = peer_is_server ? SSL_get0_peer_certificate(ssl) : SSL_get_certificate(ssl);
  if (!cert) return 0;
  EVP_PKEY* pk = X509_get0_pubkey(cert);
  return pk ? EVP_PKEY_get_bits(pk) : 0;
}

std::string verifyErrorText(int error) { return X509_verify_cert_error_string(error); }

}  // namespace tlstrace::tls
