// Per-leg handshake decoding: turns each handshake message into the `body` of a tls.message
// event (events.md) and remembers what the hellos and key-exchange messages said, for the
// key-exchange analysis, the connection summary and the fingerprints. Pure: certificate
// summaries come from an injected function (the tls/ layer supplies OpenSSL's).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trace/body.h"
#include "trace/json.h"
#include "wire/byte_reader.h"
#include "wire/messages.h"

namespace tlstrace::trace {

struct MessageBody {
  std::string type;  // "ClientHello", "HelloRetryRequest", ...
  std::uint32_t length = 0;
  Body body;
};

using Blob = std::vector<std::uint8_t>;

// What a ClientHello offered, GREASE kept (fingerprints drop it themselves).
struct HelloOffer {
  bool seen = false;
  std::uint16_t legacy_version = 0;
  Blob random;
  std::string sni;
  std::vector<std::uint16_t> versions;  // supported_versions, or {legacy_version}
  std::vector<std::uint16_t> suites;
  std::vector<std::uint16_t> extensions;  // in order
  std::vector<std::uint16_t> groups;
  std::vector<std::uint8_t> point_formats;
  std::vector<std::uint16_t> sigalgs;
  std::vector<std::string> alpn;
  std::vector<std::pair<std::uint16_t, Blob>> key_shares;  // the latest ClientHello's
  // After a HelloRetryRequest: the first ClientHello's key share groups (key_shares has the retry's).
  bool retried = false;
  std::vector<std::uint16_t> first_key_share_groups;
  std::vector<std::uint8_t> psk_modes;
  bool psk = false;
  bool early_data = false;
  // Resumption offers: the legacy session ID's length, the TLS 1.2 session_ticket extension's
  // ticket (RFC 5077 3.2; absent when not sent, 0 bytes when only asking for one), and the
  // pre_shared_key identities (RFC 8446 4.2.11).
  std::size_t session_id_length = 0;
  std::optional<std::size_t> ticket_length;
  std::vector<wire::PskIdentityFacts> psk_identities;
};

// What the server chose.
struct ServerChoice {
  bool seen = false;
  std::uint16_t legacy_version = 0;
  std::uint16_t version = 0;
  std::uint16_t suite = 0;
  std::vector<std::uint16_t> extensions;  // ServerHello's, in order
  std::string alpn;
  std::uint16_t key_share_group = 0;
  Blob key_share;
  bool hrr = false;
  std::uint16_t hrr_group = 0;
  bool psk_selected = false;
  std::uint16_t psk_selected_identity = 0;
};

struct KexMaterial {
  wire::KexKind kind = wire::KexKind::Unknown;
  std::uint16_t group = 0;  // named group, 0 for TLS <= 1.2 DHE with explicit p/g
  Blob p, g;
  Blob server_public, client_public;
  bool has_encrypted_premaster = false;
  std::optional<std::uint16_t> server_sig_scheme;  // from ServerKeyExchange or CertificateVerify
  std::optional<std::uint16_t> client_sig_scheme;  // client CertificateVerify
  std::vector<std::uint32_t> ticket_lifetimes;
};

// What the pure decoder cannot do itself (X.509 parsing); the tls/ layer fills these in.
struct DerDecoders {
  std::function<Json(wire::Bytes der)> certificate;                // summary object
  std::function<std::string(wire::Bytes der)> distinguished_name;  // RFC 2253 text
};

class LegDecoder {
 public:
  explicit LegDecoder(DerDecoders der = {}) : der_(std::move(der)) {}
  LegDecoder(const LegDecoder& o);  // a deep copy (the state at one point of a handshake)
  LegDecoder& operator=(const LegDecoder& o);
  LegDecoder(LegDecoder&&) = default;
  LegDecoder& operator=(LegDecoder&&) = default;
  ~LegDecoder() = default;

  // `msg` is one whole handshake message; `from_client` is true when the TLS client of this leg
  // sent it (on the client leg: received by the proxy; on the upstream leg: sent by it).
  [[nodiscard]] MessageBody describe(wire::Bytes msg, bool from_client);

  [[nodiscard]] const HelloOffer& offer() const;
  [[nodiscard]] const ServerChoice& choice() const;
  [[nodiscard]] const KexMaterial& kex() const;
  [[nodiscard]] std::uint16_t version() const { return hs_ ? hs_->choice.version : released_version_; }
  // Lets go of the offer, choice and key-exchange material once nothing reads them any more (an
  // established leg whose summary part is rendered); later messages start them afresh, keeping
  // the negotiated version.
  void releaseHandshake();
  [[nodiscard]] const std::string& lastMessage() const { return last_message_; }
  [[nodiscard]] std::uint32_t keyUpdates(bool from_client) const {
    return from_client ? key_updates_client_ : key_updates_server_;
  }

 private:
  // One function per message type, each filling the body from the message's bytes (`msg` whole,
  // `body` after the 4-byte header). The extensions are decoded in decoder_extensions.cpp.
  void clientHello(wire::Bytes msg, wire::Bytes body, Body& out);
  void serverHello(wire::Bytes msg, wire::Bytes body, MessageBody& out);
  void encryptedExtensions(wire::Bytes msg, wire::Bytes body, Body& out);
  void certificate(wire::Bytes msg, wire::Bytes body, Body& out);
  void serverKeyExchange(wire::Bytes msg, wire::Bytes body, Body& out);
  void certificateRequest(wire::Bytes msg, wire::Bytes body, Body& out);
  void certificateVerify(wire::Bytes msg, wire::Bytes body, bool from_client, Body& out);
  void clientKeyExchange(wire::Bytes msg, wire::Bytes body, Body& out);
  void newSessionTicket(wire::Bytes msg, wire::Bytes body, Body& out);
  void keyUpdate(wire::Bytes msg, wire::Bytes body, bool from_client, Body& out);
  Body extensions(const std::vector<wire::Extension>& exts, bool from_client, bool hrr);
  Json certificateSummary(wire::Bytes der);

  struct Handshake {
    HelloOffer offer;
    ServerChoice choice;
    KexMaterial kex;
  };
  Handshake& hs();

  DerDecoders der_;
  std::unique_ptr<Handshake> hs_;  // on the heap so that an idle leg holds none of it
  std::uint16_t released_version_ = 0;
  std::string last_message_;
  std::uint32_t key_updates_client_ = 0;
  std::uint32_t key_updates_server_ = 0;
};

// {"id": n, "name": "..."} objects used throughout the schema.
[[nodiscard]] Body codeName(std::uint16_t id, std::string_view name);

}  // namespace tlstrace::trace
