// `--format openssl`: handshake messages and alerts shaped like `openssl s_client -trace` (OpenSSL
// 3.0's ssl/t1_trce.c): `client_version=0x303 (TLS 1.2)`, list lengths in bytes, uppercase hex,
// its extension and certificate lines. Every line starts with "[#conn leg] " so both legs of every
// connection interleave; what follows the prefix diffs line by line against s_client's output of
// the same connection (tests/integration/test_renderers.py measures how well). Record headers are
// not shown: the message events do not carry them (`--trace record` has its own events).
#include <algorithm>
#include <cstdio>
#include <string>

#include "trace/text_internal.h"
#include "wire/byte_reader.h"

namespace tlstrace::trace::text_detail {

namespace {

using Lines = std::string;

std::string sp(int n) { return std::string(static_cast<std::size_t>(n), ' '); }

// "TLSv1.2" -> 0x303, and OpenSSL's "TLS 1.2" spelling.
int versionCode(std::string_view v) {
  if (v == "TLSv1.3") return 0x304;
  if (v == "TLSv1.2") return 0x303;
  if (v == "TLSv1.1") return 0x302;
  if (v == "TLSv1.0" || v == "TLSv1") return 0x301;
  if (v == "SSLv3") return 0x300;
  return 0;
}
std::string versionText(int code) {
  switch (code) {
    case 0x304: return "TLS 1.3";
    case 0x303: return "TLS 1.2";
    case 0x302: return "TLS 1.1";
    case 0x301: return "TLS 1.0";
    case 0x300: return "SSL 3.0";
    default: return "UNKNOWN";
  }
}

// t1_trce.c's names for the RFC 8422 / 7919 groups where they differ from the registry's.
std::string groupName(const Json& g) {
  switch (codeId(g)) {
    case 23: return "secp256r1 (P-256)";
    case 24: return "secp384r1 (P-384)";
    case 25: return "secp521r1 (P-521)";
    case 29: return "ecdh_x25519";
    case 30: return "ecdh_x448";
    default: return codeNameOf(g);
  }
}

std::string pair(std::int64_t id) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "{0x%02llX, 0x%02llX}", static_cast<unsigned long long>((id >> 8) & 0xff),
                static_cast<unsigned long long>(id & 0xff));
  return buf;
}

// BIO_dump_indent: "0000 - 0a 0b ...-... ascii"; the indent eats into the 16 bytes a line
// (crypto/bio/bio_dump.c's DUMP_WIDTH_LESS_INDENT).
void bioDump(Lines& out, int indent, const std::vector<std::uint8_t>& bytes) {
  const std::size_t width = 16 - static_cast<std::size_t>((indent - std::min(indent, 6) + 3) / 4);
  for (std::size_t at = 0; at < bytes.size(); at += width) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04zx - ", at);
    std::string line = sp(indent) + buf;
    std::string ascii;
    for (std::size_t i = 0; i < width; ++i) {
      if (at + i < bytes.size()) {
        char b[4];
        std::snprintf(b, sizeof b, "%02x%c", bytes[at + i], i == 7 ? '-' : ' ');
        line += b;
        const auto c = bytes[at + i];
        ascii += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
      } else {
        line += "   ";
      }
    }
    out += line + "  " + ascii + "\n";
  }
}

// RFC 6066 3 server_name body, written back from the decoded names (s_client dumps it raw).
std::vector<std::uint8_t> serverNameBytes(const Json& names) {
  std::vector<std::uint8_t> list;
  for (const auto& n : names.asArray()) {
    const auto s = n.asString();
    list.push_back(0);
    list.push_back(static_cast<std::uint8_t>(s.size() >> 8));
    list.push_back(static_cast<std::uint8_t>(s.size() & 0xff));
    list.insert(list.end(), s.begin(), s.end());
  }
  std::vector<std::uint8_t> out;
  out.reserve(list.size() + 2);
  out.push_back(static_cast<std::uint8_t>(list.size() >> 8));
  out.push_back(static_cast<std::uint8_t>(list.size() & 0xff));
  for (auto c : list) out.push_back(c);
  return out;
}

void extensionLines(Lines& out, const Json& x, bool from_client) {
  const std::string name = codeNameOf(field(x, "type"));
  const int in = 10;
  if (name == "server_name") {
    bioDump(out, in, serverNameBytes(field(x, "names")));
  } else if (name == "ec_point_formats") {
    static constexpr const char* kFormats[] = {"uncompressed", "ansiX962_compressed_prime",
                                               "ansiX962_compressed_char2"};
    for (const auto& f : field(x, "formats").asArray()) {
      std::size_t id = 0;
      while (id < 3 && f.asString() != std::string_view(kFormats[id])) ++id;
      out += sp(in) + esc(f.asString()) + " (" + std::to_string(id) + ")\n";
    }
  } else if (name == "supported_groups") {
    for (const auto& g : field(x, "groups").asArray())
      out += sp(in) + groupName(g) + " (" + std::to_string(codeId(g)) + ")\n";
  } else if (name == "signature_algorithms" || name == "signature_algorithms_cert") {
    for (const auto& s : field(x, "schemes").asArray()) {
      char buf[16];
      std::snprintf(buf, sizeof buf, " (0x%04llx)", static_cast<unsigned long long>(codeId(s)));
      out += sp(in) + codeNameOf(s) + buf + "\n";
    }
  } else if (name == "supported_versions" && from_client) {
    for (const auto& v : field(x, "versions").asArray())
      out += sp(in) + versionText(versionCode(v.asString())) + " (" + std::to_string(versionCode(v.asString())) + ")\n";
  } else if (name == "supported_versions") {
    const int v = versionCode(str(x, "selected_version"));
    out += sp(in + 2) + versionText(v) + " (" + std::to_string(v) + ")\n";
  } else if (name == "psk_key_exchange_modes") {
    for (const auto& m : field(x, "modes").asArray())
      out += sp(in) + esc(m.asString()) + (m.asString() == "psk_dhe_ke" ? " (1)\n" : " (0)\n");
  } else if (name == "application_layer_protocol_negotiation") {
    for (const auto& p : field(x, "protocols").asArray()) out += sp(in) + esc(p.asString()) + "\n";
  } else if (name == "key_share") {
    const auto share = [&](const Json& group, const Json& pub, std::int64_t len) {
      out += sp(in + 2) + "NamedGroup: " + groupName(group) + " (" + std::to_string(codeId(group)) + ")\n";
      out += sp(in + 2) + "key_exchange:  (len=" + std::to_string(len) + "): " + upperHex(pub.asString()) + "\n";
    };
    if (from_client)
      for (const auto& s : field(x, "shares").asArray()) share(s, field(s, "public"), intField(s, "length"));
    else if (const Json* g = x.find("group"))
      share(*g, field(x, "public"), static_cast<std::int64_t>(str(x, "public").size() / 2));
  } else if (name == "renegotiation_info" && intField(x, "renegotiated_connection_length") == 0) {
    out += sp(in + 2) + "<EMPTY>\n";
  } else if (const Json* raw = x.find("raw"); raw && raw->isString()) {
    bioDump(out, in, wire::fromHex(raw->asString()));
  }
}

// t1_trce.c's extension names where they differ from the IANA registry's.
std::string extensionName(const std::string& name) {
  if (name == "renegotiation_info") return "renegotiate";
  if (name == "pre_shared_key") return "psk";
  if (name == "signed_certificate_timestamp") return "signed_certificate_timestamps";
  return name;
}

void extensions(Lines& out, const Json& exts, bool from_client, int indent = 6) {
  const auto& a = exts.asArray();
  if (a.empty()) {
    out += sp(indent) + "No extensions\n";
    return;
  }
  std::int64_t total = 0;
  for (const auto& x : a) total += 4 + intField(x, "length");  // RFC 8446 4.2: type, length, data
  out += sp(indent) + "extensions, length = " + std::to_string(total) + "\n";
  for (const auto& x : a) {
    const Json& t = field(x, "type");
    out += sp(indent + 2) + "extension_type=" + extensionName(codeNameOf(t)) + "(" + std::to_string(codeId(t)) +
           "), length=" + std::to_string(intField(x, "length")) + "\n";
    extensionLines(out, x, from_client);
  }
}

// RFC 8446 4.1.2/4.1.3: the hellos; the random split the way t1_trce.c prints it.
void hello(Lines& out, const Json& b, bool client) {
  const int v = versionCode(str(b, "legacy_version"));
  char buf[48];
  std::snprintf(buf, sizeof buf, "=0x%x (%s)", v, versionText(v).c_str());
  out += sp(6) + (client ? "client_version" : "server_version") + buf + "\n";
  const std::string random = upperHex(str(b, "random"));
  out += sp(6) + "Random:\n" + sp(8) + "gmt_unix_time=0x" + random.substr(0, 8) + "\n";
  out += sp(8) + "random_bytes (len=" + std::to_string(random.size() / 2 - 4) +
         "): " + (random.size() > 8 ? random.substr(8) : "") + "\n";
  const std::string sid = upperHex(str(b, "session_id"));
  out += sp(6) + "session_id (len=" + std::to_string(sid.size() / 2) + "): " + sid + "\n";
  if (client) {
    const auto& suites = field(b, "cipher_suites").asArray();
    out += sp(6) + "cipher_suites (len=" + std::to_string(2 * suites.size()) + ")\n";
    for (const auto& s : suites) out += sp(8) + pair(codeId(s)) + " " + codeNameOf(s) + "\n";
    const auto& methods = field(b, "compression_methods").asArray();
    out += sp(6) + "compression_methods (len=" + std::to_string(methods.size()) + ")\n";
    for (const auto& m : methods) out += sp(8) + (m.asInt() == 0 ? "No Compression (0x00)" : "DEFLATE (0x01)") + "\n";
  } else {
    const Json& s = field(b, "cipher_suite");
    out += sp(6) + "cipher_suite " + pair(codeId(s)) + " " + codeNameOf(s) + "\n";
    out += sp(6) + "compression_method: " +
           (intField(b, "compression_method") == 0 ? "No Compression (0x00)" : "DEFLATE (0x01)") + "\n";
  }
  extensions(out, field(b, "extensions"), client);
}

// X509_print_ex's "Dec  3 11:52:07 2026 GMT" from "2026-12-03T11:52:07Z".
std::string x509Date(std::string_view iso) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (iso.size() < 19) return std::string(iso);
  const int month = std::atoi(std::string(iso.substr(5, 2)).c_str());
  const int day = std::atoi(std::string(iso.substr(8, 2)).c_str());
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s %2d %s %s GMT", kMonths[(month + 11) % 12], day,
                std::string(iso.substr(11, 8)).c_str(), std::string(iso.substr(0, 4)).c_str());
  return buf;
}

// "CN=a,O=b" (RFC 2253 order) as X509_NAME_print_ex's default "O = b, CN = a" (DER order).
std::string x509Name(std::string_view dn) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : dn) {
    if (c == ',') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  std::string s;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    const auto eq = it->find('=');
    if (!s.empty()) s += ", ";
    s += eq == std::string::npos ? *it : it->substr(0, eq) + " = " + it->substr(eq + 1);
  }
  return s;
}

// X509_print_ex's hex blocks: "04:6d:af:" lines of `per_line` bytes, the last without a colon.
void colonBlock(Lines& out, int indent, std::string_view hex, std::size_t per_line) {
  const std::size_t n = hex.size() / 2;
  for (std::size_t at = 0; at < n; at += per_line) {
    std::string line = sp(indent);
    for (std::size_t i = at; i < std::min(n, at + per_line); ++i) {
      line.append(hex.substr(2 * i, 2));
      if (i + 1 < n) line += ':';
    }
    out += line + "\n";
  }
}

// RFC 5480 curves by OpenSSL's short name, with the NIST name X509_print adds.
std::string nistCurve(const std::string& curve) {
  if (curve == "prime256v1") return "P-256";
  if (curve == "secp384r1") return "P-384";
  if (curve == "secp521r1") return "P-521";
  return {};
}

void publicKeyInfo(Lines& out, const Json& key) {
  const std::string type = str(key, "type");
  out += sp(8) + "Subject Public Key Info:\n" + sp(12) + "Public Key Algorithm: " +
         (type == "EC"    ? "id-ecPublicKey"
          : type == "RSA" ? "rsaEncryption"
                          : type) +
         "\n";
  out +=
      sp(16) + (type == "RSA" ? "Public-Key: (" : "Public-Key: (") + std::to_string(intField(key, "bits")) + " bit)\n";
  if (const Json* pub = key.find("public")) {
    out += sp(16) + "pub:\n";
    colonBlock(out, 20, pub->asString(), 15);
  }
  if (const Json* curve = key.find("curve")) {
    out += sp(16) + "ASN1 OID: " + std::string(curve->asString()) + "\n";
    if (const auto nist = nistCurve(std::string(curve->asString())); !nist.empty())
      out += sp(16) + "NIST CURVE: " + nist + "\n";
  }
}

void x509Extensions(Lines& out, const Json& exts) {
  if (!exts.isArray() || exts.asArray().empty()) return;
  out += sp(8) + "X509v3 extensions:\n";
  for (const auto& x : exts.asArray()) {
    out += sp(12) + str(x, "name") + ": " + (field(x, "critical").asBool() ? "critical" : "") + "\n";
    // OpenSSL's lines, each escaped (the names in them are the peer's)
    std::string text = rawStr(x, "text");
    if (text.empty()) text = rawStr(x, "der");
    appendEscapedLines(out, sp(16), text);
  }
}

void certificateDetails(Lines& out, const Json& c) {
  std::string serial = str(c, "serial");
  if (serial.size() % 2) serial.insert(serial.begin(), '0');
  std::string colons;
  for (std::size_t i = 0; i < serial.size(); i += 2) {
    if (i) colons += ':';
    colons.append(serial, i, 2);
  }
  out += "------details-----\nCertificate:\n    Data:\n";
  if (const Json* v = c.find("version")) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "Version: %lld (0x%llx)\n", static_cast<long long>(v->asInt()),
                  static_cast<long long>(v->asInt() - 1));
    out += sp(8) + buf;
  }
  out += sp(8) + "Serial Number:\n" + sp(12) + colons + "\n";
  out += sp(8) + "Signature Algorithm: " + str(c, "signature_algorithm") + "\n";
  out += sp(8) + "Issuer: " + x509Name(str(c, "issuer")) + "\n";
  out += sp(8) + "Validity\n" + sp(12) + "Not Before: " + x509Date(str(c, "not_before")) + "\n";
  out += sp(12) + "Not After : " + x509Date(str(c, "not_after")) + "\n";
  out += sp(8) + "Subject: " + x509Name(str(c, "subject")) + "\n";
  publicKeyInfo(out, field(c, "key"));
  x509Extensions(out, field(c, "x509_extensions"));
  out += sp(4) + "Signature Algorithm: " + str(c, "signature_algorithm") + "\n";
  if (const Json* sig = c.find("signature")) {
    out += sp(4) + "Signature Value:\n";
    colonBlock(out, 8, sig->asString(), 18);
  }
  out += "------------------\n";
}

// RFC 8446 4.4.2 / RFC 5246 7.4.2.
void certificate(Lines& out, const Json& b, std::int64_t msg_length) {
  const Json* ctx = b.find("request_context");
  if (ctx)
    out +=
        sp(6) + "context (len=" + std::to_string(ctx->asString().size() / 2) + "): " + upperHex(ctx->asString()) + "\n";
  const std::int64_t list = msg_length - 3 - (ctx ? 1 + static_cast<std::int64_t>(ctx->asString().size() / 2) : 0);
  out += sp(6) + "certificate_list, length=" + std::to_string(list) + "\n";
  const auto& chain = field(b, "chain").asArray();
  for (const auto& c : chain) {
    // The DER length is only derivable for a lone certificate without extensions.
    if (chain.size() == 1 && !c.find("extensions"))
      out += sp(8) + "ASN.1Cert, length=" + std::to_string(list - 3 - (ctx ? 2 : 0)) + "\n";
    certificateDetails(out, c);
    if (ctx) {
      const Json& exts = field(c, "extensions");
      if (exts.isArray()) extensions(out, exts, false, 8);
      else out += sp(8) + "No extensions\n";
    }
  }
}

std::string hexLine(int indent, std::string_view label, const Json& hex) {
  const auto s = hex.asString();
  return sp(indent) + std::string(label) + " (len=" + std::to_string(s.size() / 2) + "): " + upperHex(s) + "\n";
}

// RFC 5246 7.4.3 / 7.4.7, RFC 8422 5.4 / 5.7: the key exchange lines of t1_trce.c.
void keyExchange(Lines& out, bool server, const Json& b) {
  const std::string kex = str(b, "kex");
  out += sp(6) + "KeyExchangeAlgorithm=" + kex + "\n";
  if (server && b.find("curve")) {
    const Json& c = field(b, "curve");
    out += sp(8) + "named_curve: " + groupName(c) + " (" + std::to_string(codeId(c)) + ")\n";
    out += hexLine(8, "point", field(b, "public"));
  } else if (server && b.find("p")) {
    out +=
        hexLine(8, "dh_p", field(b, "p")) + hexLine(8, "dh_g", field(b, "g")) + hexLine(8, "dh_Ys", field(b, "public"));
  } else if (!server && b.find("public")) {
    out += hexLine(8, kex == "DHE" ? "dh_Yc" : "ecdh_Yc", field(b, "public"));
  }
  if (const Json* s = b.find("signature_algorithm")) {
    char buf[16];
    std::snprintf(buf, sizeof buf, " (0x%04llx)", static_cast<unsigned long long>(codeId(*s)));
    out += sp(6) + "Signature Algorithm: " + codeNameOf(*s) + buf + "\n";
    out += hexLine(6, "Signature", field(b, "signature"));
  }
}

void messageLines(Lines& out, const std::string& type, const Json& b, std::int64_t length) {
  if (type == "ChangeCipherSpec") {
    out += sp(4) + "change_cipher_spec (1)\n";
    return;
  }
  out += sp(4) + type + ", Length=" + std::to_string(length) + "\n";
  if (type == "ClientHello" || type == "ServerHello" || type == "HelloRetryRequest") {
    hello(out, b, type == "ClientHello");
  } else if (type == "EncryptedExtensions") {
    extensions(out, field(b, "extensions"), false);
  } else if (type == "Certificate") {
    certificate(out, b, length);
  } else if (type == "CertificateVerify") {
    const Json& s = field(b, "signature_algorithm");
    char buf[16];
    std::snprintf(buf, sizeof buf, " (0x%04llx)", static_cast<unsigned long long>(codeId(s)));
    out += sp(6) + "Signature Algorithm: " + codeNameOf(s) + buf + "\n";
    out += sp(6) + "Signature (len=" + std::to_string(intField(b, "signature_length")) +
           "): " + upperHex(str(b, "signature")) + "\n";
  } else if (type == "Finished") {
    const std::string v = upperHex(str(b, "verify_data"));
    out += sp(6) + "verify_data (len=" + std::to_string(v.size() / 2) + "): " + v + "\n";
  } else if (type == "ServerKeyExchange" || type == "ClientKeyExchange") {
    keyExchange(out, type == "ServerKeyExchange", b);
  } else if (type == "NewSessionTicket") {
    out += sp(8) + "ticket_lifetime_hint=" + str(b, "lifetime") + "\n";
    if (b.find("age_add")) out += sp(8) + "ticket_age_add=" + str(b, "age_add") + "\n";
    if (const Json* n = b.find("nonce"))
      out += sp(8) + "ticket_nonce (len=" + std::to_string(n->asString().size() / 2) + "): " + upperHex(n->asString()) +
             "\n";
    out += sp(8) + "ticket (len=" + str(b, "ticket_length") + "): " + upperHex(str(b, "ticket")) + "\n";
    if (const Json* e = b.find("extensions"); e && b.find("nonce")) extensions(out, *e, false, 8);  // TLS 1.3 only
  } else {
    for (const auto& [k, v] : b.asObject()) out += sp(6) + esc(k) + "=" + scalar(v) + "\n";
  }
}

// SSL_alert_desc_string_long's wording: the registry name with blanks (and its "CA").
std::string alertText(std::string d) {
  if (d == "unknown_ca") return "unknown CA";
  for (auto& c : d)
    if (c == '_') c = ' ';
  return d;
}

}  // namespace

std::string renderOpenssl(const Event& e) {
  const std::string prefix =
      "[#" + std::to_string(e.conn) + " " + std::string(e.leg == Leg::None ? "conn" : legName(e.leg)) + "] ";
  Json scratch;
  const Json& f = fieldsOf(e, scratch);
  const bool sent = str(f, "dir") == "out";
  Lines body;
  if (e.name() == "tls.message") {
    body = std::string(sent ? "Sent" : "Received") + " Message\n";
    const Json& b = field(f, "body");
    messageLines(body, str(f, "type"), b, intField(f, "length"));
  } else if (e.name() == "tls.alert") {
    body = std::string(sent ? "Sent" : "Received") + " Alert\n";
    const std::string level = str(f, "level");
    body += sp(4) + "Level=" + level + (level == "fatal" ? "(2)" : "(1)") +
            ", description=" + alertText(str(f, "description")) + "(" + str(f, "code") + ")\n";
  } else {
    body = esc(e.name()) + "\n";
    for (const auto& [k, v] : f.asObject()) body += sp(2) + esc(k) + "=" + scalar(v) + "\n";
  }
  std::string out;
  std::size_t at = 0;
  while (at < body.size()) {
    const std::size_t nl = body.find('\n', at);
    out += prefix + body.substr(at, nl - at + 1);
    at = nl + 1;
  }
  return out;
}

}  // namespace tlstrace::trace::text_detail
