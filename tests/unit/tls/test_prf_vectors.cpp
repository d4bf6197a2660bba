// Known-answer tests for every key derivation tls.keys uses: the TLS 1.2 PRF with SHA-256 and
// SHA-384, the TLS 1.0/1.1 MD5+SHA-1 PRF, the key block split, and TLS 1.3 HKDF-Expand-Label;
// and which PRF cipherParams picks for each kind of suite. No expected value comes from our code.
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>

#include <string>

#include "../test_util.h"
#include "tls/keys.h"
#include "tls/ossl.h"
#include "wire/byte_reader.h"

using namespace tlstrace;
using testing::fromHex;

namespace {

std::string hex(const std::vector<std::uint8_t>& b) { return wire::toHex(b); }

std::vector<std::uint8_t> concat(const char* a, const char* b) {
  auto v = fromHex(a);
  auto w = fromHex(b);
  v.insert(v.end(), w.begin(), w.end());
  return v;
}

}  // namespace

TEST_CASE("TLS 1.2 PRF: P_SHA256 and P_SHA384 reproduce the IETF TLS WG test vectors") {
  // Posted to the IETF TLS WG list, https://www.ietf.org/mail-archive/web/tls/current/msg03416.html;
  // the same vectors are in GnuTLS's tests/tls12-prf.c. PRF(secret, "test label", seed).
  auto sha256 = tls::tlsPrf(EVP_sha256(), fromHex("9bbe436ba940f017b17652849a71db35"), "test label",
                            fromHex("a0ba9f936cda311827a6f796ffd5198c"), 100);
  REQUIRE(sha256);
  CHECK(
      hex(sha256->bytes()) ==
      "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17"
      "abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66");
  auto sha384 = tls::tlsPrf(EVP_sha384(), fromHex("b80b733d6ceefcdc71566ea48e5567df"), "test label",
                            fromHex("cd665cf6a8447dd6ff8b27555edb7465"), 148);
  REQUIRE(sha384);
  CHECK(
      hex(sha384->bytes()) ==
      "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cde9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700"
      "884f9dc236f80edd8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d9184259b5bf8cd4d90fa0d31e2dec479e4f1a2"
      "6066f2eea9a69236a3e52655c9e9aee691c8f3a26854308d5eaa3be85e0990703d73e56f");
}

TEST_CASE("TLS 1.2 key block: NIST CAVS vectors (SHA-256), master secret then key expansion") {
  // NIST CAVS TLS KDF vectors (SP 800-135), as OpenSSL carries them in
  // test/recipes/30-test_evp_data/evpkdf_tls12_prf.txt.
  auto master =
      tls::tlsPrf(EVP_sha256(),
                  fromHex("f8938ecc9edebc5030c0c6a441e213cd24e6f770a50dda07876f8d55da062bcadb386b411fd4fe4313a604f"
                          "ce6c17fbc"),
                  "master secret",
                  concat("36c129d01a3200894b9179faac589d9835d58775f9b5ea3587cb8fd0364cae8c",
                         "f6c9575ed7ddd73e1f7d16eca115415812a43c2b747daaaae043abfb50053fce"),
                  48);
  REQUIRE(master);
  CHECK(hex(master->bytes()) ==
        "202c88c00f84a17a20027079604787461176455539e705be730890602c289a5001e34eeb3a043e5d52a65e66125188bf");
  // key expansion, 128 bytes, cut as for AES128-SHA256 (MAC 32, key 16, IV 16 per side).
  const std::string block =
      "d06139889fffac1e3a71865f504aa5d0d2a2e89506c6f2279b670c3e1b74f531016a2530c51a3a0f7e1d6590d0f0566b2f387f8d11fd4f73"
      "1cdd572d2eae927f6f2f81410b25e6960be68985add6c38445ad9f8c64bf8068bf9a6679485d966f1ad6f68b43495b10a683755ea2b858d7"
      "0ccac7ec8b053c6bd41ca299d4e51928";
  tls::CipherParams p;
  p.hash = EVP_sha256();
  p.mac_len = 32;
  p.key_len = 16;
  p.iv_len = 16;
  auto kb = tls::tls12KeyBlock(
      p, fromHex("202c88c00f84a17a20027079604787461176455539e705be730890602c289a5001e34eeb3a043e5d52a65e66125188bf"),
      fromHex("62e1fd91f23f558a605f28478c58cf72637b89784d959df7e946d3f07bd1b616"),
      fromHex("ae6c806f8ad4d80784549dff28a4b58fd837681a51d928c3e30ee5ff14f39868"));
  REQUIRE(kb);
  // RFC 5246 6.3 order: client MAC, server MAC, client key, server key, client IV, server IV.
  CHECK(hex(kb->client_write.mac_key.bytes()) == block.substr(0, 64));
  CHECK(hex(kb->server_write.mac_key.bytes()) == block.substr(64, 64));
  CHECK(hex(kb->client_write.key.bytes()) == block.substr(128, 32));
  CHECK(hex(kb->server_write.key.bytes()) == block.substr(160, 32));
  CHECK(hex(kb->client_write.iv.bytes()) == block.substr(192, 32));
  CHECK(hex(kb->server_write.iv.bytes()) == block.substr(224, 32));
}

TEST_CASE("TLS 1.0/1.1 PRF (MD5 XOR SHA-1): NIST CAVS vectors, master secret then key expansion") {
  // NIST CAVS TLS KDF vectors (SP 800-135), as OpenSSL carries them in
  // test/recipes/30-test_evp_data/evpkdf_tls11_prf.txt; a null hash selects the RFC 2246 5 PRF.
  auto master =
      tls::tlsPrf(nullptr,
                  fromHex("bded7fa5c1699c010be23dd06ada3a48349f21e5f86263d512c0c5cc379f0e780ec55d9844b2f1db02a9645"
                          "3513568d0"),
                  "master secret",
                  concat("e5acaf549cd25c22d964c0d930fa4b5261d2507fad84c33715b7b9a864020693",
                         "135e4d557fdf3aa6406d82975d5c606a9734c9334b42136e96990fbd5358cdb2"),
                  48);
  REQUIRE(master);
  CHECK(hex(master->bytes()) ==
        "2f6962dfbc744c4b2138bb6b3d33054c5ecc14f24851d9896395a44ab3964efc2090c5bf51a0891209f46c1e1e998f62");
  // key expansion, 104 bytes, cut as for AES128-SHA (MAC 20, key 16, IV 16 per side).
  const std::string block =
      "3088825988e77fce68d19f756e18e43eb7fe672433504feaf99b3c503d9091b164f166db301d70c9fc0870b4a94563907bee1a61fb786cb7"
      "17576890bcc51cb9ead97e01d0a2fea99c953377b195205ff07b369589178796edc963fd80fdbe518a2fc1c35c18ae8d";
  tls::CipherParams p;  // hash nullptr: the MD5/SHA-1 PRF
  p.mac_len = 20;
  p.key_len = 16;
  p.iv_len = 16;
  auto kb = tls::tls12KeyBlock(
      p, fromHex("2f6962dfbc744c4b2138bb6b3d33054c5ecc14f24851d9896395a44ab3964efc2090c5bf51a0891209f46c1e1e998f62"),
      fromHex("d58a7b1cd4fedaa232159df652ce188f9d997e061b9bf48e83b62990440931f6"),
      fromHex("67267e650eb32444119d222a368c191af3082888dc35afe8368e638c828874be"));
  REQUIRE(kb);
  CHECK(hex(kb->client_write.mac_key.bytes()) == block.substr(0, 40));
  CHECK(hex(kb->server_write.mac_key.bytes()) == block.substr(40, 40));
  CHECK(hex(kb->client_write.key.bytes()) == block.substr(80, 32));
  CHECK(hex(kb->server_write.key.bytes()) == block.substr(112, 32));
  CHECK(hex(kb->client_write.iv.bytes()) == block.substr(144, 32));
  CHECK(hex(kb->server_write.iv.bytes()) == block.substr(176, 32));
}

TEST_CASE("HKDF-Expand-Label reproduces RFC 8448 section 3's Derive-Secret(., \"derived\", \"\")") {
  // RFC 8448 3: derive secret for handshake / master "tls13 derived"; context = SHA-256("").
  const auto empty_hash = fromHex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  struct Row {
    const char* secret;
    const char* derived;
  };
  const Row rows[] = {
      // early secret -> salt of the handshake secret
      {"33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a",
       "6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba"},
      // handshake secret -> salt of the master secret
      {"1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac",
       "43de77e0c77713859a944db9db2590b53190a65b3ee2e4f12dd7a0bb7ce254b4"},
  };
  for (const auto& r : rows) {
    auto d = tls::hkdfExpandLabel(EVP_sha256(), fromHex(r.secret), "derived", empty_hash, 32);
    REQUIRE(d);
    CHECK(hex(d->bytes()) == r.derived);
  }
}

TEST_CASE("cipherParams: the PRF and sizes of each kind of suite, per version") {
  tls::SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
  REQUIRE(SSL_CTX_set_cipher_list(ctx.get(), "ALL:COMPLEMENTOFALL:@SECLEVEL=0") == 1);
  tls::SslPtr ssl(SSL_new(ctx.get()));
  auto find = [&](std::uint8_t a, std::uint8_t b) {
    const unsigned char id[2] = {a, b};
    const SSL_CIPHER* c = SSL_CIPHER_find(ssl.get(), id);
    REQUIRE(c);
    return c;
  };
  auto md = [](const tls::CipherParams& p) {
    return p.hash ? std::string(OBJ_nid2sn(EVP_MD_get_type(p.hash))) : std::string("MD5+SHA-1");
  };
  struct Row {
    std::uint8_t a, b;
    std::uint16_t version;
    const char* prf;
    std::size_t mac, key, iv;
  };
  // IDs from the IANA TLS Cipher Suites registry; PRFs from RFC 5246 5 (SHA-256 unless the suite
  // says otherwise, e.g. RFC 5289's SHA-384 suites) and RFC 2246 5 below TLS 1.2.
  const Row rows[] = {
      {0x00, 0x2f, TLS1_2_VERSION, "SHA256", 20, 16, 16},  // TLS_RSA_WITH_AES_128_CBC_SHA
      {0x00, 0x2f, TLS1_1_VERSION, "MD5+SHA-1", 20, 16, 16}, {0x00, 0x2f, TLS1_VERSION, "MD5+SHA-1", 20, 16, 16},
      {0x00, 0x3c, TLS1_2_VERSION, "SHA256", 32, 16, 16},  // TLS_RSA_WITH_AES_128_CBC_SHA256
      {0x00, 0x39, TLS1_2_VERSION, "SHA256", 20, 32, 16},  // TLS_DHE_RSA_WITH_AES_256_CBC_SHA
      {0xc0, 0x0a, TLS1_2_VERSION, "SHA256", 20, 32, 16},  // TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
      {0xc0, 0x28, TLS1_2_VERSION, "SHA384", 48, 32, 16},  // TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384
      {0x00, 0x9d, TLS1_2_VERSION, "SHA384", 0, 32, 4},    // TLS_RSA_WITH_AES_256_GCM_SHA384
      {0xc0, 0xa0, TLS1_2_VERSION, "SHA256", 0, 16, 4},    // TLS_RSA_WITH_AES_128_CCM_8
      {0xcc, 0xa8, TLS1_2_VERSION, "SHA256", 0, 32, 12},   // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
      {0x00, 0x02, TLS1_2_VERSION, "SHA256", 20, 0, 0},    // TLS_RSA_WITH_NULL_SHA
      {0x00, 0x01, TLS1_VERSION, "MD5+SHA-1", 16, 0, 0},   // TLS_RSA_WITH_NULL_MD5
      {0x13, 0x02, TLS1_3_VERSION, "SHA384", 0, 32, 12},   // TLS_AES_256_GCM_SHA384
      {0x13, 0x03, TLS1_3_VERSION, "SHA256", 0, 32, 12},   // TLS_CHACHA20_POLY1305_SHA256
  };
  for (const auto& r : rows) {
    CAPTURE(static_cast<int>(r.b));
    CAPTURE(r.version);
    auto p = tls::cipherParams(find(r.a, r.b), r.version);
    REQUIRE(p);
    CHECK(md(*p) == std::string(r.prf));
    CHECK(p->mac_len == r.mac);
    CHECK(p->key_len == r.key);
    CHECK(p->iv_len == r.iv);
  }
}
