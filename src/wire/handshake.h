// Decoders for TLS handshake messages (RFC 8446 section 4, RFC 5246 section 7.4). Pure: they take
// bytes and return typed views that borrow from the input; naming is done by registry.h.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "wire/byte_reader.h"

namespace tlstrace::wire {

enum class Status { Ok, NeedMore, Malformed };

struct DecodeError {
  std::string what;
  std::size_t offset = 0;
};

template <typename T>
struct Decoded {
  Status status = Status::Malformed;
  T value{};
  std::size_t consumed = 0;
  DecodeError error{};
  [[nodiscard]] bool ok() const { return status == Status::Ok; }
};

// TLS ExtensionType values (IANA registry; RFC 8446 4.2 and the RFC cited where each is decoded).
enum class ExtensionType : std::uint16_t {
  ServerName = 0,
  MaxFragmentLength = 1,
  StatusRequest = 5,
  StatusRequestV2 = 17,
  SupportedGroups = 10,
  EcPointFormats = 11,
  SignatureAlgorithms = 13,
  UseSrtp = 14,
  Heartbeat = 15,
  Alpn = 16,
  SignedCertificateTimestamp = 18,
  Padding = 21,
  EncryptThenMac = 22,
  ExtendedMasterSecret = 23,
  CompressCertificate = 27,
  DelegatedCredentials = 34,
  RecordSizeLimit = 28,
  SessionTicket = 35,
  PreSharedKey = 41,
  EarlyData = 42,
  SupportedVersions = 43,
  Cookie = 44,
  PskKeyExchangeModes = 45,
  CertificateAuthorities = 47,
  PostHandshakeAuth = 49,
  SignatureAlgorithmsCert = 50,
  KeyShare = 51,
  EncryptedClientHello = 0xfe0d,
  ApplicationSettings = 17513,  // ALPS (draft-vvv-tls-alps)
  RenegotiationInfo = 0xff01,
};

// Handshake message types (RFC 8446 4, RFC 5246 7.4).
enum class HandshakeType : std::uint8_t {
  HelloRequest = 0,
  ClientHello = 1,
  ServerHello = 2,
  NewSessionTicket = 4,
  EndOfEarlyData = 5,
  EncryptedExtensions = 8,
  Certificate = 11,
  ServerKeyExchange = 12,
  CertificateRequest = 13,
  ServerHelloDone = 14,
  CertificateVerify = 15,
  ClientKeyExchange = 16,
  Finished = 20,
  CertificateStatus = 22,
  KeyUpdate = 24,
  MessageHash = 254,
};

// Record content types (RFC 8446 5.1).
enum class ContentType : std::uint8_t {
  ChangeCipherSpec = 20,
  Alert = 21,
  Handshake = 22,
  ApplicationData = 23,
};

struct Extension {
  std::uint16_t type = 0;
  Bytes data;
  std::size_t offset = 0;  // offset of the extension body within the message
};

// Results for the decoders of this folder.
template <typename T>
[[nodiscard]] Decoded<T> malformedAt(const ByteReader& r, std::string what) {
  Decoded<T> d;
  d.status = Status::Malformed;
  d.error = {std::move(what), r.offset()};
  return d;
}
template <typename T>
[[nodiscard]] Decoded<T> decodedOk(T value, std::size_t consumed) {
  Decoded<T> d;
  d.status = Status::Ok;
  d.value = std::move(value);
  d.consumed = consumed;
  return d;
}

// RFC 8446 4.2: Extension extensions<0..2^16-1>, each type at most once. Reads the whole
// length-prefixed list from `r`; false with `err` set when it is malformed.
[[nodiscard]] bool readExtensionList(ByteReader& r, std::vector<Extension>& out, DecodeError& err);

struct ClientHello {
  std::uint16_t legacy_version = 0;
  Bytes random;
  Bytes session_id;
  std::vector<std::uint16_t> cipher_suites;
  Bytes compression_methods;
  std::vector<Extension> extensions;
};

struct ServerHello {
  std::uint16_t legacy_version = 0;
  Bytes random;
  Bytes session_id;
  std::uint16_t cipher_suite = 0;
  std::uint8_t compression_method = 0;
  std::vector<Extension> extensions;
  bool hello_retry_request = false;  // RFC 8446 4.1.3: the special SHA-256("HelloRetryRequest") random
};

struct KeyShareEntry {
  std::uint16_t group = 0;
  Bytes key_exchange;
};

// Handshake message framing (RFC 8446 4): type(1) length(3) body.
struct HandshakeHeader {
  std::uint8_t type = 0;
  std::uint32_t length = 0;
};
[[nodiscard]] Decoded<HandshakeHeader> decodeHandshakeHeader(Bytes msg);

// `body` excludes the 4-byte handshake header.
[[nodiscard]] Decoded<ClientHello> decodeClientHello(Bytes body);
[[nodiscard]] Decoded<ServerHello> decodeServerHello(Bytes body);

// Extension body decoders (RFC 6066 3, RFC 7301 3.1, RFC 8446 4.2.x). nullopt when malformed.
[[nodiscard]] const Extension* findExtension(const std::vector<Extension>& exts, ExtensionType type);
[[nodiscard]] std::optional<std::vector<std::string>> decodeServerName(Bytes ext);
[[nodiscard]] std::optional<std::vector<std::string>> decodeAlpn(Bytes ext);
[[nodiscard]] std::optional<std::vector<std::uint16_t>> decodeU16List8(Bytes ext);   // supported_versions (CH)
[[nodiscard]] std::optional<std::vector<std::uint16_t>> decodeU16List16(Bytes ext);  // groups, sigalgs
[[nodiscard]] std::optional<std::vector<std::uint8_t>> decodeU8List(Bytes ext);      // point formats, psk modes
[[nodiscard]] std::optional<std::vector<KeyShareEntry>> decodeKeyShareClient(Bytes ext);
[[nodiscard]] std::optional<KeyShareEntry> decodeKeyShareServer(Bytes ext);
[[nodiscard]] std::optional<std::uint16_t> decodeU16(Bytes ext);  // SH supported_versions, HRR key_share

// The first bytes a client sends: is it a TLS ClientHello, and is all of it here yet?
struct HelloPeek {
  enum class Kind { NeedMore, NotTls, ClientHello, Malformed } kind = Kind::NeedMore;
  std::vector<std::uint8_t> message;  // the reassembled handshake message (header included)
  std::string error;
};
// Reassembles the ClientHello across handshake records (RFC 8446 5.1). Caps at `limit` bytes.
[[nodiscard]] HelloPeek peekClientHello(Bytes stream, std::size_t limit = 64 * 1024);

}  // namespace tlstrace::wire
