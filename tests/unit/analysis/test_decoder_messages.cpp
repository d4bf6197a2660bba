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
using trace::Body;
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
    CHECK_MESSAGE(!d.body.find("error"), d.type, ": ", d.body.dump());
    // Built in place by the decoder, or read back from its JSON by `convert`: the same bytes, so
    // both render the same text.
    CHECK(Body::fromJson(d.body.tree()) == d.body);
    out.emplace_back(d.type, d.body.tree());
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
          CHECK(d.body.find("error").has_value());
          CHECK(d.body.find("raw").has_value());
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

// The whole body of every message of two GnuTLS handshakes, as text: any change to what the
// decoder writes shows here. Recorded from the decoder before the split into decoder.cpp and
// decoder_extensions.cpp (the ClientHellos' long bodies are left to the tests above: only their
// direction, type and length are pinned). The `signature` and `ticket` values came later (for the
// jsse/openssl text formats); each is a verbatim slice of the recorded message bytes.
TEST_CASE("GnuTLS TLS 1.2 and 1.3 handshakes: every body, field by field, as recorded") {
  auto lines = [](const std::vector<Msg>& msgs) {
    LegDecoder leg;
    std::vector<std::string> out;
    for (const auto& m : msgs) {
      auto d = leg.describe(m.bytes, m.from_client);
      std::string line = std::string(m.from_client ? "C " : "S ") + d.type + " " + std::to_string(d.length);
      if (d.type != "ClientHello") line += " " + d.body.dump();
      out.push_back(line);
    }
    return out;
  };
  const std::vector<std::string> tls12 = {
      R"(C ClientHello 171)",
      R"(S ServerHello 91 {"legacy_version":"TLSv1.2","random":"a9f284b88d07a40489cf128d2e6e1d6779485e057d56cc42444f574e47524401","session_id":"2bccdc784473da1060c4083d7a79083f7557eafd08ee2590255ca338175671ba","cipher_suite":{"id":49196,"name":"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},"compression_method":0,"extensions":[{"type":{"id":11,"name":"ec_point_formats"},"length":2,"formats":["uncompressed"]},{"type":{"id":23,"name":"extended_master_secret"},"length":0},{"type":{"id":35,"name":"session_ticket"},"length":0,"ticket_length":0},{"type":{"id":65281,"name":"renegotiation_info"},"length":1,"renegotiated_connection_length":0}],"selected_version":"TLSv1.2"})",
      R"(S Certificate 418 {"chain":[{"der_length":412}]})",
      R"(S ServerKeyExchange 112 {"kex":"ECDHE","curve":{"id":29,"name":"x25519"},"public":"d0bbf1e56dfc298a3cbf82adba3ea0a6746287da743e92354376930469374c58","signature_algorithm":{"id":1027,"name":"ecdsa_secp256r1_sha256"},"signature_length":72,"signature":"3046022100b99d41845a1ffa13b38f245195c07009967e1b1d25a9f9298854b87902e0ec280221009247ecdf888bad5768a8f18ee95a2e7544aeb3ff0a5ee24cbaf61ef4b3541168"})",
      R"(S CertificateRequest 39 {"certificate_types":[1,64],"certificate_type_names":["rsa_sign","ecdsa_sign"],"signature_algorithms":[{"id":1025,"name":"rsa_pkcs1_sha256"},{"id":2057,"name":"rsa_pss_pss_sha256"},{"id":2052,"name":"rsa_pss_rsae_sha256"},{"id":1027,"name":"ecdsa_secp256r1_sha256"},{"id":2055,"name":"ed25519"},{"id":1281,"name":"rsa_pkcs1_sha384"},{"id":2058,"name":"rsa_pss_pss_sha384"},{"id":2053,"name":"rsa_pss_rsae_sha384"},{"id":1283,"name":"ecdsa_secp384r1_sha384"},{"id":2056,"name":"ed448"},{"id":1537,"name":"rsa_pkcs1_sha512"},{"id":2059,"name":"rsa_pss_pss_sha512"},{"id":2054,"name":"rsa_pss_rsae_sha512"},{"id":1539,"name":"ecdsa_secp521r1_sha512"},{"id":513,"name":"rsa_pkcs1_sha1"},{"id":515,"name":"ecdsa_sha1"}],"certificate_authorities":[]})",
      R"(S ServerHelloDone 0 {})",
      R"(C Certificate 3 {"chain":[]})",
      R"(C ClientKeyExchange 33 {"kex":"ECDHE","public":"2704a7a8828f5ee1fab05cef91f5f67c9357d7a1ca8d678f1b74ab55d5f67e1d"})",
      R"(C Finished 12 {"verify_data":"c3a52f7dcd5240d301adb338"})",
      R"(S NewSessionTicket 412 {"lifetime":21600,"ticket_length":406,"ticket":"c075f290afa64363c77d6f60b4e0a765c77567ee450c019c316df35105c45bf901608fb93c534ce5ec9f0c161d23164d23d089e9b884040d282965c343970dc99f085564231de2070bfb9930eee8a91af85aad2d6819cabf68b1811353264a6563944c4582027340d37b8e37395d05cd941ec50641e297402423961887bcb9938e815a45ea5b7b4170017183391b62ffe543fbba5be3fbe728cd35db6bb2fdb9b31be4c8fabb42700a346446cf12d921e1f5b224ced4e20a110b7729885a0b1ecc1be3cf84a4775b2dce58b280e6283cbfc26fc4b45d8fc7cfc99fe22e0ea3fa20fc7511e6cf7714e8ed6b67a0add3836b3a7d47a70dcb51530cb3a70ce0ab25a4597def4d01cc861c79a0c1f664c993e9b844e87bcee2b0125246a69e7d4c6e67ff3e4ec91ee68f514c4b27e717b412906d0444ec1ef3bd97ae0c5cfd9fb051fccdc94e80dae6a4f7e440b392de716c25315d01f1bf72df90ce53efa45056bf64aaecbcface62e636f760370eb17f0f120b8a6b4a05e0e43e11e660a9445c8aaf9110c78171a1755f45761021d3ac008d597e98dcc0","extensions":[]})",
      R"(S Finished 12 {"verify_data":"c964239e0644ac655d4732ff"})",
  };
  const std::vector<std::string> tls13 = {
      R"(C ClientHello 508)",
      R"(S ServerHello 118 {"legacy_version":"TLSv1.2","random":"66e0d728c56cc0fb936a0826c461e34083e5493593d33164feff6d56b6516585","session_id":"3368dfacf4411a61215682938f1906aacb151b934e61c10a2c2eb6ddd4efb45e","cipher_suite":{"id":4866,"name":"TLS_AES_256_GCM_SHA384"},"compression_method":0,"extensions":[{"type":{"id":51,"name":"key_share"},"length":36,"group":{"id":29,"name":"x25519"},"public":"4fd516e7f319cebe10924919305c6c6843e5f43c8f0019d24dfd9a9ecb095506"},{"type":{"id":43,"name":"supported_versions"},"length":2,"selected_version":"TLSv1.3"}],"selected_version":"TLSv1.3","key_share":{"group":"x25519","public":"4fd516e7f319cebe10924919305c6c6843e5f43c8f0019d24dfd9a9ecb095506"}})",
      R"(S EncryptedExtensions 2 {"extensions":[]})",
      R"(S CertificateRequest 45 {"request_context":"","extensions":[{"type":{"id":13,"name":"signature_algorithms"},"length":34,"schemes":[{"id":1025,"name":"rsa_pkcs1_sha256"},{"id":2057,"name":"rsa_pss_pss_sha256"},{"id":2052,"name":"rsa_pss_rsae_sha256"},{"id":1027,"name":"ecdsa_secp256r1_sha256"},{"id":2055,"name":"ed25519"},{"id":1281,"name":"rsa_pkcs1_sha384"},{"id":2058,"name":"rsa_pss_pss_sha384"},{"id":2053,"name":"rsa_pss_rsae_sha384"},{"id":1283,"name":"ecdsa_secp384r1_sha384"},{"id":2056,"name":"ed448"},{"id":1537,"name":"rsa_pkcs1_sha512"},{"id":2059,"name":"rsa_pss_pss_sha512"},{"id":2054,"name":"rsa_pss_rsae_sha512"},{"id":1539,"name":"ecdsa_secp521r1_sha512"},{"id":513,"name":"rsa_pkcs1_sha1"},{"id":515,"name":"ecdsa_sha1"}]},{"type":{"id":5,"name":"status_request"},"length":0}]})",
      R"(S Certificate 421 {"request_context":"","chain":[{"der_length":412}]})",
      R"(S CertificateVerify 75 {"signature_algorithm":{"id":1027,"name":"ecdsa_secp256r1_sha256"},"signature_length":71,"signature":"3045022100f62a8b4b151c6633c4533924104f0db4cc173a6bd290e530a33dc6317d1d13bd02206423ba112faeca25780a04344f31b60988b5f0767c66be714a65599383ed72da"})",
      R"(S Finished 48 {"verify_data":"2721564b5c63d29b8b25e1370e2e5f560e3c43d53d1c0cccd37525af65d4bb17e4ed785cde8303e20209f252c3160ebe"})",
      R"(C Certificate 4 {"request_context":"","chain":[]})",
      R"(C Finished 48 {"verify_data":"8fdfcccdceea759851ab18078edb29f5376d63ec01b05638e3f61b5871bf4e09dfb5aff0dc99346b973f1aa004689da5"})",
      R"(S NewSessionTicket 263 {"lifetime":21600,"age_add":1877483190,"nonce":"8b2ae9d1","ticket_length":246,"ticket":"c075f290afa64363c77d6f60b4e0a765784bf4842c19afd6b0cc7473c88dc26300c06fbe63854231ae0602f918154ad6315d1ed5cc68b2a9f972831bac8c99146a1b03aaf8f73f84c7036442d89fb51578bdbfb7fcd9435f1e88fb0c8cfaaccefeb440b3bc20226dfc40f164039673d754a9fb39476ae415183a0a7958b98a1aa5817ded289ef0fd8765f6da85d70c195385f5d7c702bebf0b15ceb85c515127eddefe41837c683ca5d1061d4a8cd549b46820736b2bb0cb027ab581271a1206ee21bb4475adfe9f0c807fc30fe0c0be0ced14d4baccecae09624044bd2a75fb5d7c4780fbea726064ffa32a57248d813ddc7a4e669e","extensions":[]})",
      R"(S NewSessionTicket 263 {"lifetime":21600,"age_add":4048372209,"nonce":"7e7722f1","ticket_length":246,"ticket":"c075f290afa64363c77d6f60b4e0a76535b68c11648e91fc41c05142715eef8500c0a39d37e2473a418ba8b2eae748ab2a60c19398b9a0e6c6a66c5b6c5ba3096c2b8e7753a0877043e4a2aef364627c67290a493d613d5f69241852671e2b431c69c96ec97e22b59da6a094c3f470f330661b0e9698dab2d6284181d63a9d6072a09bc5fd5221dea496af7d2b9383d20f8bb1f5551d7ac4093cb739e2258b35b4ac551982b0d165ae017601d7d7a7c3130122744b686bf19993d3b4996fbd6af28fa341894a3e91ce2d8c40b161dafe12e533d232f5bdd3d5f404c4894636ec88d979991988366a019fc5c20907e56ec90c45ff14d7","extensions":[]})",
  };
  CHECK(lines(load("msgs_gnutls_tls12.txt").at(0)) == tls12);
  CHECK(lines(load("msgs_gnutls_tls13.txt").at(0)) == tls13);
}
