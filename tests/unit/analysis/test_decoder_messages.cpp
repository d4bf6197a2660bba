// Every handshake message captured from real OpenSSL handshakes (tests/data/msgs_*.txt: one line
// per message, "out"/"in" and the hex, as Python's OpenSSL client saw them) decodes field by field.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "../test_util.h"
#include "tls/cert_summary.h"
#include "trace/decoder.h"

using namespace tlstrace;
using trace::Json;
using trace::LegDecoder;

namespace {

struct Msg {
  bool from_client;
  std::vector<std::uint8_t> bytes;
};

// Handshakes in the file, separated by "--".
std::vector<std::vector<Msg>> load(const std::string& name) {
  std::ifstream f(std::string(TLSTRACE_TEST_DATA) + "/" + name);
  REQUIRE(f);
  std::vector<std::vector<Msg>> out(1);
  std::string dir, hex;
  while (f >> dir) {
    if (dir == "--") {
      out.emplace_back();
      continue;
    }
    f >> hex;
    out.back().push_back({dir == "out", testing::fromHex(hex)});
  }
  if (out.back().empty()) out.pop_back();
  return out;
}

// Decodes one handshake, returning each message's type and body.
std::vector<std::pair<std::string, Json>> decode(LegDecoder& leg, const std::vector<Msg>& msgs) {
  std::vector<std::pair<std::string, Json>> out;
  for (const auto& m : msgs) {
    auto d = leg.describe(m.bytes, m.from_client);
    CHECK_MESSAGE(d.body.find("error") == nullptr, d.type, ": ", d.body.dump());
    out.emplace_back(d.type, d.body);
  }
  return out;
}

const Json& body(const std::vector<std::pair<std::string, Json>>& v, const std::string& type, int nth = 0) {
  for (const auto& [t, b] : v)
    if (t == type && nth-- == 0) return b;
  FAIL("no " << type);
  static Json none;
  return none;
}

}  // namespace

TEST_CASE("TLS 1.2 DHE-RSA: ServerKeyExchange and ClientKeyExchange carry the DH values") {
  LegDecoder leg(tls::derDecoders());
  auto hs = load("msgs_openssl_tls12_dhe.txt");
  auto v = decode(leg, hs.at(0));
  std::vector<std::string> types;
  for (const auto& [t, _] : v) types.push_back(t);
  CHECK(types == std::vector<std::string>{"ClientHello", "ServerHello", "Certificate", "ServerKeyExchange",
                                          "ServerHelloDone", "ClientKeyExchange", "Finished", "NewSessionTicket",
                                          "Finished"});
  const Json& ske = body(v, "ServerKeyExchange");
  CHECK(ske.find("kex")->asString() == "DHE");
  CHECK(ske.find("p_bits")->asInt() == 2048);
  CHECK(ske.find("g")->asString() == "02");
  CHECK(ske.find("signature_algorithm")->find("name")->asString() == "rsa_pss_rsae_sha256");
  CHECK(ske.find("signature_length")->asInt() == 256);
  CHECK(body(v, "ClientKeyExchange").find("public")->asString().size() == 512);
  const Json& cert = body(v, "Certificate");
  const Json& leaf = cert.find("chain")->asArray().at(0);
  CHECK(leaf.find("subject")->asString() == "CN=localhost");
  CHECK(leaf.find("key")->find("type")->asString() == "RSA");
  CHECK(leaf.find("key")->find("bits")->asInt() == 2048);
  CHECK(leaf.find("sha256")->asString().size() == 64);
  CHECK(body(v, "NewSessionTicket").find("lifetime")->asInt() == 7200);
  CHECK(body(v, "Finished").find("verify_data")->asString().size() == 24);
  CHECK(leg.kex().kind == wire::KexKind::Dhe);
  CHECK(leg.kex().p.size() == 256);
  CHECK(leg.kex().client_public.size() == 256);
}

TEST_CASE("TLS 1.2 static RSA and ECDHE, with session-ticket resumption") {
  LegDecoder rsa;
  auto v = decode(rsa, load("msgs_openssl_tls12_rsa.txt").at(0));
  CHECK(body(v, "ClientKeyExchange").find("encrypted_premaster_length")->asInt() == 256);
  CHECK(rsa.kex().kind == wire::KexKind::Rsa);

  auto hs = load("msgs_openssl_tls12_ecdhe_resume.txt");
  REQUIRE(hs.size() == 2);
  LegDecoder full;
  auto f = decode(full, hs[0]);
  const Json& ske = body(f, "ServerKeyExchange");
  CHECK(ske.find("curve")->find("name")->asString() == "x25519");
  CHECK(ske.find("public")->asString().size() == 64);
  LegDecoder resumed;
  auto r = decode(resumed, hs[1]);
  std::vector<std::string> types;
  for (const auto& [t, _] : r) types.push_back(t);
  // Abbreviated handshake (RFC 5077 3.1): no certificate, no key exchange.
  CHECK(types == std::vector<std::string>{"ClientHello", "ServerHello", "Finished", "Finished"});
  bool ticket_offered = false;
  for (const auto& e : body(r, "ClientHello").find("extensions")->asArray())
    if (e.find("type")->find("id")->asInt() == 35) ticket_offered = e.find("ticket_length")->asInt() > 0;
  CHECK(ticket_offered);
}

TEST_CASE("TLS 1.3 with client authentication: every encrypted message decodes") {
  LegDecoder leg(tls::derDecoders());
  auto hs = load("msgs_openssl_tls13_clientauth.txt");
  REQUIRE(hs.size() == 2);
  auto v = decode(leg, hs[0]);
  CHECK(leg.version() == 0x0304);
  CHECK(body(v, "EncryptedExtensions").find("extensions")->isArray());
  const Json& cr = body(v, "CertificateRequest");
  CHECK(cr.find("request_context")->asString().empty());
  bool sigalgs = false;
  for (const auto& e : cr.find("extensions")->asArray())
    sigalgs = sigalgs || e.find("type")->find("name")->asString() == "signature_algorithms";
  CHECK(sigalgs);
  const Json& server_cert = body(v, "Certificate", 0);
  CHECK(server_cert.find("request_context")->asString().empty());
  CHECK(server_cert.find("chain")->asArray().at(0).find("key")->find("curve")->asString() == "prime256v1");
  CHECK(body(v, "CertificateVerify", 0).find("signature_algorithm")->find("name")->asString() ==
        "ecdsa_secp256r1_sha256");
  CHECK(body(v, "Certificate", 1).find("chain")->asArray().size() == 1);  // the client's
  const Json& nst = body(v, "NewSessionTicket");
  CHECK(nst.find("lifetime")->asInt() == 7200);
  CHECK(nst.find("age_add") != nullptr);
  CHECK(nst.find("nonce")->asString() == "0000000000000000");
  CHECK(leg.kex().client_sig_scheme.has_value());
  CHECK(leg.kex().ticket_lifetimes.size() == 2);

  LegDecoder resumed;
  auto r = decode(resumed, hs[1]);
  const Json& ch = body(r, "ClientHello");
  bool psk = false;
  for (const auto& e : ch.find("extensions")->asArray()) {
    if (e.find("type")->find("name")->asString() != "pre_shared_key") continue;
    psk = true;
    CHECK(e.find("identities")->asArray().size() == 1);
    CHECK(e.find("binders")->asArray().at(0).asString().size() == 96);  // SHA-384 suite
  }
  CHECK(psk);
  CHECK(resumed.choice().psk_selected);
  CHECK(resumed.offer().psk_modes == std::vector<std::uint8_t>{1});
}

TEST_CASE("TLS 1.3 HelloRetryRequest: recognised, and the retried hello's share is used") {
  LegDecoder leg;
  auto v = decode(leg, load("msgs_openssl_tls13_hrr.txt").at(0));
  CHECK(v.at(1).first == "HelloRetryRequest");
  CHECK(v.at(1).second.find("key_share")->find("group")->asString() == "secp384r1");
  CHECK(v.at(3).first == "ServerHello");
  CHECK(leg.choice().hrr);
  CHECK(leg.choice().hrr_group == 24);
  CHECK(leg.kex().group == 24);
  CHECK(leg.kex().client_public.size() == 97);  // uncompressed P-384 point from the second hello
  CHECK(leg.kex().server_public.size() == 97);
}

TEST_CASE("a released decoder keeps the negotiated version and decodes post-handshake messages alike") {
  auto hs = load("msgs_openssl_tls13_clientauth.txt");
  REQUIRE(!hs.empty());
  LegDecoder whole, released;
  bool did_release = false;
  for (const auto& m : hs[0]) {
    const auto a = whole.describe(m.bytes, m.from_client);
    if (m.bytes[0] == 4 && !did_release) {  // first NewSessionTicket: the handshake is over
      REQUIRE(released.offer().seen);
      released.releaseHandshake();
      did_release = true;
      CHECK(!released.offer().seen);
      CHECK(!released.choice().seen);
      CHECK(released.kex().ticket_lifetimes.empty());
    }
    const auto b = released.describe(m.bytes, m.from_client);
    CHECK(a.type == b.type);
    CHECK(a.body.dump() == b.body.dump());  // TLS 1.3 ticket fields (age_add, nonce) included
    CHECK(released.version() == whole.version());
  }
  CHECK(did_release);
  CHECK(released.version() == 0x0304);
  CHECK(released.lastMessage() == whole.lastMessage());
  // A copy is deep: releasing the original leaves the copy's state alone.
  LegDecoder copy = whole;
  whole.releaseHandshake();
  CHECK(copy.offer().seen);
  CHECK(copy.kex().ticket_lifetimes.size() == 2);
}

TEST_CASE("every truncation of every captured message is reported, never a crash") {
  std::size_t reported = 0, cuts = 0;
  for (const char* file : {"msgs_openssl_tls12_dhe.txt", "msgs_openssl_tls13_clientauth.txt",
                           "msgs_openssl_tls12_rsa.txt", "msgs_openssl_tls13_hrr.txt"}) {
    CAPTURE(file);
    for (const auto& hs : load(file)) {
      LegDecoder prefix;
      for (const auto& m : hs) {
        for (std::size_t n = 0; n < m.bytes.size(); ++n) {
          LegDecoder copy = prefix;  // same state as the real decoder at this point
          std::vector<std::uint8_t> cut(m.bytes.begin(), m.bytes.begin() + static_cast<std::ptrdiff_t>(n));
          auto d = copy.describe(cut, m.from_client);
          CHECK(d.body.find("error") != nullptr);
          CHECK(d.body.find("raw") != nullptr);
          // The same cut with a header that agrees: the body decoders themselves see short input.
          if (n < 4) continue;
          const std::size_t len = n - 4;
          cut[1] = static_cast<std::uint8_t>(len >> 16);
          cut[2] = static_cast<std::uint8_t>(len >> 8);
          cut[3] = static_cast<std::uint8_t>(len);
          LegDecoder copy2 = prefix;
          auto d2 = copy2.describe(cut, m.from_client);
          if (d2.body.find("error")) ++reported;
          ++cuts;
        }
        (void)prefix.describe(m.bytes, m.from_client);
      }
    }
  }
  // Most short bodies are malformed (a Finished or a ticket may legitimately be any length).
  CHECK(reported * 10 > cuts * 9);
}

TEST_CASE("server flights of GnuTLS and Node.js decode too") {
  for (const char* file :
       {"msgs_gnutls_tls13.txt", "msgs_gnutls_tls12.txt", "msgs_node_tls13.txt", "msgs_node_tls12_ecdhe_rsa.txt",
        "msgs_openssl_tls13_resume.txt", "msgs_openssl_tls12_ecdhe_resume.txt"}) {
    CAPTURE(file);
    for (const auto& hs : load(file)) {
      LegDecoder leg(tls::derDecoders());
      (void)decode(leg, hs);  // no message reports an error
      CHECK(leg.choice().seen);
    }
  }
  // GnuTLS asks for a client certificate: the TLS 1.2 CertificateRequest layout (RFC 5246 7.4.4).
  LegDecoder leg;
  auto v = decode(leg, load("msgs_gnutls_tls12.txt").at(0));
  const Json& cr = body(v, "CertificateRequest");
  CHECK_FALSE(cr.find("certificate_types")->asArray().empty());
  CHECK_FALSE(cr.find("signature_algorithms")->asArray().empty());
  CHECK(body(v, "Certificate", 1).find("chain")->asArray().empty());  // the client had none to send
}
