// The STARTTLS preamble machine: the binary protocols (PostgreSQL, MySQL, LDAP). Every message is
// read through wire::ByteReader; a message that does not parse ends the preamble (plain relay).
#include <cstdio>

#include "session/starttls.h"
#include "session/starttls_internal.h"
#include "wire/byte_reader.h"

namespace tlstrace::session {

namespace {

constexpr std::size_t kMaxMessage = 64 * 1024;
// PostgreSQL (protocol docs 55.2.10, 55.7): SSLRequest and GSSENCRequest, 8 bytes each.
constexpr std::uint32_t kPgSslRequest = 80877103;     // 1234 << 16 | 5679
constexpr std::uint32_t kPgGssEncRequest = 80877104;  // 1234 << 16 | 5680
constexpr std::uint32_t kPgProtocol3 = 196608;        // StartupMessage, protocol 3.0
constexpr std::uint32_t kPgCancel = 80877102;
// MySQL client/server protocol: capability flag CLIENT_SSL, and the SSLRequest packet's payload
// (capabilities 4, max packet 4, charset 1, 23 zero bytes).
constexpr std::uint32_t kMysqlClientSsl = 0x800;
constexpr std::size_t kMysqlSslRequestSize = 32;
// LDAP (RFC 4511 4.14.1): the StartTLS extended operation's OID.
constexpr std::string_view kLdapStartTls = "1.3.6.1.4.1.1466.20037";
constexpr std::uint8_t kBerSequence = 0x30, kBerInteger = 0x02, kBerEnumerated = 0x0a, kBerOctets = 0x04;
constexpr std::uint8_t kLdapExtendedRequest = 0x77, kLdapExtendedResponse = 0x78, kLdapRequestName = 0x80;

std::string_view asText(wire::Bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// Little-endian integers (MySQL), read as bytes through the reader.
bool readLE(wire::ByteReader& r, std::size_t n, std::uint32_t& out) {
  wire::Bytes b;
  if (!r.readBytes(n, b)) return false;
  out = 0;
  for (std::size_t i = n; i-- > 0;) out = (out << 8) | b[i];
  return true;
}

// One BER TLV (X.690 8.1; LDAP uses definite lengths only, RFC 4511 5.1).
bool readTlv(wire::ByteReader& r, std::uint8_t& tag, wire::ByteReader& body) {
  wire::ByteReader save = r;
  std::uint8_t first = 0;
  if (!r.readU8(tag) || !r.readU8(first)) return (r = save, false);
  std::size_t len = first;
  if (first & 0x80) {
    const int n = first & 0x7f;
    if (n < 1 || n > 4) return (r = save, false);
    len = 0;
    for (int i = 0; i < n; ++i) {
      std::uint8_t b = 0;
      if (!r.readU8(b)) return (r = save, false);
      len = (len << 8) | b;
    }
  }
  if (!r.readReader(len, body)) return (r = save, false);
  return true;
}

// The BER integer of a messageID or resultCode (small, non-negative).
bool berInt(wire::ByteReader& body, std::uint32_t& out) {
  if (body.remaining() < 1 || body.remaining() > 4) return false;
  out = 0;
  std::uint8_t b = 0;
  while (body.readU8(b)) out = (out << 8) | b;
  return true;
}

std::string ldapResultName(std::uint32_t code) {
  // RFC 4511 4.1.9 (the ones a StartTLS answer carries, RFC 4511 4.14.2).
  switch (code) {
    case 0: return "success";
    case 1: return "operationsError";
    case 2: return "protocolError";
    case 51: return "busy";
    case 52: return "unavailable";
    case 53: return "unwillingToPerform";
    case 80: return "other";
    default: return "resultCode";
  }
}

}  // namespace

std::size_t frameBinary(StartTlsProto p, bool from_client, bool awaiting, std::span<const std::uint8_t> b) {
  wire::ByteReader r(b);
  switch (p) {
    case StartTlsProto::Postgres: {
      if (!from_client) return awaiting ? 1 : b.size();  // the one-byte answer; else judged whole
      std::uint32_t len = 0;
      if (!r.readU32(len)) return 0;
      if (len < 8 || len > kMaxMessage) return SIZE_MAX;
      return len <= b.size() ? len : 0;
    }
    case StartTlsProto::Mysql: {
      std::uint32_t len = 0;
      if (!readLE(r, 3, len)) return 0;
      return 4 + static_cast<std::size_t>(len) <= b.size() ? 4 + static_cast<std::size_t>(len) : 0;
    }
    case StartTlsProto::Ldap: {
      std::uint8_t tag = 0, first = 0;
      if (!r.readU8(tag)) return 0;
      if (tag != kBerSequence) return SIZE_MAX;
      if (!r.readU8(first)) return 0;
      std::size_t len = first, head = 2;
      if (first & 0x80) {
        const std::size_t n = first & 0x7f;
        if (n < 1 || n > 4) return SIZE_MAX;
        len = 0;
        for (std::size_t i = 0; i < n; ++i) {
          std::uint8_t x = 0;
          if (!r.readU8(x)) return 0;
          len = (len << 8) | x;
        }
        head += n;
      }
      if (len > kMaxMessage) return SIZE_MAX;
      return head + len <= b.size() ? head + len : 0;
    }
    default: return SIZE_MAX;
  }
}

// PostgreSQL (protocol docs 55.2.10 "SSL Session Encryption"): the client's SSLRequest, then the
// server's single byte: 'S' to go on with TLS, 'N' to refuse (or an ErrorResponse, 'E', from a
// server too old to know the request). A GSSENCRequest may come first ('G' or 'N').
StartTlsMachine::Verdict StartTlsMachine::postgres(bool from_client, std::span<const std::uint8_t> msg,
                                                   StartTlsResult& r) {
  wire::ByteReader rd(msg);
  if (from_client) {
    std::uint32_t len = 0, code = 0;
    if (!rd.readU32(len) || !rd.readU32(code)) return plain(r, "a short PostgreSQL message");
    if (len == 8 && code == kPgSslRequest) {
      awaiting_ = true;
      add(r, true, "ssl_request", "SSLRequest (80877103)");
      return Verdict::Continue;
    }
    if (len == 8 && code == kPgGssEncRequest) {
      gss_ = true;
      add(r, true, "gssenc_request", "GSSENCRequest (80877104)");
      return Verdict::Continue;
    }
    if (code == kPgCancel) return plain(r, "a CancelRequest");
    return plain(r, code == kPgProtocol3 ? "a StartupMessage without SSLRequest" : "not a PostgreSQL startup packet");
  }
  std::uint8_t answer = 0;
  if ((!awaiting_ && !gss_) || !rd.readU8(answer)) return plain(r, "the server spoke unasked");
  if (gss_) {
    gss_ = false;
    if (answer != 'N') return plain(r, "the server accepted GSSAPI encryption");
    add(r, false, "reply", "N (no GSSAPI encryption)");
    return Verdict::Continue;
  }
  awaiting_ = false;
  if (answer == 'S') {
    add(r, false, "ready", "S");
    return Verdict::Upgrade;
  }
  if (answer == 'N' || answer == 'E') {
    r.refused = answer == 'N' ? "N (the server does not accept SSL)" : "E (an ErrorResponse to SSLRequest)";
    add(r, false, "refused", *r.refused);
    return answer == 'N' ? Verdict::Continue : plain(r, "the server answered SSLRequest with an error");
  }
  return plain(r, "the server's answer to SSLRequest is neither S nor N");
}

// MySQL (client/server protocol, "Protocol::HandshakeV10" and "Protocol::SSLRequest"): the
// server's greeting says whether it offers CLIENT_SSL; a client that wants TLS answers with the
// 32-byte SSLRequest packet and starts its handshake right after, with no answer awaited.
StartTlsMachine::Verdict StartTlsMachine::mysql(bool from_client, std::span<const std::uint8_t> msg,
                                                StartTlsResult& r) {
  wire::ByteReader rd(msg);
  std::uint32_t len = 0;
  std::uint8_t seq = 0;
  if (!readLE(rd, 3, len) || !rd.readU8(seq)) return plain(r, "a short MySQL packet");
  if (from_client) {
    std::uint32_t caps = 0;
    if (rd.remaining() != kMysqlSslRequestSize || !readLE(rd, 4, caps) || !(caps & kMysqlClientSsl))
      return plain(r, "the client answered the greeting without SSLRequest");
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", caps);
    add(r, true, "ssl_request", std::string("SSLRequest (capabilities ") + hex + ")");
    return Verdict::Upgrade;
  }
  if (server_spoke_once_) return plain(r, "the server spoke again before the client answered");
  server_spoke_once_ = true;
  std::uint8_t protocol = 0;
  if (!rd.readU8(protocol)) return plain(r, "an empty MySQL greeting");
  if (protocol == 0xff) {  // ERR_Packet: error code (2), then the message (with a #SQLSTATE marker)
    (void)rd.skip(2);
    add(r, false, "error", lineText(asText(rd.rest())));
    return plain(r, "the server sent an error instead of its greeting");
  }
  if (protocol != 10) return plain(r, "not a MySQL HandshakeV10 greeting");
  const wire::Bytes all = rd.rest();
  std::size_t nul = 0;
  while (nul < all.size() && all[nul] != 0) ++nul;
  wire::Bytes version;
  std::uint32_t conn_id = 0, caps = 0;
  if (!rd.readBytes(nul, version) || !rd.skip(1) || !readLE(rd, 4, conn_id) || !rd.skip(8 + 1) || !readLE(rd, 2, caps))
    return plain(r, "a truncated MySQL greeting");
  const bool ssl = (caps & kMysqlClientSsl) != 0;
  add(r, false, "greeting",
      "protocol 10, server " + lineText(asText(version)) + ", connection " + std::to_string(conn_id) +
          (ssl ? ", CLIENT_SSL offered" : ", CLIENT_SSL not offered"));
  if (!ssl) r.refused = "the greeting does not offer CLIENT_SSL";
  return Verdict::Continue;
}

// LDAP (RFC 4511 4.14): the client's ExtendedRequest with the StartTLS OID, the server's
// ExtendedResponse whose resultCode says yes (success) or no.
StartTlsMachine::Verdict StartTlsMachine::ldap(bool from_client, std::span<const std::uint8_t> msg, StartTlsResult& r) {
  wire::ByteReader rd(msg), body, id, op;
  std::uint8_t tag = 0, id_tag = 0, op_tag = 0;
  std::uint32_t msg_id = 0;
  if (!readTlv(rd, tag, body) || !readTlv(body, id_tag, id) || id_tag != kBerInteger || !berInt(id, msg_id) ||
      !readTlv(body, op_tag, op))
    return plain(r, "not an LDAPMessage");
  const std::string mid = "messageID " + std::to_string(msg_id);
  if (from_client) {
    wire::ByteReader name;
    std::uint8_t name_tag = 0;
    if (op_tag != kLdapExtendedRequest || !readTlv(op, name_tag, name) || name_tag != kLdapRequestName ||
        asText(name.rest()) != kLdapStartTls)
      return plain(r, "the client's LDAP operation is not StartTLS");
    awaiting_ = true;
    add(r, true, "starttls", "ExtendedRequest StartTLS (" + std::string(kLdapStartTls) + "), " + mid);
    return Verdict::Continue;
  }
  wire::ByteReader code, dn, diag;
  std::uint8_t code_tag = 0, dn_tag = 0, diag_tag = 0;
  std::uint32_t result = 0;
  if (!awaiting_ || op_tag != kLdapExtendedResponse || !readTlv(op, code_tag, code) || code_tag != kBerEnumerated ||
      !berInt(code, result) || !readTlv(op, dn_tag, dn) || dn_tag != kBerOctets || !readTlv(op, diag_tag, diag) ||
      diag_tag != kBerOctets)
    return plain(r, "not an LDAP ExtendedResponse to StartTLS");
  awaiting_ = false;
  std::string text = "ExtendedResponse " + ldapResultName(result) + " (" + std::to_string(result) + "), " + mid;
  if (!diag.empty()) text += ": " + lineText(asText(diag.rest()));
  if (result == 0) {
    add(r, false, "ready", std::move(text));
    return Verdict::Upgrade;
  }
  r.refused = text;
  add(r, false, "refused", std::move(text));
  return Verdict::Continue;
}

}  // namespace tlstrace::session
