// `--format jsse`: blocks shaped like JDK 17's -Djavax.net.debug=ssl:handshake output, with JSSE's
// own header wording, field names ("client version", "session id"), uppercase hex and extension
// block shapes, so a proxy trace diffs line by line against a Java peer's log of the same
// connection (tests/integration/test_renderers.py measures how well).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "trace/text_internal.h"
#include "wire/byte_reader.h"

namespace tlstrace::trace::text_detail {

namespace {

std::string pad(int indent) { return std::string(static_cast<std::size_t>(indent) * 2, ' '); }

std::string jsseTime(Clock::time_point tp) {
  std::string t = formatTimestamp(tp);  // 2026-11-27T08:00:00.123456Z
  return t.substr(0, 10) + " " + t.substr(11, 12) + " UTC";
}

// "name(0xHHHH)": how JSSE writes cipher suites.
std::string jsseCode(const Json& v) {
  if (!isCodeName(v)) return v.isString() ? esc(v.asString()) : v.dump();
  char buf[16];
  std::snprintf(buf, sizeof buf, "(0x%04llX)", static_cast<unsigned long long>(codeId(v)));
  return codeNameOf(v) + buf;
}

// JSSE's SignatureScheme names where they differ from the IANA registry's.
std::string jsseSchemeName(const Json& v) {
  if (codeId(v) == 0x0301) return "rsa_sha224";
  return isCodeName(v) ? codeNameOf(v) : esc(v.asString());
}

// "[a, b, c]": names only, as JSSE prints groups, versions, schemes and modes inside extensions.
std::string nameList(const Json& a, bool schemes = false) {
  std::string s = "[";
  for (const auto& x : a.asArray()) {
    if (s.size() > 1) s += ", ";
    s += schemes ? jsseSchemeName(x) : (isCodeName(x) ? codeNameOf(x) : scalar(x));
  }
  return s + "]";
}

// `"key"` padded to `width`, then ": " and the quoted value: JSSE's aligned message fields.
void quoted(std::string& out, int indent, std::string_view key, const std::string& value, std::size_t width,
            bool comma = true) {
  std::string k = "\"" + std::string(key) + "\"";
  if (k.size() < width) k.resize(width, ' ');
  out += pad(indent) + k + ": \"" + value + "\"" + (comma ? ",\n" : "\n");
}

// sun.security.util.HexDumpEncoder: "0000: 0A 0B ... 08   09 ...  ascii", 16 bytes a line, ' '
// to 'z' shown as themselves. encodeBuffer() pads a short last line and adds its ascii; encode()
// (what JSSE uses for key shares) leaves both out.
void hexDump(std::string& out, int indent, std::string_view hex, bool buffer = true) {
  const auto bytes = wire::fromHex(hex);
  for (std::size_t at = 0; at < bytes.size(); at += 16) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04zX: ", at);
    std::string line = pad(indent) + buf;
    std::string ascii;
    for (std::size_t i = 0; i < 16; ++i) {
      if (at + i < bytes.size()) {
        char b[4];
        std::snprintf(b, sizeof b, "%02X ", bytes[at + i]);
        line += b;
        const auto c = bytes[at + i];
        ascii += (c >= 0x20 && c <= 'z') ? static_cast<char>(c) : '.';
      } else if (!buffer) {
        break;
      } else {
        line += "   ";
      }
      if (i == 7) line += "  ";
    }
    if (!buffer && at + 16 > bytes.size()) {
      out += line + "\n";
      break;
    }
    if (at + 16 >= bytes.size()) {  // a short last line keeps the column, its trailing blanks trimmed
      while (!line.empty() && line.back() == ' ') line.pop_back();
      line.resize(pad(indent).size() + 6 + 50, ' ');
    }
    out += line + " " + ascii + "\n";
  }
}

// A `"name": { dump }` block; `close` is what JSSE closes it with ("}" or Finished's "}'}").
void dumpBlock(std::string& out, int indent, std::string_view key, const Json& hex, std::string_view close = "}",
               bool buffer = true) {
  out += pad(indent) + "\"" + std::string(key) + "\": {\n";
  if (hex.isString()) hexDump(out, indent + 1, hex.asString(), buffer);
  out += pad(indent) + std::string(close) + "\n";
}

void keyShareEntry(std::string& out, int indent, const Json& group, const Json& pub, bool list_item) {
  out += pad(indent) + "{\n";
  out += pad(indent + 1) + "\"named group\": " + codeNameOf(group) + "\n";
  dumpBlock(out, indent + 1, "key_exchange", pub, "}", false);
  out += pad(indent) + (list_item ? "},\n" : "},\n");
}

// "7,200": JSSE groups digits in ticket lifetimes and extension ids ("65,281").
std::string grouped(std::int64_t v) {
  const std::string digits = std::to_string(v);
  std::string s;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && digits[i] != '-' && digits[i - 1] != '-' && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

// RFC 6066 8 OCSPStatusRequest, as JSSE prints it (its lists' contents are not kept: their sizes).
void ocspRequest(std::string& out, int in, const Json& q) {
  const auto list = [&](std::string_view key) {
    const auto n = intField(q, key);
    return n == 0 ? std::string("<empty>") : "<" + std::to_string(n) + " bytes>";
  };
  out += pad(in) + "\"certificate status type\": " + str(q, "status_type") + "\n";
  out += pad(in) + "\"OCSP status request\": {\n" + pad(in + 1) +
         "\"responder_id\": " + list("responder_id_list_length") + "\n";
  out += pad(in + 1) + "\"request extensions\": {\n" + pad(in + 2) + list("request_extensions_length") + "\n" +
         pad(in + 1) + "}\n";
  out += pad(in) + "}\n";
}

// The lines inside one extension's block (RFC 8446 4.2 and friends), in JSSE's shapes.
void extensionBody(std::string& out, int in, const Json& x, bool from_client) {
  const std::string name = codeNameOf(field(x, "type"));
  const auto empty = [&] { out += pad(in) + "<empty>\n"; };
  if (name == "server_name") {
    for (const auto& n : field(x, "names").asArray())
      out += pad(in) + "type=host_name (0), value=" + esc(n.asString()) + "\n";
  } else if (name == "status_request" && x.find("responder_id_list_length")) {
    ocspRequest(out, in, x);
  } else if (name == "status_request_v2") {
    for (const auto& q : field(x, "requests").asArray()) {
      out += pad(in) + "\"cert status request\": {\n";
      ocspRequest(out, in + 1, q);
      out += pad(in) + "}\n";
    }
  } else if (name == "supported_groups") {
    out += pad(in) + "\"versions\": " + nameList(field(x, "groups")) + "\n";  // JSSE's own label
  } else if (name == "ec_point_formats") {
    out += pad(in) + "\"formats\": " + nameList(field(x, "formats")) + "\n";
  } else if (name == "signature_algorithms" || name == "signature_algorithms_cert") {
    out += pad(in) + "\"signature schemes\": " + nameList(field(x, "schemes"), true) + "\n";
  } else if (name == "supported_versions" && from_client) {
    out += pad(in) + "\"versions\": " + nameList(field(x, "versions")) + "\n";
  } else if (name == "supported_versions") {
    out += pad(in) + "\"selected version\": [" + str(x, "selected_version") + "]\n";
  } else if (name == "psk_key_exchange_modes") {
    out += pad(in) + "\"ke_modes\": " + nameList(field(x, "modes")) + "\n";
  } else if (name == "application_layer_protocol_negotiation") {
    out += pad(in) + nameList(field(x, "protocols")) + "\n";
  } else if (name == "key_share" && from_client) {
    out += pad(in) + "\"client_shares\": [  \n";
    for (const auto& s : field(x, "shares").asArray()) keyShareEntry(out, in + 1, s, field(s, "public"), true);
    out += pad(in) + "]\n";
  } else if (name == "key_share") {
    out += pad(in) + "\"server_share\": {\n";
    out += pad(in + 1) + "\"named group\": " + codeNameOf(field(x, "group")) + "\n";
    dumpBlock(out, in + 1, "key_exchange", field(x, "public"), "}", false);
    out += pad(in) + "},\n";
  } else if (name == "renegotiation_info" && intField(x, "renegotiated_connection_length") == 0) {
    out += pad(in) + "\"renegotiated connection\": [<no renegotiated connection>]\n";
  } else if (intField(x, "length") == 0 || (name == "session_ticket" && intField(x, "ticket_length") == 0)) {
    empty();
  } else {
    for (const auto& [k, v] : x.asObject())
      if (k != "type" && k != "length") out += pad(in) + "\"" + esc(k) + "\": " + scalar(v) + "\n";
  }
}

// `"name (id)": { ... }` for each extension, JSSE's wire order, the last without a comma.
void extensionList(std::string& out, int indent, const Json& exts, bool from_client) {
  const auto& a = exts.asArray();
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Json& t = field(a[i], "type");
    out += pad(indent) + "\"" + codeNameOf(t) + " (" + grouped(codeId(t)) + ")\": {\n";  // "65,281"
    extensionBody(out, indent + 1, a[i], from_client);
    out += pad(indent) + (i + 1 == a.size() ? "}\n" : "},\n");
  }
}

void hello(std::string& out, const std::string& type, const Json& b, bool client) {
  out += "\"" + type + "\": {\n";
  quoted(out, 1, client ? "client version" : "server version", str(b, "legacy_version"), 22);
  quoted(out, 1, "random", upperHex(str(b, "random")), 22);
  quoted(out, 1, "session id", upperHex(str(b, "session_id")), 22);
  if (client) {
    std::string suites = "[";
    for (const auto& s : field(b, "cipher_suites").asArray()) {
      if (suites.size() > 1) suites += ", ";
      suites += jsseCode(s);
    }
    quoted(out, 1, "cipher suites", suites + "]", 22);
    std::string methods;
    for (const auto& m : field(b, "compression_methods").asArray()) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%02llX", static_cast<unsigned long long>(m.asInt()));
      methods += buf;
    }
    quoted(out, 1, "compression methods", methods, 22);
  } else {
    quoted(out, 1, "cipher suite", jsseCode(field(b, "cipher_suite")), 22);
    char buf[4];
    std::snprintf(buf, sizeof buf, "%02llX", static_cast<unsigned long long>(intField(b, "compression_method")));
    quoted(out, 1, "compression methods", buf, 22);
  }
  out += pad(1) + "\"extensions\"          : [\n";
  extensionList(out, 2, field(b, "extensions"), client);
  out += pad(1) + "]\n}\n";
}

// "2026-12-03T11:52:06Z" as JSSE prints certificate dates: "2026-12-03 11:52:06.000 UTC".
std::string jsseDate(std::string_view iso) {
  if (iso.size() < 19) return std::string(iso);
  return std::string(iso.substr(0, 10)) + " " + std::string(iso.substr(11, 8)) + ".000 UTC";
}

// OpenSSL's one-line names ("CN=a,O=b") with the ", " JSSE's X500Name uses.
std::string jsseName(std::string_view dn) {
  std::string s;
  for (char c : dn) s += c == ',' ? std::string(", ") : std::string(1, c);
  return s;
}

// OpenSSL's signature algorithm long names as Java's standard names.
std::string jsseSigAlg(const std::string& n) {
  if (n == "ecdsa-with-SHA256") return "SHA256withECDSA";
  if (n == "ecdsa-with-SHA384") return "SHA384withECDSA";
  if (n == "ecdsa-with-SHA512") return "SHA512withECDSA";
  if (n == "sha256WithRSAEncryption") return "SHA256withRSA";
  if (n == "sha384WithRSAEncryption") return "SHA384withRSA";
  if (n == "sha512WithRSAEncryption") return "SHA512withRSA";
  if (n == "sha1WithRSAEncryption") return "SHA1withRSA";
  return n;
}

// The serial as Java prints a certificate's: colon-separated lowercase byte pairs.
std::string jsseSerial(std::string hex) {
  if (hex.size() % 2) hex.insert(hex.begin(), '0');
  std::string s;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    if (i) s += ':';
    s.append(hex, i, 2);
  }
  return s;
}

// Java's names for OpenSSL's key usage and extended key usage words (RFC 5280 4.2.1.3, 4.2.1.12).
std::string javaUsage(const std::string& s) {
  static constexpr std::pair<std::string_view, std::string_view> kNames[] = {
      {"Digital Signature", "DigitalSignature"},
      {"Non Repudiation", "Non_repudiation"},
      {"Key Encipherment", "Key_Encipherment"},
      {"Data Encipherment", "Data_Encipherment"},
      {"Key Agreement", "Key_Agreement"},
      {"Certificate Sign", "Key_CertSign"},
      {"CRL Sign", "Crl_Sign"},
      {"Encipher Only", "Encipher_Only"},
      {"Decipher Only", "Decipher_Only"},
      {"TLS Web Server Authentication", "serverAuth"},
      {"TLS Web Client Authentication", "clientAuth"},
      {"Code Signing", "codeSigning"},
      {"E-mail Protection", "emailProtection"},
      {"Time Stamping", "timeStamping"},
      {"OCSP Signing", "OCSPSigning"},
  };
  for (const auto& [from, to] : kNames)
    if (s == from) return std::string(to);
  return s;
}

std::vector<std::string> splitList(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t at = 0;
  while (at <= text.size()) {
    std::size_t end = text.find(", ", at);
    if (end == std::string::npos) end = text.size();
    std::string p = text.substr(at, end - at);
    while (!p.empty() && (p.back() == '\n' || p.back() == ' ')) p.pop_back();
    if (!p.empty()) parts.push_back(p);
    at = end + 2;
  }
  return parts;
}

// "79:42:D3" (OpenSSL's key identifier text, maybe after "keyid:") as plain hex.
std::string colonHex(std::string s) {
  if (s.rfind("keyid:", 0) == 0) s = s.substr(6);
  std::string hex;
  for (char c : s)
    if (std::isxdigit(static_cast<unsigned char>(c))) hex += c;
    else if (c == '\n') break;
  return hex;
}

// Java's class name for an extension, which also orders them (sun.security.x509's TreeMap).
std::string javaExtensionName(const std::string& oid) {
  if (oid == "2.5.29.35") return "AuthorityKeyIdentifier";
  if (oid == "2.5.29.19") return "BasicConstraints";
  if (oid == "2.5.29.37") return "ExtendedKeyUsages";
  if (oid == "2.5.29.15") return "KeyUsage";
  if (oid == "2.5.29.17") return "SubjectAlternativeName";
  if (oid == "2.5.29.14") return "SubjectKeyIdentifier";
  return oid;
}

// One X.509 extension as Java's Extension.toString prints it, rebuilt from OpenSSL's text (taken
// apart as it is, each piece escaped: its names are the peer's).
void x509Extension(std::string& out, int in, const Json& x, bool last) {
  const std::string oid = str(x, "oid");
  const std::string text = rawStr(x, "text");
  const std::string name = javaExtensionName(oid);
  out += pad(in) + "{\n" + pad(in + 1) + "ObjectId: " + oid +
         " Criticality=" + (field(x, "critical").asBool() ? "true" : "false") + "\n";
  const std::string p = pad(in + 1);
  if (oid == "2.5.29.35" || oid == "2.5.29.14") {
    out += p + name + " [\n" + p + "KeyIdentifier [\n";
    hexDump(out, in + 1, colonHex(text));
    out += p + "]\n" + p + "]\n";
  } else if (oid == "2.5.29.19") {
    const bool ca = text.find("CA:TRUE") != std::string::npos;
    const auto at = text.find("pathlen:");
    out += p + "BasicConstraints:[\n" + p + "  CA:" + (ca ? "true" : "false") + "\n";
    out += p + "  PathLen:" + (at == std::string::npos ? " undefined" : colonHex(text.substr(at + 8))) + "\n";
    out += p + "]\n";
  } else if (oid == "2.5.29.37" || oid == "2.5.29.15") {
    out += p + name + " [\n";
    for (const auto& u : splitList(text)) out += p + "  " + esc(javaUsage(u)) + "\n";
    out += p + "]\n";
  } else if (oid == "2.5.29.17") {
    out += p + "SubjectAlternativeName [\n";
    for (auto n : splitList(text)) {
      if (n.rfind("DNS:", 0) == 0) n = "DNSName: " + n.substr(4);
      else if (n.rfind("IP Address:", 0) == 0) n = "IPAddress: " + n.substr(11);
      else if (n.rfind("email:", 0) == 0) n = "RFC822Name: " + n.substr(6);
      else if (n.rfind("URI:", 0) == 0) n = "URIName: " + n.substr(4);
      out += p + "  " + esc(n) + "\n";
    }
    out += p + "]\n";
  } else {
    out += p;  // OpenSSL's lines as they are: the first one indented
    appendEscapedLines(out, "", text);
    if (text.empty() || text.back() == '\n') out += '\n';
  }
  out += pad(in) + (last ? "}\n" : "},\n");
}

void x509Extensions(std::string& out, int in, const Json& exts) {
  std::vector<const Json*> sorted;
  for (const auto& x : exts.asArray()) sorted.push_back(&x);
  std::stable_sort(sorted.begin(), sorted.end(), [](const Json* a, const Json* b) {
    return javaExtensionName(str(*a, "oid")) < javaExtensionName(str(*b, "oid"));
  });
  out += pad(in) + "\"extensions\"         : [\n";
  for (std::size_t i = 0; i < sorted.size(); ++i) x509Extension(out, in + 1, *sorted[i], i + 1 == sorted.size());
  out += pad(in) + "]}\n";
}

// One certificate as JSSE prints an X509Certificate: `"certificate" : {` at `in`, closed by the
// extension list's "]}" (or "}" without extensions).
void certificateEntry(std::string& out, int in, const Json& c) {
  out += pad(in) + "\"certificate\" : {\n";
  if (const Json* v = c.find("version")) quoted(out, in + 1, "version", "v" + scalar(*v), 21);
  quoted(out, in + 1, "serial number", jsseSerial(str(c, "serial")), 21);
  quoted(out, in + 1, "signature algorithm", jsseSigAlg(str(c, "signature_algorithm")), 21);
  quoted(out, in + 1, "issuer", jsseName(str(c, "issuer")), 21);
  quoted(out, in + 1, "not before", jsseDate(str(c, "not_before")), 21);
  quoted(out, in + 1, "not  after", jsseDate(str(c, "not_after")), 21);  // sic: JSSE's two blanks
  quoted(out, in + 1, "subject", jsseName(str(c, "subject")), 21);
  const Json& x509 = field(c, "x509_extensions");
  const bool has_x509 = x509.isArray() && !x509.asArray().empty();
  quoted(out, in + 1, "subject public key", str(field(c, "key"), "type"), 21, has_x509);
  if (has_x509) x509Extensions(out, in + 1, x509);
  else out += pad(in) + "}\n";
}

void certificate(std::string& out, const Json& b) {
  if (!b.find("request_context")) {  // TLS 1.2 (RFC 5246 7.4.2): JSSE's T12CertificateMessage
    out += "\"Certificates\": [\n";
    for (const auto& c : field(b, "chain").asArray()) certificateEntry(out, 1, c);
    out += "]\n";
    return;
  }
  out += "\"Certificate\": {\n";
  quoted(out, 1, "certificate_request_context", upperHex(str(b, "request_context")), 0);
  out += pad(1) + "\"certificate_list\": [  \n";
  for (const auto& c : field(b, "chain").asArray()) {
    out += pad(1) + "{\n";
    certificateEntry(out, 2, c);
    const Json& exts = field(c, "extensions");
    out += pad(2) + "\"extensions\": {\n";
    if (exts.isArray() && !exts.asArray().empty()) extensionList(out, 3, exts, false);
    else out += pad(3) + "<no extension>\n";
    out += pad(2) + "}\n" + pad(1) + "},\n";
  }
  out += "]\n}\n";
}

// RFC 5246 7.4.3 / RFC 8422 5.4: JSSE's ECDH and DH ServerKeyExchange blocks.
void serverKeyExchange(std::string& out, const Json& b) {
  const bool ec = b.find("curve") != nullptr;
  out += ec ? "\"ECDH ServerKeyExchange\": {\n" : "\"DH ServerKeyExchange\": {\n";
  out += pad(1) + "\"parameters\": {\n";
  if (ec) {
    out += pad(2) + "\"named group\": \"" + codeNameOf(field(b, "curve")) + "\"\n";
    dumpBlock(out, 2, "ecdh public", field(b, "public"), "},");
  } else {
    dumpBlock(out, 2, "dh_p", field(b, "p"), "},");
    dumpBlock(out, 2, "dh_g", field(b, "g"), "},");
    dumpBlock(out, 2, "dh_Ys", field(b, "public"), "},");
  }
  out += pad(1) + "},\n";
  if (const Json* alg = b.find("signature_algorithm")) {
    out += pad(1) + "\"digital signature\":  {\n";
    out += pad(2) + "\"signature algorithm\": \"" + codeNameOf(*alg) + "\"\n";
    dumpBlock(out, 2, "signature", field(b, "signature"), "},");
    out += pad(1) + "}\n";
  }
  out += "}\n";
}

// RFC 5246 7.4.7 / RFC 8422 5.7.
bool clientKeyExchange(std::string& out, const Json& b) {
  const std::string kex = str(b, "kex");
  if (kex == "ECDHE") {
    out += "\"ECDH ClientKeyExchange\": {\n";
    dumpBlock(out, 1, "ecdh public", field(b, "public"), "},");
  } else if (kex == "DHE") {
    out += "\"DH ClientKeyExchange\": {\n" + pad(1) + "\"parameters\": {\n";
    dumpBlock(out, 2, "dh_Yc", field(b, "public"), "},");
    out += pad(1) + "}\n";
  } else {
    return false;
  }
  out += "}\n";
  return true;
}

// The block of one handshake message; false when JSSE has no specific shape for it.
bool messageBody(std::string& out, const std::string& type, const Json& b) {
  if (type == "ClientHello" || type == "ServerHello" || type == "HelloRetryRequest") {
    hello(out, type, b, type == "ClientHello");
  } else if (type == "EncryptedExtensions") {
    out += "\"EncryptedExtensions\": [\n";
    if (field(b, "extensions").asArray().empty()) out += pad(1) + "<no extension>\n";
    else extensionList(out, 1, field(b, "extensions"), false);
    out += "]\n";
  } else if (type == "Certificate") {
    certificate(out, b);
  } else if (type == "ServerKeyExchange" && (b.find("curve") || b.find("p"))) {
    serverKeyExchange(out, b);
  } else if (type == "ClientKeyExchange") {
    return clientKeyExchange(out, b);
  } else if (type == "ServerHelloDone") {
    out += "<empty>\n";
  } else if (type == "CertificateVerify") {
    out += "\"CertificateVerify\": {\n" + pad(1) +
           "\"signature algorithm\": " + codeNameOf(field(b, "signature_algorithm")) + "\n";
    dumpBlock(out, 1, "signature", field(b, "signature"));
    out += "}\n";
  } else if (type == "Finished") {
    out += "\"Finished\": {\n";
    dumpBlock(out, 1, "verify data", field(b, "verify_data"), "}'}", false);  // sic: JDK 17's closing
  } else if (type == "NewSessionTicket" && !b.find("nonce")) {                // RFC 5077 3.3
    out += "\"NewSessionTicket\": {\n";
    quoted(out, 1, "ticket_lifetime", grouped(intField(b, "lifetime")), 23);
    out += pad(1) + "\"ticket\"               : {\n";
    if (const Json* t = b.find("ticket"); t && t->isString()) hexDump(out, 2, t->asString());
    out += pad(1) + "}'}\n";  // sic
  } else if (type == "NewSessionTicket") {
    out += "\"NewSessionTicket\": {\n";
    quoted(out, 1, "ticket_lifetime", grouped(intField(b, "lifetime")), 23);
    quoted(out, 1, "ticket_age_add", "<omitted>", 23);
    quoted(out, 1, "ticket_nonce", upperHex(str(b, "nonce")), 23);
    out += pad(1) + "\"ticket\"               : {\n";
    if (const Json* t = b.find("ticket"); t && t->isString()) hexDump(out, 2, t->asString());
    out += pad(1) + "}  \"extensions\"           : [\n" + pad(2) + "<no extension>\n" + pad(1) + "]\n}\n";
  } else {
    return false;
  }
  return true;
}

void genericValue(const std::string& key, const Json& v, int indent, std::string& out, bool last) {
  const std::string comma = last ? "" : ",";
  std::string k = "\"" + esc(key) + "\"";
  if (k.size() < 22) k.resize(22, ' ');
  if (v.isArray() || (v.isObject() && !isCodeName(v))) {
    const bool arr = v.isArray();
    out += pad(indent) + k + (arr ? ": [\n" : ": {\n");
    const std::size_t n = arr ? v.asArray().size() : v.asObject().size();
    for (std::size_t i = 0; i < n; ++i) {
      if (arr) genericValue(std::to_string(i), v.asArray()[i], indent + 1, out, i + 1 == n);
      else genericValue(std::string(v.asObject()[i].first), v.asObject()[i].second, indent + 1, out, i + 1 == n);
    }
    out += pad(indent) + (arr ? "]" : "}") + comma + "\n";
    return;
  }
  out += pad(indent) + k + ": \"" + jsseCode(v) + "\"" + comma + "\n";
}

// JSSE's header wording for one handshake message, from the sender's role (RFC 8446 2: the
// client leg's peer is a client, the upstream leg's a server).
std::string messageHeadline(const std::string& type, bool sent, bool sender_is_server, bool tls13,
                            const std::string& kex) {
  const std::string role = sender_is_server ? "server " : "client ";
  if (type == "ChangeCipherSpec")
    return sent ? "Produced ChangeCipherSpec message" : "Consuming ChangeCipherSpec message";
  if (type == "Certificate")
    return sent ? "Produced " + role + "Certificate " + (tls13 ? "message (" : "handshake message (")
                : "Consuming " + role + "Certificate handshake message (";
  if (type == "Finished") return (sent ? "Produced " : "Consuming ") + role + "Finished handshake message (";
  if (type == "CertificateVerify" && sent && tls13) return "Produced " + role + "CertificateVerify handshake message (";
  if (type == "EncryptedExtensions" && sent) return "Produced EncryptedExtensions message (";
  if (type == "NewSessionTicket")
    return sent ? (tls13 ? "Produced NewSessionTicket post-handshake message ("
                         : "Produced NewSessionTicket stateless handshake message (")
                : "Consuming NewSessionTicket message (";
  if (type == "ServerKeyExchange" || type == "ClientKeyExchange") {
    // JSSE names the key exchange: "ECDH ServerKeyExchange", "ECDHE ClientKeyExchange".
    std::string kind = kex == "ECDHE" ? (type[0] == 'S' ? "ECDH " : "ECDHE ")
                       : kex == "DHE" ? (type[0] == 'S' ? "DH " : "DHE ")
                                      : "";
    return (sent ? "Produced " : "Consuming ") + kind + type + " handshake message (";
  }
  return (sent ? "Produced " : "Consuming ") + type + " handshake message (";
}

}  // namespace

std::string renderJsse(const Event& e) {
  const std::string head = "javax.net.ssl|DEBUG|#" + std::to_string(e.conn) + "|" +
                           std::string(e.leg == Leg::None ? "conn" : legName(e.leg)) + "|" + jsseTime(e.ts) +
                           "|tlstrace|";
  Json scratch;
  const Json& f = fieldsOf(e, scratch);
  const bool sent = str(f, "dir") == "out";
  if (e.name() == "tls.message") {
    const std::string type = str(f, "type");
    const Json& b = field(f, "body");
    const bool sender_is_server = (e.leg == Leg::Client) == sent;
    const bool tls13 = b.find("request_context") || b.find("nonce") || type == "EncryptedExtensions";
    std::string s = head + messageHeadline(type, sent, sender_is_server, tls13, str(b, "kex")) + "\n";
    if (type == "ChangeCipherSpec") return s;
    if (b.isObject() && messageBody(s, type, b)) return s + ")\n";
    s += "\"" + type + "\": {\n";  // (str(): escaped)
    if (b.isObject()) {
      const auto& o = b.asObject();
      for (std::size_t i = 0; i < o.size(); ++i) genericValue(o[i].first, o[i].second, 1, s, i + 1 == o.size());
    }
    return s + "}\n)\n";
  }
  if (e.name() == "tls.alert")
    return head + (sent ? "Produced" : "Received") + " alert message (\n\"Alert\": {\n  \"level\"      : \"" +
           str(f, "level") + "\",\n  \"description\": \"" + str(f, "description") + "\"\n}\n)\n";
  std::string s = head + esc(e.name()) + " (\n{\n";
  const auto& o = f.asObject();
  for (std::size_t i = 0; i < o.size(); ++i) genericValue(o[i].first, o[i].second, 1, s, i + 1 == o.size());
  return s + "}\n)\n";
}

}  // namespace tlstrace::trace::text_detail
