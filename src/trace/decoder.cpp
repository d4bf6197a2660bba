#include "trace/decoder.h"

#include "trace/decoder_internal.h"
#include "wire/handshake.h"
#include "wire/registry.h"

namespace tlstrace::trace {

using namespace tlstrace::wire;
using detail::kRawCap;
using detail::nameList;
using detail::strings;
using detail::u16Names;

namespace {

Blob blob(Bytes b) { return Blob(b.begin(), b.end()); }

// Significant bits of a big-endian unsigned integer.
int bitLength(Bytes b) {
  std::size_t i = 0;
  while (i < b.size() && b[i] == 0) ++i;
  if (i == b.size()) return 0;
  int bits = static_cast<int>((b.size() - i - 1) * 8);
  for (std::uint8_t top = b[i]; top; top >>= 1) ++bits;
  return bits;
}

void malformed(Body& body, const DecodeError& err, Bytes msg) {
  body.set("error", err.what + " at offset " + std::to_string(err.offset));
  body.set("raw", toHex(msg, kRawCap));
}

// ServerHelloDone, EndOfEarlyData: no body.
void emptyMessage(Bytes msg, Bytes body, Body& b) {
  if (!body.empty()) malformed(b, {"must be empty", 4}, msg);
}

// Finished, RFC 8446 4.4.4: the whole body is verify_data
void finished(Bytes body, Body& b) { b.set("verify_data", toHex(body)); }

// CertificateStatus
void certificateStatus(Bytes msg, Bytes body, Body& b) {
  auto d = decodeCertificateStatus(body);
  if (!d.ok()) return malformed(b, d.error, msg);
  b.set("status_type", d.value.status_type == 1 ? "ocsp" : std::to_string(d.value.status_type));
  b.set("response_length", d.value.response.size());
}

// Any other message type: its bytes, as far as kRawCap.
void opaqueMessage(Bytes body, Body& b) {
  if (!body.empty()) b.set("raw", toHex(body, kRawCap));
}

}  // namespace

Body codeName(std::uint16_t id, std::string_view name) { return Body::code(id, name); }

Json LegDecoder::certificateSummary(Bytes der) {
  if (der_.certificate) return der_.certificate(der);
  Json j = Json::object();
  j.set("der_length", der.size());
  return j;
}

Body LegDecoder::extensions(const std::vector<Extension>& exts, bool from_client, bool hrr) {
  Body a = Body::array();
  for (const auto& e : exts) {
    Body x = Body::object();
    x.setCode("type", e.type, extensionName(e.type));
    x.set("length", e.data.size());
    detail::decodeExtension(e, from_client, hrr, der_, x);
    a.push(x);
  }
  return a;
}

namespace {

// What a ClientHello offers for resumption and 0-RTT: the session ID's length, the TLS 1.2 ticket
// (RFC 5077 3.2), the PSK modes and identities (RFC 8446 4.2.9, 4.2.11), early data (4.2.10).
void resumptionOffer(const ClientHello& ch, HelloOffer& o) {
  if (auto* e = findExtension(ch.extensions, ExtensionType::PskKeyExchangeModes))
    if (auto v = decodeU8List(e->data)) o.psk_modes = *v;
  o.session_id_length = ch.session_id.size();
  if (auto* e = findExtension(ch.extensions, ExtensionType::SessionTicket)) o.ticket_length = e->data.size();
  if (auto* e = findExtension(ch.extensions, ExtensionType::PreSharedKey)) {
    o.psk = true;
    if (auto v = decodePreSharedKey(e->data, true))
      for (const auto& id : v->identities) o.psk_identities.push_back({id.identity.size(), id.obfuscated_ticket_age});
  }
  o.early_data = findExtension(ch.extensions, ExtensionType::EarlyData) != nullptr;
}

// The hello retried after a HelloRetryRequest (RFC 8446 4.1.4): new key shares, the same offer
// otherwise; the first hello's key share groups are kept for the analysis.
void mergeRetriedOffer(HelloOffer& first, HelloOffer&& retry) {
  if (!first.retried)
    for (const auto& [g, _] : first.key_shares) first.first_key_share_groups.push_back(g);
  first.retried = true;
  first.key_shares = std::move(retry.key_shares);
}

}  // namespace

void LegDecoder::clientHello(Bytes msg, Bytes body_bytes, Body& body) {
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
  Body comp = Body::array();
  for (auto c : ch.compression_methods) comp.push(static_cast<int>(c));
  body.set("compression_methods", comp);
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
      Body a = Body::array();
      for (const auto& ks : *v) {
        Body k = Body::object();
        k.set("group", std::string(namedGroupName(ks.group)));
        k.set("length", ks.key_exchange.size());
        a.push(k);
        o.key_shares.emplace_back(ks.group, blob(ks.key_exchange));
      }
      body.set("key_share", a);
    }
  }
  if (auto* e = findExtension(ch.extensions, ExtensionType::SignatureAlgorithms))
    if (auto v = decodeU16List16(e->data)) {
      o.sigalgs = *v;
      body.set("signature_algorithms", nameList(*v, signatureSchemeName));
    }
  resumptionOffer(ch, o);
  if (!hs().offer.seen) hs().offer = std::move(o);
  else mergeRetriedOffer(hs().offer, std::move(o));
}

void LegDecoder::serverHello(Bytes msg, Bytes body_bytes, MessageBody& out) {
  auto d = decodeServerHello(body_bytes);
  if (!d.ok()) return malformed(out.body, d.error, msg);
  const ServerHello& sh = d.value;
  if (sh.hello_retry_request) out.type = "HelloRetryRequest";
  Body& body = out.body;
  body.set("legacy_version", std::string(versionName(sh.legacy_version)));
  body.set("random", toHex(sh.random));
  body.set("session_id", toHex(sh.session_id));
  body.setCode("cipher_suite", sh.cipher_suite, cipherSuiteName(sh.cipher_suite));
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
        Body k = Body::object();
        k.set("group", std::string(namedGroupName(*g)));
        body.set("key_share", k);
      }
    } else if (auto ks = decodeKeyShareServer(e->data)) {
      hs().choice.key_share_group = ks->group;
      hs().choice.key_share = blob(ks->key_exchange);
      hs().kex.group = ks->group;
      hs().kex.server_public = hs().choice.key_share;
      for (const auto& [g, pub] : hs().offer.key_shares)
        if (g == ks->group) hs().kex.client_public = pub;
      Body k = Body::object();
      k.set("group", std::string(namedGroupName(ks->group)));
      k.set("public", toHex(ks->key_exchange));
      body.set("key_share", k);
    }
  }
  hs().choice.psk_selected = false;
  if (auto* e = findExtension(sh.extensions, ExtensionType::PreSharedKey)) {
    hs().choice.psk_selected = true;
    if (auto v = decodePreSharedKey(e->data, false); v && v->selected_identity)
      hs().choice.psk_selected_identity = *v->selected_identity;
  }
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

// EncryptedExtensions
void LegDecoder::encryptedExtensions(Bytes msg, Bytes body, Body& b) {
  auto d = decodeEncryptedExtensions(body);
  if (!d.ok()) return malformed(b, d.error, msg);
  b.set("extensions", extensions(d.value, false, false));
  if (auto* e = findExtension(d.value, ExtensionType::Alpn))
    if (auto v = decodeAlpn(e->data); v && !v->empty()) hs().choice.alpn = v->front();
}

// Certificate
void LegDecoder::certificate(Bytes msg, Bytes body, Body& b) {
  const bool tls13 = version() == 0x0304;
  auto d = decodeCertificate(body, tls13);
  if (!d.ok()) return malformed(b, d.error, msg);
  if (tls13) b.set("request_context", toHex(d.value.request_context));
  Body chain = Body::array();
  for (const auto& entry : d.value.entries) {
    Body c = Body::fromJson(certificateSummary(entry.cert_data));
    if (!entry.extensions.empty()) c.set("extensions", extensions(entry.extensions, false, false));
    chain.push(c);
  }
  b.set("chain", chain);
}

// ServerKeyExchange
void LegDecoder::serverKeyExchange(Bytes msg, Bytes body, Body& b) {
  auto d = decodeServerKeyExchange(body, hs().kex.kind);
  if (!d.ok()) return malformed(b, d.error, msg);
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
    b.setCode("curve", s.named_curve, namedGroupName(s.named_curve));
    b.set("public", toHex(s.point));
    hs().kex.group = s.named_curve;
    hs().kex.server_public = blob(s.point);
  }
  if (s.signed_params) {
    if (s.signed_params->scheme) {
      b.setCode("signature_algorithm", *s.signed_params->scheme, signatureSchemeName(*s.signed_params->scheme));
      hs().kex.server_sig_scheme = s.signed_params->scheme;
    }
    b.set("signature_length", s.signed_params->signature.size());
    b.set("signature", toHex(s.signed_params->signature));  // public; the text formats print it
  }
}

// CertificateRequest
void LegDecoder::certificateRequest(Bytes msg, Bytes body, Body& b) {
  auto d = decodeCertificateRequest(body, version());
  if (!d.ok()) return malformed(b, d.error, msg);
  const auto& c = d.value;
  if (version() == 0x0304) {
    b.set("request_context", toHex(c.request_context));
    b.set("extensions", extensions(c.extensions, false, false));
    return;
  }
  Body types = Body::array();
  Body names = Body::array();
  for (auto t : c.certificate_types) {
    types.push(static_cast<int>(t));
    names.push(std::string(clientCertificateTypeName(t)));
  }
  b.set("certificate_types", types);
  b.set("certificate_type_names", names);
  if (!c.signature_algorithms.empty())
    b.set("signature_algorithms", u16Names(c.signature_algorithms, signatureSchemeName));
  Body cas = Body::array();
  for (const auto& dn : c.certificate_authorities)
    cas.push(der_.distinguished_name ? der_.distinguished_name(dn) : toHex(dn, 64));
  b.set("certificate_authorities", cas);
}

// CertificateVerify
void LegDecoder::certificateVerify(Bytes msg, Bytes body, bool from_client, Body& b) {
  auto d = decodeCertificateVerify(body);
  if (!d.ok()) return malformed(b, d.error, msg);
  if (d.value.scheme) {
    b.setCode("signature_algorithm", *d.value.scheme, signatureSchemeName(*d.value.scheme));
    (from_client ? hs().kex.client_sig_scheme : hs().kex.server_sig_scheme) = d.value.scheme;
  }
  b.set("signature_length", d.value.signature.size());
  b.set("signature", toHex(d.value.signature));  // public; `--format jsse|openssl` print it
}

// ClientKeyExchange
void LegDecoder::clientKeyExchange(Bytes msg, Bytes body, Body& b) {
  auto d = decodeClientKeyExchange(body, hs().kex.kind);
  if (!d.ok()) return malformed(b, d.error, msg);
  b.set("kex", std::string(kexName(hs().kex.kind)));  // the body alone does not say (RFC 5246 7.4.7)
  if (!d.value.psk_identity.empty()) b.set("psk_identity", toHex(d.value.psk_identity, 64));
  if (!d.value.public_value.empty()) {
    b.set("public", toHex(d.value.public_value));
    hs().kex.client_public = blob(d.value.public_value);
  }
  if (!d.value.encrypted_premaster.empty() || hs().kex.kind == KexKind::Rsa) {
    b.set("encrypted_premaster_length", d.value.encrypted_premaster.size());
    hs().kex.has_encrypted_premaster = true;
  }
}

// NewSessionTicket
void LegDecoder::newSessionTicket(Bytes msg, Bytes body, Body& b) {
  const bool tls13 = version() == 0x0304;
  auto d = decodeNewSessionTicket(body, tls13);
  if (!d.ok()) return malformed(b, d.error, msg);
  b.set("lifetime", static_cast<unsigned long long>(d.value.lifetime));
  if (tls13) {
    b.set("age_add", static_cast<unsigned long long>(d.value.age_add));
    b.set("nonce", toHex(d.value.nonce));
  }
  b.set("ticket_length", d.value.ticket.size());
  // The opaque ticket (server-encrypted state, no key in it), capped: the text formats dump it.
  b.set("ticket", toHex(d.value.ticket, 1024));
  b.set("extensions", extensions(d.value.extensions, false, false));
  // Read by the key-exchange assessment, which a released leg has had already.
  if (hs_) hs_->kex.ticket_lifetimes.push_back(d.value.lifetime);
}

// KeyUpdate, RFC 8446 4.6.3
void LegDecoder::keyUpdate(Bytes msg, Bytes body, bool from_client, Body& b) {
  ByteReader r(body, 4);
  std::uint8_t req = 0;
  if (!r.readU8(req) || !r.empty() || req > 1) return malformed(b, {"bad KeyUpdate", r.offset()}, msg);
  b.set("request_update", req == 1);
  ++(from_client ? key_updates_client_ : key_updates_server_);
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
  Body& b = out.body;
  b.reserve(1024);  // most bodies fit; compact() below gives back the rest
  switch (static_cast<HandshakeType>(hdr.value.type)) {
    case HandshakeType::ClientHello: clientHello(msg, body, b); break;
    case HandshakeType::ServerHello:
      serverHello(msg, body, out);
      last_message_ = out.type;
      break;
    case HandshakeType::EncryptedExtensions: encryptedExtensions(msg, body, b); break;
    case HandshakeType::Certificate: certificate(msg, body, b); break;
    case HandshakeType::ServerKeyExchange: serverKeyExchange(msg, body, b); break;
    case HandshakeType::CertificateRequest: certificateRequest(msg, body, b); break;
    case HandshakeType::ServerHelloDone:
    case HandshakeType::EndOfEarlyData: emptyMessage(msg, body, b); break;
    case HandshakeType::CertificateVerify: certificateVerify(msg, body, from_client, b); break;
    case HandshakeType::ClientKeyExchange: clientKeyExchange(msg, body, b); break;
    case HandshakeType::Finished: finished(body, b); break;
    case HandshakeType::NewSessionTicket: newSessionTicket(msg, body, b); break;
    case HandshakeType::CertificateStatus: certificateStatus(msg, body, b); break;
    case HandshakeType::KeyUpdate: keyUpdate(msg, body, from_client, b); break;
    default: opaqueMessage(body, b); break;
  }
  b.compact();
  return out;
}

}  // namespace tlstrace::trace
