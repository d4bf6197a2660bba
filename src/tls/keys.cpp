#include "tls/keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>

#include <string>

namespace tlstrace::tls {

SecretBytes::~SecretBytes() {
  if (!b_.empty()) OPENSSL_cleanse(b_.data(), b_.size());
}

namespace {

// The PRF hash of a TLS 1.2 connection. Suites defined before TLS 1.2 use P_SHA256 there (RFC 5246
// 5); OpenSSL reports their handshake digest as MD5-SHA1, its TLS 1.0/1.1 PRF, and swaps in SHA-256
// only inside the SSL object, so that name must not reach the PRF (it selects the MD5/SHA-1 split).
const EVP_MD* tls12PrfHash(const SSL_CIPHER* cipher) {
  const EVP_MD* md = SSL_CIPHER_get_handshake_digest(cipher);
  if (!md || EVP_MD_get_type(md) == NID_md5_sha1) return EVP_sha256();
  return md;
}

}  // namespace

std::optional<CipherParams> cipherParams(const SSL_CIPHER* cipher, std::uint16_t version) {
  if (!cipher) return std::nullopt;
  CipherParams p;
  if (version >= TLS1_3_VERSION) p.hash = SSL_CIPHER_get_handshake_digest(cipher);
  else if (version == TLS1_2_VERSION) p.hash = tls12PrfHash(cipher);
  // else nullptr: the MD5/SHA-1 PRF of RFC 2246 5 / RFC 4346 5.
  const int cnid = SSL_CIPHER_get_cipher_nid(cipher);
  // NULL-encryption suites (RFC 5246 A.5, e.g. TLS_RSA_WITH_NULL_SHA) have a MAC key and nothing else.
  const EVP_CIPHER* c = cnid == NID_undef ? EVP_enc_null() : EVP_get_cipherbynid(cnid);
  if (!c || (version >= TLS1_3_VERSION && !p.hash)) return std::nullopt;
  p.aead = SSL_CIPHER_is_aead(cipher) == 1;
  p.key_len = static_cast<std::size_t>(EVP_CIPHER_get_key_length(c));
  if (version >= TLS1_3_VERSION) {
    p.iv_len = 12;
    return p;
  }
  const int mode = EVP_CIPHER_get_mode(c);
  if (mode == EVP_CIPH_GCM_MODE || mode == EVP_CIPH_CCM_MODE) {
    p.iv_len = 4;  // RFC 5288 3 / RFC 6655 3: the implicit salt; the rest is explicit per record
  } else if (cnid == NID_chacha20_poly1305) {
    p.iv_len = 12;  // RFC 7905 2
  } else {
    // CBC: the key block holds a block-size IV (RFC 5246 6.3 and appendix C, as OpenSSL derives it);
    // TLS 1.0 uses it for the first record, TLS 1.1+ send an explicit IV in each record instead.
    p.iv_len = static_cast<std::size_t>(EVP_CIPHER_get_iv_length(c));
    const EVP_MD* mac = EVP_get_digestbynid(SSL_CIPHER_get_digest_nid(cipher));
    if (mac) p.mac_len = static_cast<std::size_t>(EVP_MD_get_size(mac));
  }
  return p;
}

std::optional<SecretBytes> hkdfExpandLabel(const EVP_MD* md, const std::vector<std::uint8_t>& secret,
                                           std::string_view label, const std::vector<std::uint8_t>& context,
                                           std::size_t len) {
  // RFC 8446 7.1: HkdfLabel { uint16 length; opaque label<7..255> = "tls13 " + Label; opaque context<0..255>; }
  const std::string full = "tls13 " + std::string(label);
  if (full.size() > 255 || context.size() > 255 || len > 0xffff) return std::nullopt;
  std::vector<std::uint8_t> info;
  info.reserve(4 + full.size() + context.size());  // (also keeps GCC 12's -O3 stringop-overflow quiet)
  info.push_back(static_cast<std::uint8_t>(len >> 8));
  info.push_back(static_cast<std::uint8_t>(len & 0xff));
  info.push_back(static_cast<std::uint8_t>(full.size()));
  info.insert(info.end(), full.begin(), full.end());
  info.push_back(static_cast<std::uint8_t>(context.size()));
  info.insert(info.end(), context.begin(), context.end());

  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  EVP_KDF_CTX* ctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
  EVP_KDF_free(kdf);
  if (!ctx) return std::nullopt;
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(EVP_MD_get0_name(md)), 0),
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(secret.data()), secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()), OSSL_PARAM_END};
  std::vector<std::uint8_t> out(len);
  const bool ok = EVP_KDF_derive(ctx, out.data(), out.size(), params) == 1;
  EVP_KDF_CTX_free(ctx);
  if (!ok) return std::nullopt;
  return SecretBytes(std::move(out));
}

std::optional<TrafficKeys> tls13TrafficKeys(const CipherParams& p, const std::vector<std::uint8_t>& secret) {
  auto key = hkdfExpandLabel(p.hash, secret, "key", {}, p.key_len);
  auto iv = hkdfExpandLabel(p.hash, secret, "iv", {}, p.iv_len);
  if (!key || !iv) return std::nullopt;
  TrafficKeys k;
  k.key = std::move(*key);
  k.iv = std::move(*iv);
  return k;
}

std::optional<SecretBytes> tls13NextSecret(const EVP_MD* md, const std::vector<std::uint8_t>& secret) {
  return hkdfExpandLabel(md, secret, "traffic upd", {}, static_cast<std::size_t>(EVP_MD_get_size(md)));
}

std::optional<SecretBytes> tlsPrf(const EVP_MD* md, const std::vector<std::uint8_t>& secret, std::string_view label,
                                  const std::vector<std::uint8_t>& seed, std::size_t len) {
  // PRF(secret, label, seed) = P_hash(secret, label + seed) (RFC 5246 5); without a hash the TLS
  // 1.0/1.1 PRF, P_MD5 over one half of the secret XOR P_SHA-1 over the other (RFC 2246 5), which
  // OpenSSL's TLS1-PRF computes for the digest name "MD5-SHA1".
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "TLS1-PRF", nullptr);
  EVP_KDF_CTX* ctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
  EVP_KDF_free(kdf);
  if (!ctx) return std::nullopt;
  const char* digest = md ? EVP_MD_get0_name(md) : "MD5-SHA1";
  std::vector<std::uint8_t> label_bytes(label.begin(), label.end());
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digest), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, const_cast<std::uint8_t*>(secret.data()), secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, label_bytes.data(), label_bytes.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, const_cast<std::uint8_t*>(seed.data()), seed.size()),
      OSSL_PARAM_END};
  std::vector<std::uint8_t> out(len);
  const bool ok = EVP_KDF_derive(ctx, out.data(), out.size(), params) == 1;
  EVP_KDF_CTX_free(ctx);
  if (!ok) return std::nullopt;
  return SecretBytes(std::move(out));
}

std::optional<KeyBlock> tls12KeyBlock(const CipherParams& p, const std::vector<std::uint8_t>& master_secret,
                                      const std::vector<std::uint8_t>& client_random,
                                      const std::vector<std::uint8_t>& server_random) {
  // key_block = PRF(master_secret, "key expansion", server_random + client_random), cut into
  // client MAC, server MAC, client key, server key, client IV, server IV (RFC 5246 6.3).
  std::vector<std::uint8_t> seed(server_random);
  seed.insert(seed.end(), client_random.begin(), client_random.end());
  auto block = tlsPrf(p.hash, master_secret, "key expansion", seed, 2 * (p.mac_len + p.key_len + p.iv_len));
  if (!block) return std::nullopt;
  const auto& b = block->bytes();
  std::size_t off = 0;
  auto take = [&](std::size_t n) {
    SecretBytes s(std::vector<std::uint8_t>(b.begin() + static_cast<std::ptrdiff_t>(off),
                                            b.begin() + static_cast<std::ptrdiff_t>(off + n)));
    off += n;
    return s;
  };
  KeyBlock kb;
  kb.client_write.mac_key = take(p.mac_len);
  kb.server_write.mac_key = take(p.mac_len);
  kb.client_write.key = take(p.key_len);
  kb.server_write.key = take(p.key_len);
  kb.client_write.iv = take(p.iv_len);
  kb.server_write.iv = take(p.iv_len);
  return kb;
}

std::vector<DerivedKeys> keysFromKeylog(SSL* ssl, std::string_view label,
                                        const std::vector<std::uint8_t>& client_random,
                                        const std::vector<std::uint8_t>& secret, SecretBytes& app_client,
                                        SecretBytes& app_server) {
  std::vector<DerivedKeys> out;
  const SSL_CIPHER* cipher = SSL_get_pending_cipher(ssl);
  if (!cipher) cipher = SSL_get_current_cipher(ssl);
  const auto version = static_cast<std::uint16_t>(SSL_version(ssl));
  auto params = cipherParams(cipher, version);
  if (!params) return out;
  if (label == "CLIENT_RANDOM") {  // TLS <= 1.2: the master secret
    std::vector<std::uint8_t> server_random(SSL3_RANDOM_SIZE);
    server_random.resize(SSL_get_server_random(ssl, server_random.data(), server_random.size()));
    if (auto kb = tls12KeyBlock(*params, secret, client_random, server_random)) {
      out.push_back({"client_write", "application", std::move(kb->client_write)});
      out.push_back({"server_write", "application", std::move(kb->server_write)});
    }
    return out;
  }
  const bool client = label.starts_with("CLIENT_");
  const bool handshake = label.find("HANDSHAKE") != std::string_view::npos;
  const bool app = label.ends_with("TRAFFIC_SECRET_0");
  if (!handshake && !app) return out;  // EXPORTER_SECRET, EARLY_EXPORTER_SECRET
  if (app) (client ? app_client : app_server) = SecretBytes(secret);
  if (auto k = tls13TrafficKeys(*params, secret))
    out.push_back({client ? "client_write" : "server_write", handshake ? "handshake" : "application", std::move(*k)});
  return out;
}

std::optional<TrafficKeys> nextGenerationKeys(SSL* ssl, SecretBytes& secret) {
  if (secret.empty()) return std::nullopt;
  auto params = cipherParams(SSL_get_current_cipher(ssl), TLS1_3_VERSION);
  if (!params) return std::nullopt;
  auto next = tls13NextSecret(params->hash, secret.bytes());
  if (!next) return std::nullopt;
  secret = std::move(*next);
  return tls13TrafficKeys(*params, secret.bytes());
}

}  // namespace tlstrace::tls
