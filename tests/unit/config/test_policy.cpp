// Policy files: what is accepted, and where each refusal points.
#include <doctest/doctest.h>

#include <string>

#include "config/policy.h"

using namespace tlstrace::config;

TEST_CASE("the shipped policies and every rule key parse") {
  for (const char* f : {"/config/policy-modern.toml", "/config/policy-baseline.toml"}) {
    std::string error;
    const auto p = readPolicyFile(std::string(TLSTRACE_SOURCE_DIR) + f, error);
    CHECK_MESSAGE(p.has_value(), error);
  }
  std::string error;
  const auto p = parsePolicyText(R"([[rule]]
id = "all"
description = "d"
severity = "warning"
leg = "upstream"
hosts = ["*.internal"]
min_version = "TLSv1"
max_version = "1.3"
allowed_ciphers = ["TLS_*"]
forbidden_ciphers = ["*_CBC_*"]
require_alpn = true
allowed_alpn = ["h2"]
max_handshake_ms = 250
require_forward_secrecy = true
min_dh_bits = 2048
min_ec_bits = 255
min_kex_rating = "acceptable"
require_resumption = true
require_verified = true
require_hostname_match = true
forbid_sha1_signature = true
min_days_to_expiry = 14
allowed_key_types = ["ec", "RSA"]
min_rsa_bits = 2048
min_ec_key_bits = 256
forbid_fatal_alerts = true
require_handshake = true
forbid_proxy_downgrade = true
)",
                                 "p.toml", error);
  REQUIRE_MESSAGE(p.has_value(), error);
  const PolicyRule& r = p->rules.at(0);
  CHECK(r.at == "p.toml:1:1");
  CHECK(r.min_version == 0x0301);
  CHECK(r.max_version == 0x0304);
  CHECK(r.max_handshake_ms == 250.0);  // an integer where a number is asked for is fine
  CHECK(r.allowed_key_types == std::vector<std::string>{"EC", "RSA"});
  CHECK(r.min_kex_rating == KexRating::Acceptable);
  CHECK(r.leg == PolicyLeg::Upstream);
  CHECK(policyRuleKeys().size() == 27);  // the table above names each of them once
}

TEST_CASE("every problem is refused with its place") {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"[[rule]]\nid = \"x\"\nrequire_fs = true\n", "p.toml:3:1: unknown rule key 'require_fs'"},
      {"[[rule]]\nid = \"x\"\nmin_dh_bits = 2048.5\n", "p.toml:3:1: 'min_dh_bits' takes an integer"},
      {"[[rule]]\nid = \"x\"\nhosts = [\"a\", 1]\n", "p.toml:3:1: 'hosts' takes an array of strings"},
      {"[[rule]]\nid = \"x\"\nmin_kex_rating = \"good\"\n", "p.toml:3:1: 'min_kex_rating' 'good' is not a rating"},
      {"[[rule]]\nid = \"x\"\nmin_dh_bits = 0\n", "p.toml:3:1: 'min_dh_bits' must be at least 1"},
      {"[[rule]]\nid = \"x\"\nmin_version = \"1.3\"\nmax_version = \"1.2\"\n", "min_version is above max_version"},
      {"[[rule]]\nid = \"x\"\nmin_version = \"1.2\"\n[[rule]]\nid = \"x\"\nmin_version = \"1.3\"\n",
       "p.toml:4:1: rule id 'x' is used twice"},
      {"rule = 1\n", "'rule' must be written as [[rule]] tables"},
      {"", "no [[rule]] tables"},
      {"[[rule]\n", "p.toml:1:"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    std::string error;
    CHECK_FALSE(parsePolicyText(c.text, "p.toml", error).has_value());
    CHECK_MESSAGE(error.find(c.error) != std::string::npos, error);
  }
  std::string error;
  CHECK_FALSE(parsePolicyText("[[rule]]\nid = \"x\"\nmin_verison = \"1.2\"\n", "p.toml", error));
  CHECK(error.find("did you mean 'min_version'?") != std::string::npos);
}

TEST_CASE("globs") {
  CHECK(globMatch("*.internal", "api.Internal"));
  CHECK_FALSE(globMatch("*.internal", "internal"));
  CHECK(globMatch("TLS_ECDHE_*_GCM_*", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"));
  CHECK_FALSE(globMatch("TLS_ECDHE_*_GCM_*", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"));
  CHECK(globMatch("h?", "h2"));
  CHECK(globMatch("*", ""));
  CHECK_FALSE(globMatch("", "a"));
  // Many stars against a long name: linear, not exponential.
  CHECK_FALSE(globMatch("*a*a*a*a*a*a*a*a*b", std::string(5000, 'a')));
}

TEST_CASE("versions as the events spell them") {
  CHECK(parseTlsVersion("TLSv1.0") == 0x0301);
  CHECK(parseTlsVersion("TLSv1") == 0x0301);
  CHECK(parseTlsVersion("tls1.2") == 0x0303);
  CHECK(parseTlsVersion("SSLv3") == 0x0300);
  CHECK(parseTlsVersion("TLSv1.4") == 0);
}
