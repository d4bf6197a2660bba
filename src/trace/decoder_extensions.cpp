// The decoded fields of each extension (RFC 8446 4.2 and the RFCs each extension comes from): one
// function per extension, or per family of extensions of the same shape, and the switch that
// picks it.
#include "trace/decoder_internal.h"
#include "wire/byte_reader.h"
#include "wire/handshake.h"
#include "wire/messages.h"
#include "wire/registry.h"

namespace tlstrace::trace::detail {

using namespace tlstrace::wire;

namespace {

std::string_view pointFormatName(std::uint8_t f) {
  switch (f) {
    case 0: return "uncompressed";
    case 1: return "ansiX962_compressed_prime";
    case 2: return "ansiX962_compressed_char2";
    default: return "unknown";
  }
}

std::string_view pskModeName(std::uint8_t m) {
  switch (m) {
    case 0: return "psk_ke";
    case 1: return "psk_dhe_ke";
    default: return "unknown";
  }
}

std::string_view certCompressionName(std::uint16_t a) {
  switch (a) {
    case 1: return "zlib";
    case 2: return "brotli";
    case 3: return "zstd";
    default: return "unknown";
  }
}

// One extension being decoded: its bytes, who sent it and in which message, and its JSON object.
struct Ext {
  Bytes data;
  bool from_client;
  bool hrr;
  const DerDecoders& der;
  Body& out;

  [[nodiscard]] ByteReader reader() const { return ByteReader(data); }
  void fail(const char* what) const {
    out.set("error", std::string("malformed ") + what);
    out.set("raw", toHex(data, kRawCap));
  }
};

// server_name, RFC 6066 3 (the server's acknowledgement is empty)
void serverName(const Ext& x) {
  if (x.data.empty()) return;
  if (auto v = decodeServerName(x.data)) x.out.set("names", strings(*v));
  else x.fail("server_name");
}

// max_fragment_length, RFC 6066 4
void maxFragmentLength(const Ext& x) {
  ByteReader r = x.reader();
  std::uint8_t code = 0;
  if (!r.readU8(code) || !r.empty()) return x.fail("max_fragment_length");
  x.out.set("code", static_cast<int>(code));
  x.out.set("bytes", wire::maxFragmentLength(code));
}

// status_request, RFC 6066 8
void statusRequest(const Ext& x) {
  if (x.data.empty()) return;
  ByteReader r = x.reader();
  std::uint8_t type = 0;
  ByteReader ids, exts;
  if (!r.readU8(type)) return x.fail("status_request");
  x.out.set("status_type", type == 1 ? "ocsp" : std::to_string(type));
  if (type == 1 && x.from_client) {
    if (!r.readU16Prefixed(ids) || !r.readU16Prefixed(exts) || !r.empty()) return x.fail("status_request");
    x.out.set("responder_id_list_length", ids.remaining());
    x.out.set("request_extensions_length", exts.remaining());
  } else if (type == 1) {  // TLS 1.3 Certificate entry: a CertificateStatus body
    ByteReader resp;
    if (!r.readU24Prefixed(resp) || !r.empty()) return x.fail("status_request");
    x.out.set("ocsp_response_length", resp.remaining());
  }
}

// status_request_v2, RFC 6961 2.2: a list of {status_type, request_length, request}; for ocsp(1)
// and ocsp_multi(2) the request is RFC 6066's OCSPStatusRequest.
void statusRequestV2(const Ext& x) {
  if (x.data.empty()) return;  // the server's acknowledgement
  ByteReader r = x.reader(), list;
  if (!r.readU16Prefixed(list) || !r.empty()) return x.fail("status_request_v2");
  Body items = Body::array();
  while (!list.empty()) {
    std::uint8_t type = 0;
    ByteReader req, ids, exts;
    if (!list.readU8(type) || !list.readU16Prefixed(req)) return x.fail("status_request_v2");
    Body item = Body::object();
    item.set("status_type", type == 1 ? "ocsp" : type == 2 ? "ocsp_multi" : std::to_string(type));
    if (type == 1 || type == 2) {
      if (!req.readU16Prefixed(ids) || !req.readU16Prefixed(exts) || !req.empty()) return x.fail("status_request_v2");
      item.set("responder_id_list_length", ids.remaining());
      item.set("request_extensions_length", exts.remaining());
    }
    items.push(item);
  }
  x.out.set("requests", items);
}

// supported_groups, RFC 8446 4.2.7
void supportedGroups(const Ext& x) {
  if (auto v = decodeU16List16(x.data)) x.out.set("groups", u16Names(*v, namedGroupName));
  else x.fail("supported_groups");
}

// ec_point_formats, RFC 8422 5.1.2
void ecPointFormats(const Ext& x) {
  auto v = decodeU8List(x.data);
  if (!v) return x.fail("ec_point_formats");
  Body a = Body::array();
  for (auto f : *v) a.push(std::string(pointFormatName(f)));
  x.out.set("formats", a);
}

// signature_algorithms(_cert), RFC 8446 4.2.3
void signatureAlgorithms(const Ext& x) {
  if (auto v = decodeU16List16(x.data)) x.out.set("schemes", u16Names(*v, signatureSchemeName));
  else x.fail("signature_algorithms");
}

// use_srtp, RFC 5764 4.1.1
void useSrtp(const Ext& x) {
  ByteReader r = x.reader();
  ByteReader profiles, mki;
  if (!r.readU16Prefixed(profiles) || !r.readU8Prefixed(mki) || !r.empty() || profiles.remaining() % 2)
    return x.fail("use_srtp");
  Body a = Body::array();
  while (!profiles.empty()) {
    std::uint16_t p = 0;
    (void)profiles.readU16(p);
    a.push(static_cast<int>(p));
  }
  x.out.set("profiles", a);
  x.out.set("mki", toHex(mki.rest()));
}

// heartbeat, RFC 6520 2
void heartbeat(const Ext& x) {
  ByteReader r = x.reader();
  std::uint8_t mode = 0;
  if (!r.readU8(mode) || !r.empty()) return x.fail("heartbeat");
  x.out.set("mode", mode == 1 ? "peer_allowed_to_send" : mode == 2 ? "peer_not_allowed_to_send" : "unknown");
}

// ALPN, RFC 7301 3.1
void alpn(const Ext& x) {
  if (auto v = decodeAlpn(x.data)) x.out.set("protocols", strings(*v));
  else x.fail("ALPN");
}

// application_settings (ALPS draft): the same list shape as ALPN
void applicationSettings(const Ext& x) {
  if (!x.from_client) return;
  if (auto v = decodeAlpn(x.data)) x.out.set("protocols", strings(*v));
  else x.fail("application_settings");
}

// signed_certificate_timestamp, RFC 6962 3.3
void signedCertificateTimestamp(const Ext& x) {
  if (x.data.empty()) return;
  ByteReader r = x.reader();
  ByteReader list;
  if (!r.readU16Prefixed(list) || !r.empty()) return x.fail("signed_certificate_timestamp");
  int n = 0;
  while (!list.empty()) {
    ByteReader sct;
    if (!list.readU16Prefixed(sct)) return x.fail("signed_certificate_timestamp");
    ++n;
  }
  x.out.set("sct_count", n);
}

// padding, RFC 7685
void padding(const Ext& x) {
  bool zero = true;
  for (auto b : x.data) zero = zero && b == 0;
  x.out.set("all_zero", zero);
}

// encrypt_then_mac, extended_master_secret, post_handshake_auth: empty by definition
void mustBeEmpty(const Ext& x) {
  if (!x.data.empty()) x.fail("extension that must be empty");
}

// compress_certificate, RFC 8879 3
void compressCertificate(const Ext& x) {
  ByteReader r = x.reader();
  ByteReader list;
  if (!r.readU8Prefixed(list) || !r.empty() || list.remaining() % 2 || list.empty())
    return x.fail("compress_certificate");
  Body a = Body::array();
  while (!list.empty()) {
    std::uint16_t alg = 0;
    (void)list.readU16(alg);
    a.pushCode(alg, certCompressionName(alg));
  }
  x.out.set("algorithms", a);
}

// record_size_limit, RFC 8449 4
void recordSizeLimit(const Ext& x) {
  if (auto v = decodeU16(x.data)) x.out.set("limit", static_cast<int>(*v));
  else x.fail("record_size_limit");
}

// session_ticket, RFC 5077 3.2: empty asks for a new ticket
void sessionTicket(const Ext& x) { x.out.set("ticket_length", x.data.size()); }

// pre_shared_key, RFC 8446 4.2.11
void preSharedKey(const Ext& x) {
  auto psk = decodePreSharedKey(x.data, x.from_client);
  if (!psk) return x.fail("pre_shared_key");
  if (psk->selected_identity) {
    x.out.set("selected_identity", static_cast<int>(*psk->selected_identity));
    return;
  }
  Body ids = Body::array();
  for (const auto& id : psk->identities) {
    Body o = Body::object();
    o.set("identity_length", id.identity.size());
    o.set("identity", toHex(id.identity, 64));
    o.set("obfuscated_ticket_age", static_cast<unsigned long long>(id.obfuscated_ticket_age));
    ids.push(o);
  }
  x.out.set("identities", ids);
  Body binders = Body::array();
  for (const auto& b : psk->binders) binders.push(toHex(b));
  x.out.set("binders", binders);
}

// early_data, RFC 8446 4.2.10: max_early_data_size only in NewSessionTicket
void earlyData(const Ext& x) {
  if (x.data.empty()) return;
  ByteReader r = x.reader();
  std::uint32_t max = 0;
  if (!r.readU32(max) || !r.empty()) return x.fail("early_data");
  x.out.set("max_early_data_size", static_cast<unsigned long long>(max));
}

// supported_versions, RFC 8446 4.2.1
void supportedVersions(const Ext& x) {
  if (x.from_client) {
    if (auto v = decodeU16List8(x.data)) x.out.set("versions", nameList(*v, versionName));
    else x.fail("supported_versions");
  } else if (auto v = decodeU16(x.data)) {
    x.out.set("selected_version", std::string(versionName(*v)));
  } else {
    x.fail("supported_versions");
  }
}

// cookie, RFC 8446 4.2.2
void cookie(const Ext& x) {
  ByteReader r = x.reader();
  ByteReader c;
  if (!r.readU16Prefixed(c) || c.empty() || !r.empty()) return x.fail("cookie");
  x.out.set("cookie_length", c.remaining());
  x.out.set("cookie", toHex(c.rest(), 64));
}

// psk_key_exchange_modes, RFC 8446 4.2.9
void pskKeyExchangeModes(const Ext& x) {
  auto v = decodeU8List(x.data);
  if (!v) return x.fail("psk_key_exchange_modes");
  Body a = Body::array();
  for (auto m : *v) a.push(std::string(pskModeName(m)));
  x.out.set("modes", a);
}

// certificate_authorities, RFC 8446 4.2.4
void certificateAuthorities(const Ext& x) {
  auto v = decodeCertificateAuthorities(x.data);
  if (!v) return x.fail("certificate_authorities");
  Body a = Body::array();
  for (const auto& dn : *v) a.push(x.der.distinguished_name ? x.der.distinguished_name(dn) : toHex(dn, 64));
  x.out.set("authorities", a);
}

// key_share, RFC 8446 4.2.8 (three shapes)
void keyShare(const Ext& x) {
  if (x.from_client) {
    auto v = decodeKeyShareClient(x.data);
    if (!v) return x.fail("key_share");
    Body a = Body::array();
    for (const auto& ks : *v) {
      Body k = codeName(ks.group, namedGroupName(ks.group));
      k.set("length", ks.key_exchange.size());
      k.set("public", toHex(ks.key_exchange));  // public values: the text formats print them
      a.push(k);
    }
    x.out.set("shares", a);
  } else if (x.hrr) {
    if (auto g = decodeU16(x.data)) x.out.setCode("selected_group", *g, namedGroupName(*g));
    else x.fail("key_share");
  } else if (auto ks = decodeKeyShareServer(x.data)) {
    x.out.setCode("group", ks->group, namedGroupName(ks->group));
    x.out.set("public", toHex(ks->key_exchange));
  } else {
    x.fail("key_share");
  }
}

// renegotiation_info, RFC 5746 3.2
void renegotiationInfo(const Ext& x) {
  ByteReader r = x.reader();
  ByteReader rc;
  if (!r.readU8Prefixed(rc) || !r.empty()) return x.fail("renegotiation_info");
  x.out.set("renegotiated_connection_length", rc.remaining());
}

// encrypted_client_hello (draft-ietf-tls-esni): outer fields only
void encryptedClientHello(const Ext& x) {
  if (!x.from_client) {
    x.out.set("retry_configs_length", x.data.size());
    return;
  }
  ByteReader r = x.reader();
  std::uint8_t type = 0;
  if (!r.readU8(type)) return x.fail("encrypted_client_hello");
  x.out.set("ech_type", type == 0 ? "outer" : type == 1 ? "inner" : "unknown");
  if (type != 0) return;
  std::uint16_t kdf = 0, aead = 0;
  std::uint8_t config_id = 0;
  ByteReader enc, payload;
  if (!r.readU16(kdf) || !r.readU16(aead) || !r.readU8(config_id) || !r.readU16Prefixed(enc) ||
      !r.readU16Prefixed(payload) || !r.empty())
    return x.fail("encrypted_client_hello");
  x.out.set("kdf_id", static_cast<int>(kdf));
  x.out.set("aead_id", static_cast<int>(aead));
  x.out.set("config_id", static_cast<int>(config_id));
  x.out.set("enc_length", enc.remaining());
  x.out.set("payload_length", payload.remaining());
}

// Any other extension: its bytes, as far as kRawCap.
void opaque(const Ext& x) {
  if (!x.data.empty()) x.out.set("raw", toHex(x.data, kRawCap));
}

}  // namespace

void decodeExtension(const Extension& e, bool from_client, bool hrr, const DerDecoders& der, Body& out) {
  const Ext x{e.data, from_client, hrr, der, out};
  switch (static_cast<ExtensionType>(e.type)) {
    case ExtensionType::ServerName: return serverName(x);
    case ExtensionType::MaxFragmentLength: return maxFragmentLength(x);
    case ExtensionType::StatusRequest: return statusRequest(x);
    case ExtensionType::StatusRequestV2: return statusRequestV2(x);
    case ExtensionType::SupportedGroups: return supportedGroups(x);
    case ExtensionType::EcPointFormats: return ecPointFormats(x);
    case ExtensionType::SignatureAlgorithms:
    case ExtensionType::SignatureAlgorithmsCert: return signatureAlgorithms(x);
    case ExtensionType::UseSrtp: return useSrtp(x);
    case ExtensionType::Heartbeat: return heartbeat(x);
    case ExtensionType::Alpn: return alpn(x);
    case ExtensionType::ApplicationSettings: return applicationSettings(x);
    case ExtensionType::SignedCertificateTimestamp: return signedCertificateTimestamp(x);
    case ExtensionType::Padding: return padding(x);
    case ExtensionType::EncryptThenMac:
    case ExtensionType::ExtendedMasterSecret:
    case ExtensionType::PostHandshakeAuth: return mustBeEmpty(x);
    case ExtensionType::CompressCertificate: return compressCertificate(x);
    case ExtensionType::RecordSizeLimit: return recordSizeLimit(x);
    case ExtensionType::SessionTicket: return sessionTicket(x);
    case ExtensionType::PreSharedKey: return preSharedKey(x);
    case ExtensionType::EarlyData: return earlyData(x);
    case ExtensionType::SupportedVersions: return supportedVersions(x);
    case ExtensionType::Cookie: return cookie(x);
    case ExtensionType::PskKeyExchangeModes: return pskKeyExchangeModes(x);
    case ExtensionType::CertificateAuthorities: return certificateAuthorities(x);
    case ExtensionType::KeyShare: return keyShare(x);
    case ExtensionType::RenegotiationInfo: return renegotiationInfo(x);
    case ExtensionType::EncryptedClientHello: return encryptedClientHello(x);
    default: return opaque(x);
  }
}

}  // namespace tlstrace::trace::detail
