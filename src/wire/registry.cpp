#include "wire/registry.h"

#include <algorithm>
#include <array>
#include <utility>

namespace tlstrace::wire {
namespace {

template <typename K>
struct Row {
  K id;
  std::string_view name;
};

template <typename K, std::size_t N>
std::string_view lookup(const std::array<Row<K>, N>& table, K id) {
  for (const auto& r : table)
    if (r.id == id) return r.name;
  return "unknown";
}

constexpr Row<std::uint16_t> kCipherRows[] = {
#include "wire/cipher_suites.inc"
};
// Sorted by code, so a lookup is a binary search (a ClientHello names dozens of suites).
static_assert(std::is_sorted(std::begin(kCipherRows), std::end(kCipherRows),
                             [](const auto& a, const auto& b) { return a.id < b.id; }));

// RFC 8446 4.2.7, RFC 7919, RFC 8422, RFC 9189 and the IANA TLS Supported Groups registry.
constexpr std::array<Row<std::uint16_t>, 22> kGroups{{
    {1, "sect163k1"},
    {2, "sect163r1"},
    {3, "sect163r2"},
    {23, "secp256r1"},
    {24, "secp384r1"},
    {25, "secp521r1"},
    {22, "secp256k1"},
    {21, "secp224r1"},
    {19, "secp192r1"},
    {26, "brainpoolP256r1"},
    {27, "brainpoolP384r1"},
    {28, "brainpoolP512r1"},
    {29, "x25519"},
    {30, "x448"},
    {256, "ffdhe2048"},
    {257, "ffdhe3072"},
    {258, "ffdhe4096"},
    {259, "ffdhe6144"},
    {260, "ffdhe8192"},
    {0x6399, "X25519Kyber768Draft00"},
    {0x11EC, "X25519MLKEM768"},
    {0xFE30, "X25519Kyber512Draft00"},
}};

constexpr std::array<std::pair<std::uint16_t, int>, 19> kGroupBits{{
    {1, 163},    {2, 163},    {3, 163},    {19, 192},   {21, 224},   {22, 256}, {23, 256},
    {24, 384},   {25, 521},   {26, 256},   {27, 384},   {28, 512},   {29, 255}, {30, 448},
    {256, 2048}, {257, 3072}, {258, 4096}, {259, 6144}, {260, 8192},
}};

// RFC 8446 4.2.3 and the IANA TLS SignatureScheme registry.
constexpr std::array<Row<std::uint16_t>, 30> kSigSchemes{{
    {0x0401, "rsa_pkcs1_sha256"},
    {0x0501, "rsa_pkcs1_sha384"},
    {0x0601, "rsa_pkcs1_sha512"},
    {0x0403, "ecdsa_secp256r1_sha256"},
    {0x0503, "ecdsa_secp384r1_sha384"},
    {0x0603, "ecdsa_secp521r1_sha512"},
    {0x0804, "rsa_pss_rsae_sha256"},
    {0x0805, "rsa_pss_rsae_sha384"},
    {0x0806, "rsa_pss_rsae_sha512"},
    {0x0807, "ed25519"},
    {0x0808, "ed448"},
    {0x0809, "rsa_pss_pss_sha256"},
    {0x080a, "rsa_pss_pss_sha384"},
    {0x080b, "rsa_pss_pss_sha512"},
    {0x0201, "rsa_pkcs1_sha1"},
    {0x0203, "ecdsa_sha1"},
    {0x0301, "rsa_pkcs1_sha224"},
    {0x0303, "ecdsa_sha224"},
    {0x0302, "dsa_sha224"},
    {0x0202, "dsa_sha1"},
    {0x0402, "dsa_sha256"},
    {0x0502, "dsa_sha384"},
    {0x0602, "dsa_sha512"},
    {0x081a, "ecdsa_brainpoolP256r1tls13_sha256"},
    {0x081b, "ecdsa_brainpoolP384r1tls13_sha384"},
    {0x081c, "ecdsa_brainpoolP512r1tls13_sha512"},
    {0x0101, "rsa_pkcs1_md5"},
    {0x0103, "ecdsa_md5"},
    {0x0420, "rsa_pkcs1_sha256_legacy"},
    {0x0704, "eccsi_sha256"},
}};

// IANA TLS ExtensionType Values.
constexpr std::array<Row<std::uint16_t>, 44> kExtensions{{
    {0, "server_name"},
    {1, "max_fragment_length"},
    {2, "client_certificate_url"},
    {3, "trusted_ca_keys"},
    {4, "truncated_hmac"},
    {5, "status_request"},
    {6, "user_mapping"},
    {7, "client_authz"},
    {8, "server_authz"},
    {9, "cert_type"},
    {10, "supported_groups"},
    {11, "ec_point_formats"},
    {12, "srp"},
    {13, "signature_algorithms"},
    {14, "use_srtp"},
    {15, "heartbeat"},
    {16, "application_layer_protocol_negotiation"},
    {17, "status_request_v2"},
    {18, "signed_certificate_timestamp"},
    {19, "client_certificate_type"},
    {20, "server_certificate_type"},
    {21, "padding"},
    {22, "encrypt_then_mac"},
    {23, "extended_master_secret"},
    {24, "token_binding"},
    {25, "cached_info"},
    {27, "compress_certificate"},
    {28, "record_size_limit"},
    {34, "delegated_credential"},
    {35, "session_ticket"},
    {41, "pre_shared_key"},
    {42, "early_data"},
    {43, "supported_versions"},
    {44, "cookie"},
    {45, "psk_key_exchange_modes"},
    {47, "certificate_authorities"},
    {48, "oid_filters"},
    {49, "post_handshake_auth"},
    {50, "signature_algorithms_cert"},
    {51, "key_share"},
    {57, "quic_transport_parameters"},
    {17513, "application_settings"},
    {0xfe0d, "encrypted_client_hello"},
    {0xff01, "renegotiation_info"},
}};

// RFC 8446 6 and RFC 5246 7.2.
constexpr std::array<Row<std::uint8_t>, 31> kAlerts{{
    {0, "close_notify"},
    {10, "unexpected_message"},
    {20, "bad_record_mac"},
    {21, "decryption_failed"},
    {22, "record_overflow"},
    {30, "decompression_failure"},
    {40, "handshake_failure"},
    {41, "no_certificate"},
    {42, "bad_certificate"},
    {43, "unsupported_certificate"},
    {44, "certificate_revoked"},
    {45, "certificate_expired"},
    {46, "certificate_unknown"},
    {47, "illegal_parameter"},
    {48, "unknown_ca"},
    {49, "access_denied"},
    {50, "decode_error"},
    {51, "decrypt_error"},
    {60, "export_restriction"},
    {70, "protocol_version"},
    {71, "insufficient_security"},
    {80, "internal_error"},
    {86, "inappropriate_fallback"},
    {90, "user_canceled"},
    {100, "no_renegotiation"},
    {109, "missing_extension"},
    {110, "unsupported_extension"},
    {112, "unrecognized_name"},
    {113, "bad_certificate_status_response"},
    {115, "unknown_psk_identity"},
    {116, "certificate_required"},
}};

// RFC 8446 4 and RFC 5246 7.4 HandshakeType.
constexpr std::array<Row<std::uint8_t>, 20> kHandshakeTypes{{
    {0, "HelloRequest"},           {1, "ClientHello"},         {2, "ServerHello"},
    {3, "HelloVerifyRequest"},     {4, "NewSessionTicket"},    {5, "EndOfEarlyData"},
    {6, "HelloRetryRequest"},      {8, "EncryptedExtensions"}, {11, "Certificate"},
    {12, "ServerKeyExchange"},     {13, "CertificateRequest"}, {14, "ServerHelloDone"},
    {15, "CertificateVerify"},     {16, "ClientKeyExchange"},  {20, "Finished"},
    {21, "CertificateURL"},        {22, "CertificateStatus"},  {24, "KeyUpdate"},
    {25, "CompressedCertificate"}, {254, "MessageHash"},
}};

}  // namespace

std::string_view cipherSuiteName(std::uint16_t id) {
  if (isGrease(id)) return "GREASE";
  const auto* it = std::lower_bound(std::begin(kCipherRows), std::end(kCipherRows), id,
                                    [](const auto& r, std::uint16_t v) { return r.id < v; });
  return it != std::end(kCipherRows) && it->id == id ? it->name : std::string_view("unknown");
}
std::string_view namedGroupName(std::uint16_t id) {
  if (isGrease(id)) return "GREASE";
  return lookup(kGroups, id);
}
std::string_view signatureSchemeName(std::uint16_t id) {
  if (isGrease(id)) return "GREASE";
  return lookup(kSigSchemes, id);
}
std::string_view extensionName(std::uint16_t id) {
  if (isGrease(id)) return "GREASE";
  return lookup(kExtensions, id);
}
// RFC 5246 7.4.4 ClientCertificateType, with RFC 8422 5.5 (ECDSA) and RFC 9189 (GOST); the
// IANA registry marks 5, 6 and 20 reserved.
constexpr std::array<Row<std::uint8_t>, 12> kClientCertificateTypes{{
    {1, "rsa_sign"},
    {2, "dss_sign"},
    {3, "rsa_fixed_dh"},
    {4, "dss_fixed_dh"},
    {5, "rsa_ephemeral_dh"},
    {6, "dss_ephemeral_dh"},
    {20, "fortezza_dms"},
    {64, "ecdsa_sign"},
    {65, "rsa_fixed_ecdh"},
    {66, "ecdsa_fixed_ecdh"},
    {67, "gost_sign256"},
    {68, "gost_sign512"},
}};

std::string_view alertName(std::uint8_t id) { return lookup(kAlerts, id); }
std::string_view clientCertificateTypeName(std::uint8_t id) { return lookup(kClientCertificateTypes, id); }
std::string_view handshakeTypeName(std::uint8_t id) { return lookup(kHandshakeTypes, id); }

std::string_view versionName(std::uint16_t v) {
  switch (v) {
    case 0x0300: return "SSLv3";
    case 0x0301: return "TLSv1.0";
    case 0x0302: return "TLSv1.1";
    case 0x0303: return "TLSv1.2";
    case 0x0304: return "TLSv1.3";
    case 0x0002: return "SSLv2";
    default: return isGrease(v) ? "GREASE" : "unknown";
  }
}

std::uint16_t versionFromName(std::string_view s) {
  if (s.starts_with("TLSv")) s.remove_prefix(4);
  if (s == "1.0" || s == "1") return 0x0301;
  if (s == "1.1") return 0x0302;
  if (s == "1.2") return 0x0303;
  if (s == "1.3") return 0x0304;
  return 0;
}

int namedGroupBits(std::uint16_t id) {
  for (const auto& [g, bits] : kGroupBits)
    if (g == id) return bits;
  return 0;
}

}  // namespace tlstrace::wire
