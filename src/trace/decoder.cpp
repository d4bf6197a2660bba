#include "trace/decoder.h"

#include "wire/handshake.h"
#include "wire/registry.h"

namespace tlstrace::trace {

using namespace tlstrace::wire;

namespace {

constexpr std::size_t kRawCap = 256;  // bytes of hex kept for opaque or malformed data

Blob blob(Bytes b) { return Blob(b.begin(), b.end()); }

// Lists are built at their final size: one allocation each (a ClientHello has dozens of them).
Json u16Names(const std::vector<std::uint16_t>& v, std::string_view (*namer)(std::uint16_t)) {
  Json::Array a;
  a.reserve(v.size());
  for (auto x : v) a.push_back(codeName(x, namer(x)));
  return Json(std::move(a));
}

Json nameList(const std::vector<std::uint16_t>& v, std::string_view (*namer)(std::uint16_t)) {
  Json::Array a;
  a.reserve(v.size());
  for (auto x : v) a.emplace_back(namer(x));
  return Json(std::move(a));
}

Json strings(const std::vector<std::string>& v) {
  Json a = Json::array();
  for (const auto& s : v) a.push(s);
  return a;
}

// Significant bits of a big-endian unsigned integer.
int bitLength(Bytes b) {
  std::size_t i = 0;
  while (i < b.size() && b[i] == 0) ++i;
  if (i == b.size()) return 0;
  int bits = static_cast<int>((b.size() - i - 1) * 8);
  for (std::uint8_t top = b[i]; top; top >>= 1) ++bits;
  return bits;
}

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

void malformed(Json& body, const DecodeError& err, Bytes msg) {
  body.set("error", err.what + " at offset " + std::to_string(err.offset));
  body.set("raw", toHex(msg, kRawCap));
}

}  // namespace

Json codeName(std::uint16_t id, std::string_view name) {
  Json::Object o;  // two fields, built in place: the commonest object of a trace
  o.reserve(2);
  o.emplace_back("id", static_cast<int>(id));
  o.emplace_back("name", name);
  return Json(std::move(o));
}

Json LegDecoder::certificateSummary(Bytes der) {
  if (der_.certificate) return der_.certificate(der);
  Json j = Json::object();
  j.set("der_length", der.size());
  return j;
}

// Decoded fields of one extension (RFC 8446 4.2 and the RFCs each extension comes from), merged
// into its {type, length} object.
void LegDecoder::extension(const Extension& e, bool from_client, bool hrr, Json& out) {
  auto fail = [&](const char* what) {
    out.set("error", std::string("malformed ") + what);
    out.set("raw", toHex(e.data, kRawCap));
  };
  ByteReader r(e.data);
  switch (static_cast<ExtensionType>(e.type)) {
    case ExtensionType::ServerName: {  // server_name, RFC 6066 3 (the server's acknowledgement is empty)
      if (e.data.empty()) return;
      if (auto v = decodeServerName(e.data)) out.set("names", strings(*v));
      else fail("server_name");
      return;
    }
    case ExtensionType::MaxFragmentLength: {  // max_fragment_length, RFC 6066 4
      std::uint8_t code = 0;
      if (!r.readU8(code) || !r.empty()) return fail("max_fragment_length");
      out.set("code", static_cast<int>(code));
      out.set("bytes", maxFragmentLength(code));
      return;
    }
    case ExtensionType::StatusRequest: {  // status_request, RFC 6066 8
      if (e.data.empty()) return;
      std::uint8_t type = 0;
      ByteReader ids, exts;
      if (!r.readU8(type)) return fail("status_request");
      out.set("status_type", type == 1 ? "ocsp" : std::to_string(type));
      if (type == 1 && from_client) {
        if (!r.readU16Prefixed(ids) || !r.readU16Prefixed(exts) || !r.empty()) return fail("status_request");
        out.set("responder_id_list_length", ids.remaining());
        out.set("request_extensions_length", exts.remaining());
      } else if (type == 1) {  // TLS 1.3 Certificate entry: a CertificateStatus body
        ByteReader resp;
        if (!r.readU24Prefixed(resp) || !r.empty()) return fail("status_request");
        out.set("ocsp_response_length", resp.remaining());
      }
      return;
    }
    case ExtensionType::SupportedGroups: {  // supported_groups, RFC 8446 4.2.7
      if (auto v = decodeU16List16(e.data)) out.set("groups", u16Names(*v, namedGroupName));
      else fail("supported_groups");
      return;
    }
    case ExtensionType::EcPointFormats: {  // ec_point_formats, RFC 8422 5.1.2
      auto v = decodeU8List(e.data);
      if (!v) return fail("ec_point_formats");
      Json a = Json::array();
      for (auto f : *v) a.push(std::string(pointFormatName(f)));
      out.set("formats", std::move(a));
      return;
    }
    case ExtensionType::SignatureAlgorithms:
    case ExtensionType::SignatureAlgorithmsCert: {  // signature_algorithms(_cert), RFC 8446 4.2.3
      if (auto v = decodeU16List16(e.data)) out.set("schemes", u16Names(*v, signatureSchemeName));
      else fail("signature_algorithms");
      return;
    }
    case ExtensionType::UseSrtp: {  // use_srtp, RFC 5764 4.1.1
      ByteReader profiles, mki;
      if (!r.readU16Prefixed(profiles) || !r.readU8Prefixed(mki) || !r.empty() || profiles.remaining() % 2)
        return fail("use_srtp");
      Json a = Json::array();
      while (!profiles.empty()) {
        std::uint16_t p = 0;
        (void)profiles.readU16(p);
        a.push(static_cast<int>(p));
      }
      out.set("profiles", std::move(a));
      out.set("mki", toHex(mki.rest()));
      return;
    }
    case ExtensionType::Heartbeat: {  // heartbeat, RFC 6520 2
      std::uint8_t mode = 0;
      if (!r.readU8(mode) || !r.empty()) return fail("heartbeat");
      out.set("mode", mode == 1 ? "peer_allowed_to_send" : mode == 2 ? "peer_not_allowed_to_send" : "unknown");
      return;
    }
    case ExtensionType::Alpn: {  // ALPN, RFC 7301 3.1
      if (auto v = decodeAlpn(e.data)) out.set("protocols", strings(*v));
      else fail("ALPN");
      return;
    }
    case ExtensionType::ApplicationSettings: {  // application_settings (ALPS draft): the same list shape as ALPN
      if (from_client) {
        if (auto v = decodeAlpn(e.data)) out.set("protocols", strings(*v));
        else fail("application_settings");
      }
      return;
    }
    case ExtensionType::SignedCertificateTimestamp: {  // signed_certificate_timestamp, RFC 6962 3.3
      if (e.data.empty()) return;
      ByteReader list;
      if (!r.readU16Prefixed(list) || !r.empty()) return fail("signed_certificate_timestamp");
      int n = 0;
      while (!list.empty()) {
        ByteReader sct;
        if (!list.readU16Prefixed(sct)) return fail("signed_certificate_timestamp");
        ++n;
      }
      out.set("sct_count", n);
      return;
    }
    case ExtensionType::Padding: {  // padding, RFC 7685
      bool zero = true;
      for (auto b : e.data) zero = zero && b == 0;
      out.set("all_zero", zero);
      return;
    }
    case ExtensionType::EncryptThenMac:
    case ExtensionType::ExtendedMasterSecret:
    case ExtensionType::PostHandshakeAuth:  // encrypt_then_mac, extended_master_secret, post_handshake_auth: empty by
                                            // definition
      if (!e.data.empty()) fail("extension that must be empty");
      return;
    case ExtensionType::CompressCertificate: {  // compress_certificate, RFC 8879 3
      ByteReader list;
      if (!r.readU8Prefixed(list) || !r.empty() || list.remaining() % 2 || list.empty())
        return fail("compress_certificate");
      Json a = Json::array();
      while (!list.empty()) {
        std::uint16_t alg = 0;
        (void)list.readU16(alg);
        a.push(codeName(alg, certCompressionName(alg)));
      }
      out.set("algorithms", std::move(a));
      return;
    }
    case ExtensionType::RecordSizeLimit: {  // record_size_limit, RFC 8449 4
      if (auto v = decodeU16(e.data)) out.set("limit", static_cast<int>(*v));
      else fail("record_size_limit");
      return;
    }
    case ExtensionType::SessionTicket: {  // session_ticket, RFC 5077 3.2: empty asks for a new ticket
      out.set("ticket_length", e.data.size());
      return;
    }
    case ExtensionType::PreSharedKey: {  // pre_shared_key, RFC 8446 4.2.11
      auto psk = decodePreSharedKey(e.data, from_client);
      if (!psk) return fail("pre_shared_key");
      if (psk->selected_identity) {
        out.set("selected_identity", static_cast<int>(*psk->selected_identity));
        return;
      }
      Json ids = Json::array();
      for (const auto& id : psk->identities) {
        Json o = Json::object();
        o.set("identity_length", id.identity.size());
        o.set("identity", toHex(id.identity, 64));
        o.set("obfuscated_ticket_age", static_cast<unsigned long long>(id.obfuscated_ticket_age));
        ids.push(std::move(o));
      }
      out.set("identities", std::move(ids));
      Json binders = Json::array();
      for (const auto& b : psk->binders) binders.push(toHex(b));
      out.set("binders", std::move(binders));
      return;
    }
    case ExtensionType::EarlyData: {  // early_data, RFC 8446 4.2.10: max_early_data_size only in NewSessionTicket
      if (e.data.empty()) return;
      std::uint32_t max = 0;
      if (!r.readU32(max) || !r.empty()) return fail("early_data");
      out.set("max_early_data_size", static_cast<unsigned long long>(max));
      return;
    }
    case ExtensionType::SupportedVersions: {  // supported_versions, RFC 8446 4.2.1
      if (from_client) {
        if (auto v = decodeU16List8(e.data)) out.set("versions", nameList(*v, versionName));
        else fail("supported_versions");
      } else if (auto v = decodeU16(e.data)) {
        out.set("selected_version", std::string(versionName(*v)));
      } else {
        fail("supported_versions");
      }
      return;
    }
    case ExtensionType::Cookie: {  // cookie, RFC 8446 4.2.2
      ByteReader c;
      if (!r.readU16Prefixed(c) || c.empty() || !r.empty()) return fail("cookie");
      out.set("cookie_length", c.remaining());
      out.set("cookie", toHex(c.rest(), 64));
      return;
    }
    case ExtensionType::PskKeyExchangeModes: {  // psk_key_exchange_modes, RFC 8446 4.2.9
      auto v = decodeU8List(e.data);
      if (!v) return fail("psk_key_exchange_modes");
      Json a = Json::array();
      for (auto m : *v) a.push(std::string(pskModeName(m)));
      out.set("modes", std::move(a));
      return;
    }
    case ExtensionType::CertificateAuthorities: {  // certificate_authorities, RFC 8446 4.2.4
      auto v = decodeCertificateAuthorities(e.data);
      if (!v) return fail("certificate_authorities");
      Json a = Json::array();
      for (const auto& dn : *v) a.push(der_.distinguished_name ? der_.distinguished_name(dn) : toHex(dn, 64));
      out.set("authorities", std::move(a));
      return;
    }
    case ExtensionType::KeyShare: {  // key_share, RFC 8446 4.2.8 (three shapes)
      if (from_client) {
        auto v = decodeKeyShareClient(e.data);
        if (!v) return fail("key_share");
        Json a = Json::array();
        for (const auto& ks : *v) {
          Json k = codeName(ks.group, namedGroupName(ks.group));
          k.set("length", ks.key_exchange.size());
          a.push(std::move(k));
        }
        out.set("shares", std::move(a));
      } else if (hrr) {
        if (auto g = decodeU16(e.data)) out.set("selected_group", codeName(*g, namedGroupName(*g)));
        else fail("key_share");
      } else if (auto ks = decodeKeyShareServer(e.data)) {
        out.set("group", codeName(ks->group, namedGroupName(ks->group)));
        out.set("public", toHex(ks->key_exchange));
      } else {
        fail("key_share");
      }
      return;
    }
    case ExtensionType::RenegotiationInfo: {  // renegotiation_info, RFC 5746 3.2
      ByteReader rc;
      if (!r.readU8Prefixed(rc) || !r.empty()) return fail("renegotiation_info");
      out.set("renegotiated_connection_length", rc.remaining());
      return;
    }
    case ExtensionType::EncryptedClientHello: {  // encrypted_client_hello (draft-ietf-tls-esni): outer fields only
      std::uint8_t type = 0;
      if (!from_client) {
        out.set("retry_configs_length", e.data.size());
        return;
      }
      if (!r.readU8(type)) return fail("encrypted_client_hello");
      out.set("ech_type", type == 0 ? "outer" : type == 1 ? "inner" : "unknown");
      if (type != 0) return;
      std::uint16_t kdf = 0, aead = 0;
      std::uint8_t config_id = 0;
      ByteReader enc, payload;
      if (!r.readU16(kdf) || !r.readU16(aead) || !r.readU8(config_id) || !r.readU16Prefixed(enc) ||
          !r.readU16Prefixed(payload) || !r.empty())
        return fail("encrypted_client_hello");
      out.set("kdf_id", static_cast<int>(kdf));
      out.set("aead_id", static_cast<int>(aead));
      out.set("config_id", static_cast<int>(config_id));
      out.set("enc_length", enc.remaining());
      out.set("payload_length", payload.remaining());
      return;
    }
    default:
      if (!e.data.empty()) out.set("raw", toHex(e.data, kRawCap));
      return;
  }
}

Json LegDecoder::extensions(const std::vector<Extension>& exts, bool from_client, bool hrr) {
  Json a = Json::array();
  for (const auto& e : exts) {
    Json x = Json::object();
    x.set("type", codeName(e.type, extensionName(e.type)));
    x.set("length", e.data.size());
    extension(e, from_client, hrr, x);
    a.push(std::move(x));
  }
  return a;
}

void LegDecoder::clientHello(Bytes msg, Bytes body_bytes, Json& body) {
  auto d = decodeClientHello(body_bytes);
  if (!d.ok()) return malformed(body, d.error, msg);
  const ClientHello& ch = d.value;
  // A second ClientHello (after HelloRetryRequest) refines the offer; keep the first's lists.
  HelloOffer o;
  o.seen = true;
  o.legacy_version = ch.legacy_version;
  o.random = blob(ch.random);
  o.suites = ch.cipher_suites;
  for (const auto& e : ch.extensions) o.extensions.push_back(e.type);
  body.set("legacy_version", std::string(versionName(ch.legacy_version)));
  body.set("random", toHex(ch.random));
  body.set("session_id", toHex(ch.session_id));
  body.set("cipher_suites", u16Names(ch.cipher_suites, cipherSuiteName));
  Json comp = Json::array();
  for (auto c : ch.compression_methods) comp.push(static_cast<int>(c));
  body.set("compression_methods", std::move(comp));
  body.set("extensions", extensions(ch.extensions, true, false));
  if (auto* e = findExtension(ch.extensions, ExtensionType::ServerName))
    if (auto v = decodeServerName(e->data); v && !v->empty()) {
      o.sni = v->front();
      body.set("sni", o.sni);
    }
  if (auto* e = findExtension(ch.extensions, ExtensionType::Alpn))
    if (auto v = decodeAlpn(e->data)) {
      o.alpn = *v;
      body.set("alpn", strings(*v));
    }
  if (auto* e = findExtension(ch.extensions, ExtensionType::SupportedVersions); e) {
    if (auto v = decodeU16List8(e->data)) {
      o.versions = *v;
      body.set("supported_versions", nameList(*v, versionName));
    }
  } else {
    o.versions = {ch.legacy_version};
  }
  if (auto* e = findExtension(ch.extensions, ExtensionType::SupportedGroups))
    if (auto v = decodeU16List16(e->data)) {
      o.groups = *v;
      body.set("supported_groups", nameList(*v, namedGroupName));
    }
  if (auto* e = findExtension(ch.extensions, ExtensionType::EcPointFormats))
    if (auto v = decodeU8List(e->data)) o.point_formats = *v;
  if (auto* e = findExtension(ch.extensions, ExtensionType::KeyShare)) {
    if (auto v = decodeKeyShareClient(e->data)) {
      Json a = Json::array();
      for (const auto& ks : *v) {
        Json k = Json::object();
        k.set("group", std::string(namedGroupName(ks.group)));
        k.set("length", ks.key_exchange.size());
        a.push(std::move(k));
        o.key_shares.emplace_back(ks.group, blob(ks.key_exchange));
      }
      body.set("key_share", std::move(a));
    }
  }
  if (auto* e = findExtension(ch.extensions, ExtensionType::SignatureAlgorithms))
    if (auto v = decodeU16List16(e->data)) {
      o.sigalgs = *v;
      body.set("signature_algorithms", nameList(*v, signatureSchemeName));
    }
  if (auto* e = findExtension(ch.extensions, ExtensionType::PskKeyExchangeModes))
    if (auto v = decodeU8List(e->data)) o.psk_modes = *v;
  o.psk = findExtension(ch.extensions, ExtensionType::PreSharedKey) != nullptr;
  o.early_data = findExtension(ch.extensions, ExtensionType::EarlyData) != nullptr;
  if (!hs().offer.seen) {
    hs().offer = std::move(o);
  } else {  // the retried hello: new key shares, same offer otherwise
    hs().offer.key_shares = std::move(o.key_shares);
  }
}

void LegDecoder::serverHello(Bytes msg, Bytes body_bytes, MessageBody& out) {
  auto d = decodeServerHello(body_bytes);
  if (!d.ok()) return malformed(out.body, d.error, msg);
  const ServerHello& sh = d.value;
  if (sh.hello_retry_request) out.type = "HelloRetryRequest";
  Json& body = out.body;
  body.set("legacy_version", std::string(versionName(sh.legacy_version)));
  body.set("random", toHex(sh.random));
  body.set("session_id", toHex(sh.session_id));
  body.set("cipher_suite", codeName(sh.cipher_suite, cipherSuiteName(sh.cipher_suite)));
  body.set("compression_method", static_cast<int>(sh.compression_method));
  body.set("extensions", extensions(sh.extensions, false, sh.hello_retry_request));
  std::uint16_t selected = sh.legacy_version;
  if (auto* e = findExtension(sh.extensions, ExtensionType::SupportedVersions))
    if (auto v = decodeU16(e->data)) selected = *v;
  body.set("selected_version", std::string(versionName(selected)));
  hs().choice.seen = true;
  hs().choice.legacy_version = sh.legacy_version;
  hs().choice.version = selected;
  hs().choice.suite = sh.cipher_suite;
  hs().choice.extensions.clear();
  for (const auto& e : sh.extensions) hs().choice.extensions.push_back(e.type);
  hs().kex.kind = kexOfSuite(sh.cipher_suite);
  if (auto* e = findExtension(sh.extensions, ExtensionType::KeyShare)) {
    if (sh.hello_retry_request) {
      if (auto g = decodeU16(e->data)) {
        hs().choice.hrr = true;
        hs().choice.hrr_group = *g;
        Json k = Json::object();
        k.set("group", std::string(namedGroupName(*g)));
        body.set("key_share", std::move(k));
      }
    } else if (auto ks = decodeKeyShareServer(e->data)) {
      hs().choice.key_share_group = ks->group;
      hs().choice.key_share = blob(ks->key_exchange);
      hs().kex.group = ks->group;
      hs().kex.server_public = hs().choice.key_share;
      for (const auto& [g, pub] : hs().offer.key_shares)
        if (g == ks->group) hs().kex.client_public = pub;
      Json k = Json::object();
      k.set("group", std::string(namedGroupName(ks->group)));
      k.set("public", toHex(ks->key_exchange));
      body.set("key_share", std::move(k));
    }
  }
  hs().choice.psk_selected = findExtension(sh.extensions, ExtensionType::PreSharedKey) != nullptr;
  if (auto* e = findExtension(sh.extensions, ExtensionType::Alpn))
    if (auto v = decodeAlpn(e->data); v && !v->empty()) {
      hs().choice.alpn = v->front();
      body.set("alpn", v->front());
    }
}

LegDecoder::LegDecoder(const LegDecoder& o)
    : der_(o.der_),
      hs_(o.hs_ ? std::make_unique<Handshake>(*o.hs_) : nullptr),
      released_version_(o.released_version_),
      last_message_(o.last_message_),
      key_updates_client_(o.key_updates_client_),
      key_updates_server_(o.key_updates_server_) {}

LegDecoder& LegDecoder::operator=(const LegDecoder& o) {
  if (this != &o) *this = LegDecoder(o);
  return *this;
}

LegDecoder::Handshake& LegDecoder::hs() {
  if (!hs_) {
    hs_ = std::make_unique<Handshake>();
    hs_->choice.version = released_version_;
  }
  return *hs_;
}

const HelloOffer& LegDecoder::offer() const {
  static const HelloOffer none;
  return hs_ ? hs_->offer : none;
}

const ServerChoice& LegDecoder::choice() const {
  static const ServerChoice none;
  return hs_ ? hs_->choice : none;
}

const KexMaterial& LegDecoder::kex() const {
  static const KexMaterial none;
  return hs_ ? hs_->kex : none;
}

void LegDecoder::releaseHandshake() {
  released_version_ = version();
  hs_.reset();
}

MessageBody LegDecoder::describe(Bytes msg, bool from_client) {
  MessageBody out;
  if (msg.size() < 4) {
    out.type = "unknown";
    out.length = static_cast<std::uint32_t>(msg.size());
    malformed(out.body, {"truncated handshake header", 0}, msg);
    return out;
  }
  auto hdr = decodeHandshakeHeader(msg);
  out.type = std::string(handshakeTypeName(hdr.value.type));
  if (out.type == "unknown") out.type = "unknown(" + std::to_string(hdr.value.type) + ")";
  out.length = hdr.value.length;
  last_message_ = out.type;
  if (hdr.status != Status::Ok || msg.size() != hdr.consumed) {
    malformed(out.body, {"handshake length does not match the message", 1}, msg);
    return out;
  }
  const Bytes body = msg.subspan(4);
  const bool tls13 = version() == 0x0304;
  Json& b = out.body;
  switch (static_cast<HandshakeType>(hdr.value.type)) {
    case HandshakeType::ClientHello: clientHello(msg, body, b); break;
    case HandshakeType::ServerHello:
      serverHello(msg, body, out);
      last_message_ = out.type;
      break;
    case HandshakeType::EncryptedExtensions: {  // EncryptedExtensions
      auto d = decodeEncryptedExtensions(body);
      if (!d.ok()) return malformed(b, d.error, msg), out;
      b.set("extensions", extensions(d.value, false, false));
      if (auto* e = findExtension(d.value, ExtensionType::Alpn))
        if (auto v = decodeAlpn(e->data); v && !v->empty()) hs().choice.alpn = v->front();
      break;
    }
    case HandshakeType::Certificate: {  // Certificate
      auto d = decodeCertificate(body, tls13);
      if (!d.ok()) return malformed(b, d.error, msg), out;
      if (tls13) b.set("request_context", toHex(d.value.request_context));
      Json chain = Json::array();
      for (const auto& entry : d.value.entries) {
        Json c = certificateSummary(entry.cert_data);
        if (!entry.extensions.empty()) c.set("extensions", extensions(entry.extensions, false, false));
        chain.push(std::move(c));
      }
      b.set("chain", std::move(chain));
      break;
    }
    case HandshakeType::ServerKeyExchange: {  // ServerKeyExchange
      auto d = decodeServerKeyExchange(body, hs().kex.kind);
      if (!d.ok()) return malformed(b, d.error, msg), out;
      const auto& s = d.value;
      b.set("kex", std::string(kexName(s.kind)));
      if (!s.psk_identity_hint.empty()) b.set("psk_identity_hint", toHex(s.psk_identity_hint, 64));
      if (!s.p.empty()) {
        b.set("p", toHex(s.p));
        b.set("g", toHex(s.g));
        b.set("public", toHex(s.ys));
        b.set("p_bits", bitLength(s.p));
        hs().kex.p = blob(s.p);
        hs().kex.g = blob(s.g);
        hs().kex.server_public = blob(s.ys);
      } else if (!s.point.empty()) {
        b.set("curve", codeName(s.named_curve, namedGroupName(s.named_curve)));
        b.set("public", toHex(s.point));
        hs().kex.group = s.named_curve;
        hs().kex.server_public = blob(s.point);
      }
      if (s.signed_params) {
        if (s.signed_params->scheme) {
          b.set("signature_algorithm",
                codeName(*s.signed_params->scheme, signatureSchemeName(*s.signed_params->scheme)));
          hs().kex.server_sig_scheme = s.signed_params->scheme;
        }
        b.set("signature_length", s.signed_params->signature.size());
      }
      break;
    }
    case HandshakeType::CertificateRequest: {  // CertificateRequest
      auto d = decodeCertificateRequest(body, version());
      if (!d.ok()) return malformed(b, d.error, msg), out;
      const auto& c = d.value;
      if (tls13) {
        b.set("request_context", toHex(c.request_context));
        b.set("extensions", extensions(c.extensions, false, false));
        break;
      }
      Json types = Json::array();
      for (auto t : c.certificate_types) types.push(static_cast<int>(t));
      b.set("certificate_types", std::move(types));
      if (!c.signature_algorithms.empty())
        b.set("signature_algorithms", u16Names(c.signature_algorithms, signatureSchemeName));
      Json cas = Json::array();
      for (const auto& dn : c.certificate_authorities)
        cas.push(der_.distinguished_name ? der_.distinguished_name(dn) : toHex(dn, 64));
      b.set("certificate_authorities", std::move(cas));
      break;
    }
    case HandshakeType::ServerHelloDone:  // ServerHelloDone
    case HandshakeType::EndOfEarlyData:   // EndOfEarlyData
      if (!body.empty()) malformed(b, {"must be empty", 4}, msg);
      break;
    case HandshakeType::CertificateVerify: {  // CertificateVerify
      auto d = decodeCertificateVerify(body);
      if (!d.ok()) return malformed(b, d.error, msg), out;
      if (d.value.scheme) {
        b.set("signature_algorithm", codeName(*d.value.scheme, signatureSchemeName(*d.value.scheme)));
        (from_client ? hs().kex.client_sig_scheme : hs().kex.server_sig_scheme) = d.value.scheme;
      }
      b.set("signature_length", d.value.signature.size());
      break;
    }
    case HandshakeType::ClientKeyExchange: {  // ClientKeyExchange
      auto d = decodeClientKeyExchange(body, hs().kex.kind);
      if (!d.ok()) return malformed(b, d.error, msg), out;
      if (!d.value.psk_identity.empty()) b.set("psk_identity", toHex(d.value.psk_identity, 64));
      if (!d.value.public_value.empty()) {
        b.set("public", toHex(d.value.public_value));
        hs().kex.client_public = blob(d.value.public_value);
      }
      if (!d.value.encrypted_premaster.empty() || hs().kex.kind == KexKind::Rsa) {
        b.set("encrypted_premaster_length", d.value.encrypted_premaster.size());
        hs().kex.has_encrypted_premaster = true;
      }
      break;
    }
    case HandshakeType::Finished:  // Finished, RFC 8446 4.4.4: the whole body is verify_data
      b.set("verify_data", toHex(body));
      break;
    case HandshakeType::NewSessionTicket: {  // NewSessionTicket
      auto d = decodeNewSessionTicket(body, tls13);
      if (!d.ok()) return malformed(b, d.error, msg), out;
      b.set("lifetime", static_cast<unsigned long long>(d.value.lifetime));
      if (tls13) {
        b.set("age_add", static_cast<unsigned long long>(d.value.age_add));
        b.set("nonce", toHex(d.value.nonce));
      }
      b.set("ticket_length", d.value.ticket.size());
      b.set("extensions", extensions(d.value.extensions, false, false));
      // Read by the key-exchange assessment, which a released leg has had already.
      if (hs_) hs_->kex.ticket_lifetimes.push_back(d.value.lifetime);
      break;
    }
    case HandshakeType::CertificateStatus: {  // CertificateStatus
      auto d = decodeCertificateStatus(body);
      if (!d.ok()) return malformed(b, d.error, msg), out;
      b.set("status_type", d.value.status_type == 1 ? "ocsp" : std::to_string(d.value.status_type));
      b.set("response_length", d.value.response.size());
      break;
    }
    case HandshakeType::KeyUpdate: {  // KeyUpdate, RFC 8446 4.6.3
      ByteReader r(body, 4);
      std::uint8_t req = 0;
      if (!r.readU8(req) || !r.empty() || req > 1) return malformed(b, {"bad KeyUpdate", r.offset()}, msg), out;
      b.set("request_update", req == 1);
      ++(from_client ? key_updates_client_ : key_updates_server_);
      break;
    }
    default:
      if (!body.empty()) b.set("raw", toHex(body, kRawCap));
      break;
  }
  return out;
}

}  // namespace tlstrace::trace
