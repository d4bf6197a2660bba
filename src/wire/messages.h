// Decoders for the handshake messages after the hellos (RFC 8446 4.3-4.6, RFC 5246 7.4, RFC 4492
// 5.4/5.7, RFC 6066 8). Each takes the message body (header excluded) and borrows from it.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "wire/handshake.h"

namespace tlstrace::wire {

// Key exchange of a TLS <= 1.2 cipher suite, known from the ServerHello (RFC 5246 7.4.3).
enum class KexKind { Unknown, Rsa, Dhe, Ecdhe, Psk, DhePsk, EcdhePsk, RsaPsk, DhAnon, EcdhAnon, Tls13 };
[[nodiscard]] KexKind kexOfSuite(std::uint16_t suite);
[[nodiscard]] std::string_view kexName(KexKind k);

struct CertificateEntry {
  Bytes cert_data;                    // DER
  std::vector<Extension> extensions;  // TLS 1.3 only
};
struct Certificate {
  Bytes request_context;  // TLS 1.3 only
  std::vector<CertificateEntry> entries;
};
// RFC 8446 4.4.2 (tls13) and RFC 5246 7.4.2.
[[nodiscard]] Decoded<Certificate> decodeCertificate(Bytes body, bool tls13);

struct SignedParams {
  std::optional<std::uint16_t> scheme;  // absent before TLS 1.2 (RFC 4346)
  Bytes signature;
};

struct ServerKeyExchange {
  KexKind kind = KexKind::Unknown;
  // DHE (RFC 5246 7.4.3 ServerDHParams)
  Bytes p, g, ys;
  // ECDHE (RFC 8422 5.4 ServerECDHParams, named_curve only)
  std::uint8_t curve_type = 0;
  std::uint16_t named_curve = 0;
  Bytes point;
  Bytes psk_identity_hint;
  std::optional<SignedParams> signed_params;  // absent for anonymous and PSK kinds
};
[[nodiscard]] Decoded<ServerKeyExchange> decodeServerKeyExchange(Bytes body, KexKind kind);

struct ClientKeyExchange {
  KexKind kind = KexKind::Unknown;
  Bytes public_value;  // DH Yc or EC point
  Bytes encrypted_premaster;
  Bytes psk_identity;
};
// RFC 5246 7.4.7, RFC 8422 5.7, RFC 4279 2-4.
[[nodiscard]] Decoded<ClientKeyExchange> decodeClientKeyExchange(Bytes body, KexKind kind);

struct CertificateRequest {
  // TLS 1.3 (RFC 8446 4.3.2)
  Bytes request_context;
  std::vector<Extension> extensions;
  // TLS 1.2 (RFC 5246 7.4.4)
  std::vector<std::uint8_t> certificate_types;
  std::vector<std::uint16_t> signature_algorithms;
  std::vector<Bytes> certificate_authorities;  // DER distinguished names
};
// `version` is the negotiated one: it decides between the three layouts.
[[nodiscard]] Decoded<CertificateRequest> decodeCertificateRequest(Bytes body, std::uint16_t version);

// RFC 8446 4.4.3 / RFC 5246 7.4.8 (scheme absent before TLS 1.2).
[[nodiscard]] Decoded<SignedParams> decodeCertificateVerify(Bytes body);

struct NewSessionTicket {
  std::uint32_t lifetime = 0;
  std::uint32_t age_add = 0;  // TLS 1.3
  Bytes nonce;                // TLS 1.3
  Bytes ticket;
  std::vector<Extension> extensions;  // TLS 1.3
};
// RFC 8446 4.6.1 (tls13) and RFC 5077 3.3.
[[nodiscard]] Decoded<NewSessionTicket> decodeNewSessionTicket(Bytes body, bool tls13);

// RFC 8446 4.3.1.
[[nodiscard]] Decoded<std::vector<Extension>> decodeEncryptedExtensions(Bytes body);

struct CertificateStatus {
  std::uint8_t status_type = 0;  // 1 = ocsp
  Bytes response;
};
// RFC 6066 8.
[[nodiscard]] Decoded<CertificateStatus> decodeCertificateStatus(Bytes body);

struct PskIdentity {
  Bytes identity;
  std::uint32_t obfuscated_ticket_age = 0;
};
// What is kept of an offered identity once the message is gone.
struct PskIdentityFacts {
  std::size_t identity_length = 0;
  std::uint32_t obfuscated_ticket_age = 0;
};
struct PreSharedKey {
  std::vector<PskIdentity> identities;  // ClientHello form
  std::vector<Bytes> binders;
  std::optional<std::uint16_t> selected_identity;  // ServerHello form
};
// RFC 8446 4.2.11.
[[nodiscard]] std::optional<PreSharedKey> decodePreSharedKey(Bytes ext, bool from_client);

// RFC 8446 4.2.4: DistinguishedName authorities<3..2^16-1>.
[[nodiscard]] std::optional<std::vector<Bytes>> decodeCertificateAuthorities(Bytes ext);

// RFC 6066 4: max_fragment_length code -> bytes (0 when unknown).
[[nodiscard]] int maxFragmentLength(std::uint8_t code);

}  // namespace tlstrace::wire
