#include "trace/body.h"

#include "wire/handshake.h"
#include "wire/registry.h"

namespace tlstrace::trace {

using namespace tlstrace::wire;

namespace {

constexpr std::size_t kRawCap = 256;  // bytes of hex kept for malformed or unknown data

Json u16Names(const std::vector<std::uint16_t>& v, std::string_view (*namer)(std::uint16_t)) {
  Json a = Json::array();
  for (auto x : v) a.push(codeName(x, namer(x)));
  return a;
}

Json nameList(const std::vector<std::uint16_t>& v, std::string_view (*namer)(std::uint16_t)) {
  Json a = Json::array();
  for (auto x : v) a.push(std::string(namer(x)));
  return a;
}

Json strings(const std::vector<std::string>& v) {
  Json a = Json::array();
  for (const auto& s : v) a.push(s);
  return a;
}

// Decoded fields of one extension, merged into its {type, length} object.
void describeExtension(const Extension& e, bool from_client, bool hrr, Json& out) {
  switch (e.type) {
    case 0: {  // server_name
      if (e.data.empty()) return;  // the server's acknowledgement is empty
      if (auto v = decodeServerName(e.data)) out.set("names", strings(*v));
      else out.set("error", "malformed server_name");
      return;
    }
    case 16: {  // ALPN
      if (auto v = decodeAlpn(e.data)) out.set("protocols", strings(*v));
      else out.set("error", "malformed ALPN");
      return;
    }
    case 10: {  // supported_groups
      if (auto v = decodeU16List16(e.data)) out.set("groups", u16Names(*v, namedGroupName));
      else out.set("error", "malformed supported_groups");
      return;
    }
    case 13:
    case 50: {  // signature_algorithms(_cert)
      if (auto v = decodeU16List16(e.data)) out.set("schemes", u16Names(*v, signatureSchemeName));
      else out.set("error", "malformed signature_algorithms");
      return;
    }
    case 43: {  // supported_versions
      if (from_client) {
        if (auto v = decodeU16List8(e.data)) out.set("versions", nameList(*v, versionName));
        else out.set("error", "malformed supported_versions");
      } else if (auto v = decodeU16(e.data)) {
        out.set("selected_version", std::string(versionName(*v)));
      } else {
        out.set("error", "malformed supported_versions");
      }
      return;
    }
    case 11:
    case 45: {  // ec_point_formats, psk_key_exchange_modes
      if (auto v = decodeU8List(e.data)) {
        Json a = Json::array();
        for (auto x : *v) a.push(static_cast<int>(x));
        out.set(e.type == 11 ? "formats" : "modes", std::move(a));
      } else {
        out.set("error", "malformed list");
      }
      return;
    }
    case 51: {  // key_share
      if (from_client) {
        if (auto v = decodeKeyShareClient(e.data)) {
          Json a = Json::array();
          for (const auto& ks : *v) {
            Json k = codeName(ks.group, namedGroupName(ks.group));
            k.set("length", ks.key_exchange.size());
            a.push(std::move(k));
          }
          out.set("shares", std::move(a));
        } else {
          out.set("error", "malformed key_share");
        }
      } else if (hrr) {
        if (auto g = decodeU16(e.data)) out.set("selected_group", codeName(*g, namedGroupName(*g)));
        else out.set("error", "malformed key_share");
      } else if (auto ks = decodeKeyShareServer(e.data)) {
        out.set("group", codeName(ks->group, namedGroupName(ks->group)));
        out.set("public", toHex(ks->key_exchange));
      } else {
        out.set("error", "malformed key_share");
      }
      return;
    }
    default:
      if (!e.data.empty()) out.set("raw", toHex(e.data, kRawCap));
      return;
  }
}

Json extensionsJson(const std::vector<Extension>& exts, bool from_client, bool hrr) {
  Json a = Json::array();
  for (const auto& e : exts) {
    Json x = Json::object();
    x.set("type", codeName(e.type, extensionName(e.type)));
    x.set("length", e.data.size());
    describeExtension(e, from_client, hrr, x);
    a.push(std::move(x));
  }
  return a;
}

void malformed(Json& body, const DecodeError& err, Bytes msg) {
  body.set("error", err.what + " at offset " + std::to_string(err.offset));
  body.set("raw", toHex(msg, kRawCap));
}

void clientHello(Bytes msg, Bytes body_bytes, Json& body) {
  auto d = decodeClientHello(body_bytes);
  if (!d.ok()) return malformed(body, d.error, msg);
  const ClientHello& ch = d.value;
  body.set("legacy_version", std::string(versionName(ch.legacy_version)));
  body.set("random", toHex(ch.random));
  body.set("session_id", toHex(ch.session_id));
  body.set("cipher_suites", u16Names(ch.cipher_suites, cipherSuiteName));
  Json comp = Json::array();
  for (auto c : ch.compression_methods) comp.push(static_cast<int>(c));
  body.set("compression_methods", std::move(comp));
  body.set("extensions", extensionsJson(ch.extensions, true, false));
  // Flattened convenience fields (events.md).
  if (auto* e = findExtension(ch.extensions, 0))
    if (auto v = decodeServerName(e->data); v && !v->empty()) body.set("sni", v->front());
  if (auto* e = findExtension(ch.extensions, 16))
    if (auto v = decodeAlpn(e->data)) body.set("alpn", strings(*v));
  if (auto* e = findExtension(ch.extensions, 43))
    if (auto v = decodeU16List8(e->data)) body.set("supported_versions", nameList(*v, versionName));
  if (auto* e = findExtension(ch.extensions, 10))
    if (auto v = decodeU16List16(e->data)) body.set("supported_groups", nameList(*v, namedGroupName));
  if (auto* e = findExtension(ch.extensions, 51)) {
    if (auto v = decodeKeyShareClient(e->data)) {
      Json a = Json::array();
      for (const auto& ks : *v) {
        Json k = Json::object();
        k.set("group", std::string(namedGroupName(ks.group)));
        k.set("length", ks.key_exchange.size());
        a.push(std::move(k));
      }
      body.set("key_share", std::move(a));
    }
  }
  if (auto* e = findExtension(ch.extensions, 13))
    if (auto v = decodeU16List16(e->data))
      body.set("signature_algorithms", nameList(*v, signatureSchemeName));
}

void serverHello(Bytes msg, Bytes body_bytes, MessageBody& out) {
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
  body.set("extensions", extensionsJson(sh.extensions, false, sh.hello_retry_request));
  std::uint16_t selected = sh.legacy_version;
  if (auto* e = findExtension(sh.extensions, 43))
    if (auto v = decodeU16(e->data)) selected = *v;
  body.set("selected_version", std::string(versionName(selected)));
  if (auto* e = findExtension(sh.extensions, 51)) {
    if (sh.hello_retry_request) {
      if (auto g = decodeU16(e->data)) {
        Json k = Json::object();
        k.set("group", std::string(namedGroupName(*g)));
        body.set("key_share", std::move(k));
      }
    } else if (auto ks = decodeKeyShareServer(e->data)) {
      Json k = Json::object();
      k.set("group", std::string(namedGroupName(ks->group)));
      k.set("public", toHex(ks->key_exchange));
      body.set("key_share", std::move(k));
    }
  }
  if (auto* e = findExtension(sh.extensions, 16))
    if (auto v = decodeAlpn(e->data); v && !v->empty()) body.set("alpn", v->front());
}

// RFC 8446 4.4.4 / RFC 5246 7.4.9: the whole body is verify_data.
void finished(Bytes body_bytes, Json& body) { body.set("verify_data", toHex(body_bytes)); }

// RFC 8446 4.6.3.
void keyUpdate(Bytes msg, Bytes body_bytes, Json& body) {
  ByteReader r(body_bytes, 4);
  std::uint8_t req = 0;
  if (!r.readU8(req) || !r.empty()) return malformed(body, {"bad KeyUpdate", r.offset()}, msg);
  body.set("request_update", req == 1);
}

}  // namespace

Json codeName(std::uint16_t id, std::string_view name) {
  Json o = Json::object();
  o.set("id", static_cast<int>(id));
  o.set("name", std::string(name));
  return o;
}

MessageBody describeHandshake(Bytes msg, bool /*tls13*/) {
  MessageBody out;
  auto hdr = decodeHandshakeHeader(msg);
  if (msg.size() < 4) {
    out.type = "unknown";
    out.length = static_cast<std::uint32_t>(msg.size());
    malformed(out.body, {"truncated handshake header", 0}, msg);
    return out;
  }
  out.type = std::string(handshakeTypeName(hdr.value.type));
  if (out.type == "unknown") out.type = "unknown(" + std::to_string(hdr.value.type) + ")";
  out.length = hdr.value.length;
  if (hdr.status != Status::Ok || msg.size() != hdr.consumed) {
    malformed(out.body, {"handshake length does not match the message", 1}, msg);
    return out;
  }
  Bytes body = msg.subspan(4);
  switch (hdr.value.type) {
    case 1: clientHello(msg, body, out.body); break;
    case 2: serverHello(msg, body, out); break;
    case 20: finished(body, out.body); break;
    case 24: keyUpdate(msg, body, out.body); break;
    default: break;
  }
  return out;
}

}  // namespace tlstrace::trace
