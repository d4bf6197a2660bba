// Traffic keys from secrets: TLS 1.3 HKDF-Expand-Label (RFC 8446 7.1, 7.3, 7.2 key updates) and
// the TLS 1.2 key block (RFC 5246 6.3). Only ever printed with --log-secrets.
#pragma once
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace tlstrace::tls {

// Bytes that wipe themselves (OPENSSL_cleanse) when they go.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::vector<std::uint8_t> b) : b_(std::move(b)) {}
  SecretBytes(const SecretBytes&) = default;
  SecretBytes& operator=(const SecretBytes&) = default;
  SecretBytes(SecretBytes&&) noexcept = default;
  SecretBytes& operator=(SecretBytes&&) noexcept = default;
  ~SecretBytes();
  [[nodiscard]] const std::vector<std::uint8_t>& bytes() const { return b_; }
  [[nodiscard]] bool empty() const { return b_.empty(); }

 private:
  std::vector<std::uint8_t> b_;
};

struct CipherParams {
  const EVP_MD* hash = nullptr;  // HKDF / PRF hash; nullptr below TLS 1.2: the MD5/SHA-1 PRF
  std::size_t key_len = 0;
  std::size_t iv_len = 0;   // TLS 1.3: 12; TLS 1.2 AEAD: implicit part; CBC: block size; NULL: 0
  std::size_t mac_len = 0;  // TLS 1.2 non-AEAD only
  bool aead = false;
};
// The sizes and PRF/HKDF hash of `cipher` negotiated at `version` (TLS1_VERSION..TLS1_3_VERSION).
[[nodiscard]] std::optional<CipherParams> cipherParams(const SSL_CIPHER* cipher, std::uint16_t version);

struct TrafficKeys {
  SecretBytes key, iv, mac_key;
};

[[nodiscard]] std::optional<SecretBytes> hkdfExpandLabel(const EVP_MD* md, const std::vector<std::uint8_t>& secret,
                                                         std::string_view label,
                                                         const std::vector<std::uint8_t>& context, std::size_t len);
// RFC 8446 7.3: key = HKDF-Expand-Label(secret, "key", "", key_len), iv likewise with "iv".
[[nodiscard]] std::optional<TrafficKeys> tls13TrafficKeys(const CipherParams& p,
                                                          const std::vector<std::uint8_t>& secret);
// RFC 8446 7.2: application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length).
[[nodiscard]] std::optional<SecretBytes> tls13NextSecret(const EVP_MD* md, const std::vector<std::uint8_t>& secret);

struct KeyBlock {
  TrafficKeys client_write, server_write;
};
// PRF(secret, label, seed)[len]: P_<md> (RFC 5246 5), or with md == nullptr the TLS 1.0/1.1 PRF
// (RFC 2246 5, RFC 4346 5).
[[nodiscard]] std::optional<SecretBytes> tlsPrf(const EVP_MD* md, const std::vector<std::uint8_t>& secret,
                                                std::string_view label, const std::vector<std::uint8_t>& seed,
                                                std::size_t len);
// RFC 5246 6.3 (RFC 4346/2246 6.3 with the MD5/SHA-1 PRF when p.hash is nullptr).
[[nodiscard]] std::optional<KeyBlock> tls12KeyBlock(const CipherParams& p,
                                                    const std::vector<std::uint8_t>& master_secret,
                                                    const std::vector<std::uint8_t>& client_random,
                                                    const std::vector<std::uint8_t>& server_random);

// The traffic keys one NSS key-log line yields on `ssl` (with its pending, else current cipher):
// TLS <= 1.2 CLIENT_RANDOM gives both directions' key block; TLS 1.3 handshake and application
// traffic secrets give one direction each (other labels none). TLS 1.3 application secrets are
// kept in `app_client`/`app_server` for later key updates.
struct DerivedKeys {
  const char* direction = "";  // "client_write" | "server_write"
  const char* epoch = "";      // "handshake" | "application"
  TrafficKeys keys;
};
[[nodiscard]] std::vector<DerivedKeys> keysFromKeylog(SSL* ssl, std::string_view label,
                                                      const std::vector<std::uint8_t>& client_random,
                                                      const std::vector<std::uint8_t>& secret, SecretBytes& app_client,
                                                      SecretBytes& app_server);
// RFC 8446 7.2: advances `secret` (an application traffic secret) to the next generation and
// returns its keys; nullopt when `secret` is empty or the cipher is unknown.
[[nodiscard]] std::optional<TrafficKeys> nextGenerationKeys(SSL* ssl, SecretBytes& secret);

}  // namespace tlstrace::tls
