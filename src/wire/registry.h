// IANA registry names for TLS code points. Decoders keep raw numbers; naming is this separate step.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace tlstrace::wire {

// RFC 8701: GREASE values are 0x?A?A with both bytes equal.
[[nodiscard]] constexpr bool isGrease(std::uint16_t v) { return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff); }

// Each returns "unknown" for a code point not in the table (and "GREASE" for GREASE values where
// the registry allows them).
[[nodiscard]] std::string_view cipherSuiteName(std::uint16_t id);
[[nodiscard]] std::string_view namedGroupName(std::uint16_t id);
[[nodiscard]] std::string_view signatureSchemeName(std::uint16_t id);
[[nodiscard]] std::string_view extensionName(std::uint16_t id);
[[nodiscard]] std::string_view alertName(std::uint8_t id);
[[nodiscard]] std::string_view handshakeTypeName(std::uint8_t id);
// RFC 5246 7.4.4 (TLS 1.2 CertificateRequest.certificate_types).
[[nodiscard]] std::string_view clientCertificateTypeName(std::uint8_t id);
// "TLSv1.2" etc.; "unknown" otherwise.
[[nodiscard]] std::string_view versionName(std::uint16_t v);
// Size in bits of a named group (curve size or DH prime size), 0 when unknown.
[[nodiscard]] int namedGroupBits(std::uint16_t id);
// Parses "TLSv1.2" / "1.2" etc.; returns 0 when not a version name.
[[nodiscard]] std::uint16_t versionFromName(std::string_view s);

}  // namespace tlstrace::wire
