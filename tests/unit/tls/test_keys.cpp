// Derived keys: RFC 8448 vectors, and decrypting a record that a real OpenSSL endpoint sent with
// the keys derived from its own key-log secrets (TLS 1.3 and TLS 1.2).
#include <doctest/doctest.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>

#include <map>
#include <string>

#include "../test_util.h"
#include "pki/ca.h"
#include "pki/forge.h"
#include "tls/keys.h"
#include "tls/ossl.h"
#include "wire/byte_reader.h"

using namespace tlstrace;
using testing::fromHex;

namespace {

std::string hex(const std::vector<std::uint8_t>& b) { return wire::toHex(b); }

// One in-memory handshake between two OpenSSL endpoints; the client's key log is collected and
// the client's first application-data record captured as it left.
struct Pair {
  std::map<std::string, std::vector<std::uint8_t>> secrets;  // label -> secret
  std::vector<std::uint8_t> client_random, server_random;
  std::vector<std::uint8_t> record;  // client -> server, carrying "hello tlstrace"
  const SSL_CIPHER* cipher = nullptr;
  int version = 0;
};

void keylog(const SSL* ssl, const char* line) {
  auto* p = static_cast<Pair*>(SSL_get_app_data(ssl));
  std::string l(line);
  const auto a = l.find(' '), b = l.find(' ', a + 1);
  p->secrets[l.substr(0, a)] = fromHex(l.substr(b + 1));
}

std::vector<std::uint8_t> drain(BIO* b) {
  std::vector<std::uint8_t> out(static_cast<std::size_t>(BIO_ctrl_pending(b)));
  if (!out.empty()) BIO_read(b, out.data(), static_cast<int>(out.size()));
  return out;
}

Pair handshake(int version, const char* ciphers, std::uint64_t client_options = 0) {
  Pair pair;
  auto ca = pki::createCa("keys test CA");
  pki::Forger forger(ca, 1);
  std::string err;
  auto leaf = forger.leaf(pki::leafNamesFor("localhost", nullptr), err);
  tls::SslCtxPtr sctx(SSL_CTX_new(TLS_server_method())), cctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_use_certificate(sctx.get(), leaf.get());
  SSL_CTX_use_PrivateKey(sctx.get(), forger.leafKey());
  for (SSL_CTX* c : {sctx.get(), cctx.get()}) {
    SSL_CTX_set_min_proto_version(c, version);
    SSL_CTX_set_max_proto_version(c, version);
  }
  if (version == TLS1_3_VERSION) SSL_CTX_set_ciphersuites(cctx.get(), ciphers);
  else SSL_CTX_set_cipher_list(cctx.get(), ciphers);
  SSL_CTX_set_options(cctx.get(), client_options);
  SSL_CTX_set_keylog_callback(cctx.get(), keylog);
  tls::SslPtr s(SSL_new(sctx.get())), c(SSL_new(cctx.get()));
  SSL_set_app_data(c.get(), &pair);
  BIO *c2s = BIO_new(BIO_s_mem()), *s2c = BIO_new(BIO_s_mem());
  BIO_up_ref(c2s);
  BIO_up_ref(s2c);
  SSL_set_bio(c.get(), s2c, c2s);  // client reads s2c, writes c2s
  SSL_set_bio(s.get(), c2s, s2c);
  SSL_set_connect_state(c.get());
  SSL_set_accept_state(s.get());
  for (int i = 0; i < 10 && !(SSL_is_init_finished(c.get()) && SSL_is_init_finished(s.get())); ++i) {
    SSL_do_handshake(c.get());
    SSL_do_handshake(s.get());
  }
  REQUIRE(SSL_is_init_finished(c.get()));
  (void)drain(c2s);  // the client's Finished etc.
  const char msg[] = "hello tlstrace";
  REQUIRE(SSL_write(c.get(), msg, sizeof msg - 1) > 0);
  pair.record = drain(c2s);
  pair.client_random.resize(32);
  SSL_get_client_random(c.get(), pair.client_random.data(), 32);
  pair.server_random.resize(32);
  SSL_get_server_random(c.get(), pair.server_random.data(), 32);
  pair.cipher = SSL_get_current_cipher(c.get());
  pair.version = SSL_version(c.get());
  return pair;
}

// AES-GCM open of `ct||tag` with `nonce` and `aad`.
std::optional<std::string> gcmOpen(const std::vector<std::uint8_t>& key, const std::vector<std::uint8_t>& nonce,
                                   const std::vector<std::uint8_t>& aad, std::vector<std::uint8_t> ct) {
  if (ct.size() < 16) return std::nullopt;
  std::vector<std::uint8_t> tag(ct.end() - 16, ct.end());
  ct.resize(ct.size() - 16);
  EVP_CIPHER_CTX* x = EVP_CIPHER_CTX_new();
  const EVP_CIPHER* cipher = key.size() == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
  EVP_DecryptInit_ex(x, cipher, nullptr, nullptr, nullptr);
  EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce.size()), nullptr);
  EVP_DecryptInit_ex(x, nullptr, nullptr, key.data(), nonce.data());
  int n = 0;
  EVP_DecryptUpdate(x, nullptr, &n, aad.data(), static_cast<int>(aad.size()));
  std::vector<std::uint8_t> pt(ct.size() + 16);
  EVP_DecryptUpdate(x, pt.data(), &n, ct.data(), static_cast<int>(ct.size()));
  int total = n;
  EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, 16, tag.data());
  const bool ok = EVP_DecryptFinal_ex(x, pt.data() + n, &n) == 1;
  EVP_CIPHER_CTX_free(x);
  if (!ok) return std::nullopt;
  return std::string(pt.begin(), pt.begin() + total + n);
}

// HMAC(mac_key, seq || type || version || length || data) == mac (RFC 5246 6.2.3.1).
bool macOk(const tls::TrafficKeys& k, const EVP_MD* md, std::uint64_t seq, const std::vector<std::uint8_t>& rec,
           const std::uint8_t* data, std::size_t n, const std::uint8_t* mac) {
  std::vector<std::uint8_t> in;
  for (int i = 7; i >= 0; --i) in.push_back(static_cast<std::uint8_t>(seq >> (8 * i)));
  in.insert(in.end(), rec.begin(), rec.begin() + 3);
  in.push_back(static_cast<std::uint8_t>(n >> 8));
  in.push_back(static_cast<std::uint8_t>(n));
  in.insert(in.end(), data, data + n);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const auto& key = k.mac_key.bytes();
  HMAC(md, key.data(), static_cast<int>(key.size()), in.data(), in.size(), out, &len);
  return len == static_cast<unsigned>(EVP_MD_get_size(md)) && CRYPTO_memcmp(out, mac, len) == 0;
}

// A TLS 1.1+ AES-CBC record (explicit IV, RFC 5246 6.2.3.2), MAC-then-encrypt or encrypt-then-MAC
// (RFC 7366 3): its plaintext when padding and MAC verify.
std::optional<std::string> cbcOpen(const tls::TrafficKeys& k, const EVP_MD* md, std::uint64_t seq,
                                   const std::vector<std::uint8_t>& rec, bool etm) {
  const auto mac_len = static_cast<std::size_t>(EVP_MD_get_size(md));
  std::vector<std::uint8_t> body(rec.begin() + 5, rec.end());
  if (body.size() < mac_len + 32) return std::nullopt;
  if (etm) {
    if (!macOk(k, md, seq, rec, body.data(), body.size() - mac_len, body.data() + body.size() - mac_len))
      return std::nullopt;
    body.resize(body.size() - mac_len);
  }
  const auto& key = k.key.bytes();
  EVP_CIPHER_CTX* x = EVP_CIPHER_CTX_new();
  EVP_DecryptInit_ex(x, key.size() == 16 ? EVP_aes_128_cbc() : EVP_aes_256_cbc(), nullptr, key.data(), body.data());
  EVP_CIPHER_CTX_set_padding(x, 0);
  std::vector<std::uint8_t> pt(body.size());
  int n = 0, m = 0;
  EVP_DecryptUpdate(x, pt.data(), &n, body.data() + 16, static_cast<int>(body.size() - 16));
  EVP_DecryptFinal_ex(x, pt.data() + n, &m);
  EVP_CIPHER_CTX_free(x);
  pt.resize(static_cast<std::size_t>(n + m));
  const std::size_t pad = pt.empty() ? 0 : pt.back();
  if (pt.empty() || pad + 1 > pt.size()) return std::nullopt;
  for (std::size_t i = pt.size() - pad - 1; i < pt.size(); ++i)
    if (pt[i] != pad) return std::nullopt;
  pt.resize(pt.size() - pad - 1);
  if (!etm) {
    if (pt.size() < mac_len || !macOk(k, md, seq, rec, pt.data(), pt.size() - mac_len, pt.data() + pt.size() - mac_len))
      return std::nullopt;
    pt.resize(pt.size() - mac_len);
  }
  return std::string(pt.begin(), pt.end());
}

}  // namespace

TEST_CASE("HKDF-Expand-Label reproduces RFC 8448 section 3 traffic keys") {
  tls::CipherParams p;
  p.hash = EVP_sha256();
  p.key_len = 16;
  p.iv_len = 12;
  struct Row {
    const char* secret;
    const char* key;
    const char* iv;
  };
  const Row rows[] = {
      // server handshake
      {"b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38", "3fce516009c21727d0f2e4e86ee403bc",
       "5d313eb2671276ee13000b30"},
      // client handshake
      {"b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21", "dbfaa693d1762c5b666af5d950258d01",
       "5bd3c71b836e0b76bb73265f"},
      // server application
      {"a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643", "9f02283b6c9c07efc26bb9f2ac92e356",
       "cf782b88dd83549aadf1e984"},
      // client application
      {"9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5", "17422dda596ed5d9acd890e3c63f5051",
       "5b78923dee08579033e523d9"},
  };
  for (const auto& r : rows) {
    auto k = tls::tls13TrafficKeys(p, fromHex(r.secret));
    REQUIRE(k);
    CHECK(hex(k->key.bytes()) == r.key);
    CHECK(hex(k->iv.bytes()) == r.iv);
  }
}

TEST_CASE("TLS 1.3: the derived client application key decrypts the client's real record") {
  for (const char* suite : {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"}) {
    CAPTURE(suite);
    Pair pair = handshake(TLS1_3_VERSION, suite);
    auto params = tls::cipherParams(pair.cipher, TLS1_3_VERSION);
    REQUIRE(params);
    auto secret = pair.secrets.at("CLIENT_TRAFFIC_SECRET_0");
    auto k = tls::tls13TrafficKeys(*params, secret);
    REQUIRE(k);
    // RFC 8446 5.2/5.3: AAD is the record header; nonce is iv XOR seq (0 for the first record).
    REQUIRE(pair.record.size() > 5 + 16);
    std::vector<std::uint8_t> aad(pair.record.begin(), pair.record.begin() + 5);
    std::vector<std::uint8_t> ct(pair.record.begin() + 5, pair.record.end());
    auto pt = gcmOpen(k->key.bytes(), k->iv.bytes(), aad, ct);
    REQUIRE(pt);
    CHECK(pt->substr(0, 14) == "hello tlstrace");
    CHECK(pt->back() == 23);  // inner content type: application_data
    // A key update gives a different generation that does not open this record.
    auto next = tls::tls13NextSecret(params->hash, secret);
    REQUIRE(next);
    auto k2 = tls::tls13TrafficKeys(*params, next->bytes());
    CHECK_FALSE(gcmOpen(k2->key.bytes(), k2->iv.bytes(), aad, ct));
  }
}

TEST_CASE("TLS 1.2: the key block from the master secret decrypts the client's real record") {
  Pair pair = handshake(TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256");
  auto params = tls::cipherParams(pair.cipher, TLS1_2_VERSION);
  REQUIRE(params);
  CHECK(params->iv_len == 4);
  CHECK(params->mac_len == 0);
  auto kb = tls::tls12KeyBlock(*params, pair.secrets.at("CLIENT_RANDOM"), pair.client_random, pair.server_random);
  REQUIRE(kb);
  // RFC 5288 3: nonce = salt(4) || explicit(8); AAD = seq(8) || type || version || length.
  const auto& rec = pair.record;
  REQUIRE(rec.size() > 5 + 8 + 16);
  std::vector<std::uint8_t> nonce(kb->client_write.iv.bytes());
  nonce.insert(nonce.end(), rec.begin() + 5, rec.begin() + 13);
  // Sequence number 1: the client's Finished was record 0 under these keys.
  std::vector<std::uint8_t> aad = {0, 0, 0, 0, 0, 0, 0, 1, rec[0], rec[1], rec[2]};
  const std::size_t plain_len = rec.size() - 5 - 8 - 16;
  aad.push_back(static_cast<std::uint8_t>(plain_len >> 8));
  aad.push_back(static_cast<std::uint8_t>(plain_len));
  auto pt = gcmOpen(kb->client_write.key.bytes(), nonce, aad, std::vector<std::uint8_t>(rec.begin() + 13, rec.end()));
  REQUIRE(pt);
  CHECK(*pt == "hello tlstrace");
}

TEST_CASE("TLS 1.2 CBC suites get MAC keys and block-size IVs") {
  Pair pair = handshake(TLS1_2_VERSION, "ECDHE-ECDSA-AES256-SHA384");
  auto params = tls::cipherParams(pair.cipher, TLS1_2_VERSION);
  REQUIRE(params);
  CHECK(params->key_len == 32);
  CHECK(params->iv_len == 16);
  CHECK(params->mac_len == 48);
  auto kb = tls::tls12KeyBlock(*params, pair.secrets.at("CLIENT_RANDOM"), pair.client_random, pair.server_random);
  REQUIRE(kb);
  CHECK(kb->client_write.mac_key.bytes().size() == 48);
  CHECK(kb->server_write.iv.bytes().size() == 16);
  CHECK(kb->client_write.key.bytes() != kb->server_write.key.bytes());
}

TEST_CASE("TLS 1.2 CBC: the key block decrypts and authenticates the client's real record") {
  // ECDHE-ECDSA-AES128-SHA is one of the suites OpenSSL tags with the MD5-SHA1 handshake digest:
  // its TLS 1.2 key block must still come from P_SHA256 (RFC 5246 5).
  for (const char* suite : {"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"}) {
    for (const bool etm : {true, false}) {
      CAPTURE(suite);
      CAPTURE(etm);
      Pair pair = handshake(TLS1_2_VERSION, suite, etm ? 0 : SSL_OP_NO_ENCRYPT_THEN_MAC);
      auto params = tls::cipherParams(pair.cipher, TLS1_2_VERSION);
      REQUIRE(params);
      auto kb = tls::tls12KeyBlock(*params, pair.secrets.at("CLIENT_RANDOM"), pair.client_random, pair.server_random);
      REQUIRE(kb);
      const EVP_MD* mac = EVP_get_digestbynid(SSL_CIPHER_get_digest_nid(pair.cipher));
      REQUIRE(mac);
      // Sequence number 1: the client's Finished was record 0 under these keys.
      auto pt = cbcOpen(kb->client_write, mac, 1, pair.record, etm);
      REQUIRE(pt);
      CHECK(*pt == "hello tlstrace");
      CHECK_FALSE(cbcOpen(kb->client_write, mac, 2, pair.record, etm));  // the MAC covers the sequence number
      CHECK_FALSE(cbcOpen(kb->server_write, mac, 1, pair.record, etm));  // and the direction's key
    }
  }
}
