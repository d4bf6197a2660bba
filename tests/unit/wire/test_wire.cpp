#include <doctest/doctest.h>

#include <algorithm>

#include "../test_util.h"
#include "wire/byte_reader.h"
#include "wire/handshake.h"
#include "wire/registry.h"

using namespace tlstrace::wire;
using tlstrace::testing::firstHandshakeMessage;
using tlstrace::testing::fixture;

TEST_CASE("ByteReader reads big-endian and refuses to overrun") {
  const std::uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x02, 0xaa, 0xbb};
  ByteReader r(data);
  std::uint8_t u8 = 0;
  std::uint16_t u16 = 0;
  std::uint32_t u24 = 0;
  CHECK(r.readU8(u8));
  CHECK(u8 == 1);
  CHECK(r.readU16(u16));
  CHECK(u16 == 0x0203);
  CHECK(r.readU24(u24));
  CHECK(u24 == 0x040502);
  CHECK(r.offset() == 6);
  std::uint32_t u32 = 0;
  CHECK_FALSE(r.readU32(u32));
  CHECK(r.offset() == 6);  // a failed read leaves the reader untouched
  ByteReader child;
  CHECK_FALSE(r.readU8Prefixed(child));  // 0xaa = 170 bytes announced, 1 present
  CHECK(r.remaining() == 2);
}

TEST_CASE("hex of every byte value at every length and alignment, and back") {
  std::vector<std::uint8_t> all(256 + 40);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint8_t>(i * 7 + (i >> 8));
  for (std::size_t off = 0; off < 17; ++off) {
    for (std::size_t n = 0; off + n <= all.size(); n += (n < 40 ? 1 : 37)) {
      const Bytes b = Bytes(all).subspan(off, n);
      std::string slow;
      for (const std::uint8_t x : b) {
        slow += "0123456789abcdef"[x >> 4];
        slow += "0123456789abcdef"[x & 0xf];
      }
      std::string fast(2 * n + 8, '#');
      char* end = writeHex(b, fast.data());
      REQUIRE(static_cast<std::size_t>(end - fast.data()) == 2 * n);
      CHECK(fast.compare(2 * n, 8, "########") == 0);  // nothing past the end
      fast.resize(2 * n);
      REQUIRE(fast == slow);
      CHECK(toHex(b) == slow);
      CHECK(fromHex(slow) == std::vector<std::uint8_t>(b.begin(), b.end()));
    }
  }
  CHECK(toHex(Bytes(all), 3) == toHex(Bytes(all).first(3)));
}

TEST_CASE("length-prefixed children cover exactly their body") {
  const std::uint8_t data[] = {0x00, 0x02, 0xab, 0xcd, 0xef};
  ByteReader r(data);
  ByteReader child;
  REQUIRE(r.readU16Prefixed(child));
  CHECK(child.remaining() == 2);
  CHECK(child.offset() == 2);
  CHECK(r.remaining() == 1);
}

TEST_CASE("GREASE detection follows RFC 8701") {
  CHECK(isGrease(0x0a0a));
  CHECK(isGrease(0xfafa));
  CHECK_FALSE(isGrease(0x0a1a));
  CHECK_FALSE(isGrease(0x1301));
  CHECK(cipherSuiteName(0x2a2a) == "GREASE");
}

TEST_CASE("registry names") {
  CHECK(cipherSuiteName(0x1301) == "TLS_AES_128_GCM_SHA256");
  CHECK(cipherSuiteName(0xc02f) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
  CHECK(cipherSuiteName(0xfeee) == "unknown");
  // The ends of the sorted table, and past them (binary search).
  CHECK(cipherSuiteName(0x0000) == "TLS_NULL_WITH_NULL_NULL");
  CHECK(cipherSuiteName(0xD005) == "TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256");
  CHECK(cipherSuiteName(0xffff) == "unknown");
  CHECK(namedGroupName(29) == "x25519");
  CHECK(namedGroupName(23) == "secp256r1");
  CHECK(signatureSchemeName(0x0804) == "rsa_pss_rsae_sha256");
  CHECK(extensionName(51) == "key_share");
  CHECK(alertName(48) == "unknown_ca");
  CHECK(versionName(0x0304) == "TLSv1.3");
}

struct HelloCase {
  const char* file;
  const char* sni;  // nullptr = none
  bool tls13;
  const char* alpn0;  // first ALPN protocol or nullptr
};

TEST_CASE("ClientHellos captured from real stacks decode") {
  const HelloCase cases[] = {
      {"ch_openssl_s_client.hex", "example.com", true, "h2"},
      {"ch_openssl_tls12.hex", "tls12.test", false, nullptr},
      {"ch_curl.hex", "localhost", true, "h2"},
      {"ch_python.hex", "python.test", true, nullptr},
      {"ch_gnutls.hex", "gnutls.test", true, nullptr},
      {"ch_node.hex", "node.test", true, "h2"},
      {"ch_java.hex", "java.test", true, nullptr},
  };
  for (const auto& c : cases) {
    CAPTURE(c.file);
    auto stream = fixture(c.file);
    auto peek = peekClientHello(stream);
    REQUIRE(peek.kind == HelloPeek::Kind::ClientHello);
    CHECK(peek.message == firstHandshakeMessage(stream));
    auto hdr = decodeHandshakeHeader(peek.message);
    REQUIRE(hdr.ok());
    CHECK(hdr.value.type == 1);
    auto ch = decodeClientHello(Bytes(peek.message).subspan(4));
    REQUIRE(ch.ok());
    CHECK(ch.value.random.size() == 32);
    CHECK_FALSE(ch.value.cipher_suites.empty());
    auto* sni = findExtension(ch.value.extensions, ExtensionType::ServerName);
    if (c.sni) {
      REQUIRE(sni);
      auto names = decodeServerName(sni->data);
      REQUIRE(names);
      CHECK(names->at(0) == c.sni);
    }
    auto* sv = findExtension(ch.value.extensions, ExtensionType::SupportedVersions);
    if (c.tls13) {
      REQUIRE(sv);
      auto versions = decodeU16List8(sv->data);
      REQUIRE(versions);
      CHECK(std::find(versions->begin(), versions->end(), 0x0304) != versions->end());
      auto* ks = findExtension(ch.value.extensions, ExtensionType::KeyShare);
      REQUIRE(ks);
      auto shares = decodeKeyShareClient(ks->data);
      REQUIRE(shares);
      CHECK_FALSE(shares->empty());
    }
    if (c.alpn0) {
      auto* a = findExtension(ch.value.extensions, ExtensionType::Alpn);
      REQUIRE(a);
      auto protos = decodeAlpn(a->data);
      REQUIRE(protos);
      CHECK(protos->at(0) == c.alpn0);
    }
  }
}

TEST_CASE("every truncation of a ClientHello is NeedMore or Malformed, never a crash") {
  for (const char* file : {"ch_curl.hex", "ch_java.hex", "ch_openssl_tls12.hex"}) {
    auto stream = fixture(file);
    for (std::size_t n = 0; n < stream.size(); ++n) {
      auto peek = peekClientHello(Bytes(stream.data(), n));
      CHECK(peek.kind == HelloPeek::Kind::NeedMore);
    }
    auto msg = firstHandshakeMessage(stream);
    for (std::size_t n = 4; n < msg.size(); ++n) {
      auto ch = decodeClientHello(Bytes(msg).subspan(4, n - 4));
      // Cut exactly before the extensions block is a valid pre-TLS 1.2 hello; all else is malformed.
      CHECK((ch.status == Status::Malformed || (ch.ok() && ch.value.extensions.empty())));
      if (!ch.ok()) CHECK(ch.error.offset <= n);
    }
  }
}

TEST_CASE("a ClientHello split into one-byte records reassembles") {
  auto msg = firstHandshakeMessage(fixture("ch_openssl_s_client.hex"));
  std::vector<std::uint8_t> stream;
  for (auto b : msg) {
    for (std::uint8_t h : {std::uint8_t{22}, std::uint8_t{3}, std::uint8_t{1}, std::uint8_t{0}, std::uint8_t{1}})
      stream.push_back(h);
    stream.push_back(b);
  }
  auto peek = peekClientHello(stream);
  REQUIRE(peek.kind == HelloPeek::Kind::ClientHello);
  CHECK(peek.message == msg);
}

TEST_CASE("non-TLS first bytes and bad records are told apart") {
  const std::string http = "GET / HTTP/1.1\r\n";
  auto p = peekClientHello(Bytes(reinterpret_cast<const std::uint8_t*>(http.data()), http.size()));
  CHECK(p.kind == HelloPeek::Kind::NotTls);
  const std::uint8_t zero_len[] = {22, 3, 1, 0, 0};
  CHECK(peekClientHello(zero_len).kind == HelloPeek::Kind::Malformed);
  const std::uint8_t not_hello[] = {22, 3, 1, 0, 4, 2, 0, 0, 0};
  CHECK(peekClientHello(not_hello).kind == HelloPeek::Kind::Malformed);
  const std::uint8_t sslv2[] = {0x80, 0x2e, 0x01, 0x03, 0x01};
  auto v2 = peekClientHello(sslv2);
  CHECK(v2.kind == HelloPeek::Kind::Malformed);
  CHECK(v2.error.find("SSLv2") != std::string::npos);
  const std::uint8_t alert[] = {21, 3, 3, 0, 2, 2, 40};
  CHECK(peekClientHello(alert).kind == HelloPeek::Kind::NotTls);
}

TEST_CASE("ServerHellos decode, TLS 1.3 and 1.2") {
  auto sh13 = firstHandshakeMessage(fixture("sh_openssl_tls13.hex"));
  auto d = decodeServerHello(Bytes(sh13).subspan(4));
  REQUIRE(d.ok());
  CHECK_FALSE(d.value.hello_retry_request);
  auto* sv = findExtension(d.value.extensions, ExtensionType::SupportedVersions);
  REQUIRE(sv);
  CHECK(decodeU16(sv->data) == std::optional<std::uint16_t>(0x0304));
  auto* ks = findExtension(d.value.extensions, ExtensionType::KeyShare);
  REQUIRE(ks);
  auto share = decodeKeyShareServer(ks->data);
  REQUIRE(share);
  CHECK(share->group == 29);
  CHECK(share->key_exchange.size() == 32);

  auto sh12 = firstHandshakeMessage(fixture("sh_openssl_tls12.hex"));
  auto d12 = decodeServerHello(Bytes(sh12).subspan(4));
  REQUIRE(d12.ok());
  CHECK(d12.value.legacy_version == 0x0303);
  CHECK(findExtension(d12.value.extensions, ExtensionType::SupportedVersions) == nullptr);
}

TEST_CASE("HelloRetryRequest is recognised by its special random (RFC 8446 4.1.3)") {
  std::vector<std::uint8_t> body = {0x03, 0x03};
  const std::uint8_t hrr[] = {0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C,
                              0x02, 0x1E, 0x65, 0xB8, 0x91, 0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB,
                              0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C};
  body.insert(body.end(), std::begin(hrr), std::end(hrr));
  const std::uint8_t rest[] = {0x00, 0x13, 0x01, 0x00, 0x00, 0x0c, 0x00, 0x2b, 0x00,
                               0x02, 0x03, 0x04, 0x00, 0x33, 0x00, 0x02, 0x00, 0x17};
  body.insert(body.end(), std::begin(rest), std::end(rest));
  auto d = decodeServerHello(body);
  REQUIRE(d.ok());
  CHECK(d.value.hello_retry_request);
  auto* ks = findExtension(d.value.extensions, ExtensionType::KeyShare);
  REQUIRE(ks);
  CHECK(decodeU16(ks->data) == std::optional<std::uint16_t>(23));
}

TEST_CASE("malformed extension blocks report an offset") {
  auto msg = firstHandshakeMessage(fixture("ch_openssl_tls12.hex"));
  std::vector<std::uint8_t> body(msg.begin() + 4, msg.end());
  body.push_back(0x00);  // a trailing byte after the extensions
  auto d = decodeClientHello(body);
  CHECK(d.status == Status::Malformed);
  CHECK(d.error.what.find("extensions") != std::string::npos);
  CHECK(d.error.offset > 40);
}

TEST_CASE("a duplicated extension is malformed (RFC 8446 4.2)") {
  auto msg = firstHandshakeMessage(fixture("ch_openssl_tls12.hex"));
  std::vector<std::uint8_t> body(msg.begin() + 4, msg.end());
  // Append a second extended_master_secret (type 23, empty) and fix the extensions length.
  auto d0 = decodeClientHello(body);
  REQUIRE(d0.ok());
  REQUIRE(findExtension(d0.value.extensions, ExtensionType::ExtendedMasterSecret));
  const std::size_t ext_len_at = body.size() - [&] {
    std::size_t n = 0;
    for (const auto& e : d0.value.extensions) n += 4 + e.data.size();
    return n;
  }() - 2;
  for (std::uint8_t b : {std::uint8_t{0}, std::uint8_t{23}, std::uint8_t{0}, std::uint8_t{0}}) body.push_back(b);
  const std::size_t len = ((body[ext_len_at] << 8) | body[ext_len_at + 1]) + 4;
  body[ext_len_at] = static_cast<std::uint8_t>(len >> 8);
  body[ext_len_at + 1] = static_cast<std::uint8_t>(len);
  auto d = decodeClientHello(body);
  CHECK(d.status == Status::Malformed);
  CHECK(d.error.what == "duplicate extension type 23");
}
