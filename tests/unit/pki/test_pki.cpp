#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "pki/ca.h"
#include "pki/forge.h"
#include "tls/cert_summary.h"

using namespace tlstrace;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/tlstrace-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

unsigned modeOf(const fs::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 07777;
}

// Verifies `leaf` against `ca` with OpenSSL's verifier, checking `host` too.
int verifyLeaf(X509* leaf, X509* ca, const std::string& host) {
  tls::X509StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), ca);
  tls::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  if (!host.empty()) X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  if (X509_verify_cert(ctx.get()) == 1) return X509_V_OK;
  return X509_STORE_CTX_get_error(ctx.get());
}

}  // namespace

TEST_CASE("the CA is created with private permissions and proper extensions") {
  TempDir tmp;
  const std::string dir = (tmp.path / "home").string();
  bool created = false;
  auto ca = pki::loadOrCreateCa(dir, created);
  CHECK(created);
  CHECK(modeOf(dir) == 0700);
  CHECK(modeOf(dir + "/ca.key") == 0600);
  X509* x = ca.cert.get();
  CHECK(X509_check_ca(x) >= 1);
  BASIC_CONSTRAINTS* bc = static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(x, NID_basic_constraints, nullptr, nullptr));
  REQUIRE(bc);
  CHECK(bc->ca);
  BASIC_CONSTRAINTS_free(bc);
  CHECK((X509_get_extension_flags(x) & EXFLAG_CA) != 0);
  CHECK((X509_get_key_usage(x) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  CHECK(X509_get0_subject_key_id(x) != nullptr);
  CHECK(EVP_PKEY_get_base_id(ca.key.get()) == EVP_PKEY_EC);
  // About ten years.
  int days = 0, secs = 0;
  ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x));
  CHECK(days >= 3650);
  CHECK(days <= 3653);

  // A second start loads the same CA.
  bool again = true;
  auto ca2 = pki::loadOrCreateCa(dir, again);
  CHECK_FALSE(again);
  CHECK(X509_cmp(ca.cert.get(), ca2.cert.get()) == 0);
}

TEST_CASE("the CA directory's missing parents are created") {
  TempDir tmp;
  const std::string dir = (tmp.path / "new" / "home" / ".tlstrace").string();
  bool created = false;
  (void)pki::loadOrCreateCa(dir, created);
  CHECK(created);
  CHECK(modeOf(dir) == 0700);
}

TEST_CASE("a CA key readable by others is refused with a clear message") {
  TempDir tmp;
  const std::string dir = (tmp.path / "home").string();
  bool created = false;
  (void)pki::loadOrCreateCa(dir, created);
  ::chmod((dir + "/ca.key").c_str(), 0644);
  try {
    (void)pki::loadOrCreateCa(dir, created);
    FAIL("expected a refusal");
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).find("chmod 600") != std::string::npos);
  }
}

// The message loadOrCreateCa throws for `dir`, or "" when it does not.
std::string refusal(const std::string& dir) {
  bool created = false;
  try {
    (void)pki::loadOrCreateCa(dir, created);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST_CASE("a CA directory open to others is refused like its key") {
  TempDir tmp;
  const std::string dir = (tmp.path / "home").string();
  bool created = false;
  (void)pki::loadOrCreateCa(dir, created);
  for (const mode_t m : {0750, 0705, 0770}) {
    ::chmod(dir.c_str(), m);
    CHECK(refusal(dir).find("run `chmod 700 " + dir + "`") != std::string::npos);
  }
  ::chmod(dir.c_str(), 0700);
  CHECK_NOTHROW((void)pki::loadOrCreateCa(dir, created));
  if (::geteuid() == 0) {  // another owner: only root can make one
    REQUIRE(::chown(dir.c_str(), 65534, 65534) == 0);
    CHECK(refusal(dir).find("it belongs to uid 65534") != std::string::npos);
  }
}

TEST_CASE("forged leaves carry the target and upstream names and verify against the CA") {
  auto ca = pki::createCa("test CA");
  pki::Forger forger(ca, 2);
  // An upstream certificate with a CN and SANs of both kinds.
  auto upstream = pki::createCa("upstream.example");
  pki::LeafNames names = pki::leafNamesFor("www.example.com", nullptr);
  CHECK(names.common_name == "www.example.com");
  CHECK(names.dns == std::vector<std::string>{"www.example.com"});
  names.dns.push_back("api.example.com");
  names.ips.push_back("127.0.0.1");
  std::string err;
  auto leaf = forger.leaf(names, err);
  REQUIRE(leaf);
  CHECK(err.empty());
  CHECK(verifyLeaf(leaf.get(), ca.cert.get(), "www.example.com") == X509_V_OK);
  CHECK(verifyLeaf(leaf.get(), ca.cert.get(), "api.example.com") == X509_V_OK);
  CHECK(verifyLeaf(leaf.get(), ca.cert.get(), "other.example.com") == X509_V_ERR_HOSTNAME_MISMATCH);
  CHECK(X509_check_ip_asc(leaf.get(), "127.0.0.1", 0) == 1);
  auto summary = tls::certificateNames(leaf.get());
  CHECK(summary.common_name == "www.example.com");
  CHECK(summary.ips == std::vector<std::string>{"127.0.0.1"});
  // serverAuth EKU, AKI, not a CA, validity <= 397 days and backdated.
  CHECK((X509_get_extended_key_usage(leaf.get()) & XKU_SSL_SERVER) != 0);
  CHECK(X509_get0_authority_key_id(leaf.get()) != nullptr);
  CHECK(X509_check_ca(leaf.get()) == 0);
  int days = 0, secs = 0;
  ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf.get()), X509_get0_notAfter(leaf.get()));
  CHECK(days <= 397);
  CHECK(X509_cmp_current_time(X509_get0_notBefore(leaf.get())) < 0);
  CHECK(X509_check_private_key(leaf.get(), forger.leafKey()) == 1);
}

TEST_CASE("forging mirrors the upstream certificate's names") {
  auto ca = pki::createCa("test CA");
  pki::Forger forger(ca, 4);
  auto upstream_ca = pki::createCa("upstream root");
  pki::LeafNames up;
  up.common_name = "origin.test";
  up.dns = {"origin.test", "*.origin.test"};
  up.ips = {"10.1.2.3"};
  pki::Forger upstream_forger(upstream_ca, 1);
  std::string err;
  auto upstream_leaf = upstream_forger.leaf(up, err);
  REQUIRE(upstream_leaf);
  // The target is not added when the real certificate lacks it (relayed with --insecure): the
  // client's hostname check fails as it would against the server directly.
  auto names = pki::leafNamesFor("127.0.0.1", upstream_leaf.get());
  CHECK(names.common_name == "origin.test");
  CHECK(names.ips == std::vector<std::string>{"10.1.2.3"});
  CHECK(names.dns == std::vector<std::string>{"origin.test", "*.origin.test"});
  auto leaf = forger.leaf(names, err);
  REQUIRE(leaf);
  CHECK(verifyLeaf(leaf.get(), ca.cert.get(), "a.origin.test") == X509_V_OK);
  CHECK(X509_check_ip_asc(leaf.get(), "127.0.0.1", 0) == 0);
  auto by_sni = forger.leaf(pki::leafNamesFor("www.elsewhere.test", upstream_leaf.get()), err);
  REQUIRE(by_sni);
  CHECK(verifyLeaf(by_sni.get(), ca.cert.get(), "www.elsewhere.test") == X509_V_ERR_HOSTNAME_MISMATCH);
  CHECK(verifyLeaf(upstream_leaf.get(), upstream_ca.cert.get(), "www.elsewhere.test") == X509_V_ERR_HOSTNAME_MISMATCH);
}

TEST_CASE("a hostile SAN stays one literal name") {
  auto ca = pki::createCa("test CA");
  pki::Forger forger(ca, 4);
  pki::LeafNames n;
  n.common_name = "x";
  n.dns = {"a.test,IP:1.2.3.4"};
  std::string err;
  auto leaf = forger.leaf(n, err);
  REQUIRE(leaf);
  auto names = tls::certificateNames(leaf.get());
  CHECK(names.dns == std::vector<std::string>{"a.test,IP:1.2.3.4"});
  CHECK(names.ips.empty());
}

TEST_CASE("the LRU cache returns the same leaf without signing, and stays bounded") {
  auto ca = pki::createCa("test CA");
  pki::Forger forger(ca, 2);
  std::string err;
  auto a1 = forger.leaf(pki::leafNamesFor("a.test", nullptr), err);
  auto a2 = forger.leaf(pki::leafNamesFor("a.test", nullptr), err);
  CHECK(forger.signings() == 1);
  CHECK(forger.hits() == 1);
  CHECK(X509_cmp(a1.get(), a2.get()) == 0);
  (void)forger.leaf(pki::leafNamesFor("b.test", nullptr), err);
  (void)forger.leaf(pki::leafNamesFor("c.test", nullptr), err);  // evicts a.test
  CHECK(forger.size() == 2);
  (void)forger.leaf(pki::leafNamesFor("a.test", nullptr), err);
  CHECK(forger.signings() == 4);
}
