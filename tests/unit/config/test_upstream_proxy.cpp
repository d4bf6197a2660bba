// --upstream-proxy URLs and --upstream-proxy-exclude lists (config/upstream_proxy.h). The
// exclusion cases follow curl's NO_PROXY rules (lib/noproxy.c: a name matches itself and its
// subdomains, a leading dot changes nothing, "*" matches all, addresses and CIDRs match literals).
#include <doctest/doctest.h>

#include "config/config.h"
#include "config/upstream_proxy.h"

using namespace tlstrace::config;

TEST_CASE("upstream proxy URLs") {
  std::string err;
  auto p = parseUpstreamProxy("http://127.0.0.1:3128", err);
  REQUIRE(p);
  CHECK(p->scheme == UpstreamProxy::Scheme::Http);
  CHECK(p->host == "127.0.0.1");
  CHECK(p->port == 3128);
  CHECK_FALSE(p->auth);
  CHECK(p->url == "http://127.0.0.1:3128");

  p = parseUpstreamProxy("http://alice:s3cret@proxy.example:8080/", err);
  REQUIRE(p);
  CHECK(p->auth);
  CHECK(p->user == "alice");
  CHECK(p->password == "s3cret");
  CHECK(p->authorization == "Basic YWxpY2U6czNjcmV0");  // RFC 7617 2's encoding of alice:s3cret
  CHECK(p->url == "http://proxy.example:8080");         // never the credentials

  p = parseUpstreamProxy("socks5://bob:p%40ss%3Aword@[::1]:1080", err);
  REQUIRE(p);
  CHECK(p->scheme == UpstreamProxy::Scheme::Socks5);
  CHECK(p->host == "::1");
  CHECK(p->password == "p@ss:word");
  CHECK(p->url == "socks5://[::1]:1080");

  CHECK(parseUpstreamProxy("socks5h://h", err)->port == 1080);
  CHECK(parseUpstreamProxy("http://h", err)->port == 3128);
  for (const char* bad :
       {"h:3128", "https://h:1", "ftp://h:21", "http://:1", "http://h:99999", "http://u:p%zz@h:1", "http://:pw@h:1"}) {
    err.clear();
    CHECK_MESSAGE(!parseUpstreamProxy(bad, err), bad);
    CHECK(!err.empty());
  }
  // A bad URL's error never repeats the password.
  err.clear();
  CHECK_FALSE(parseUpstreamProxy("http://alice:topsecret@h:notaport", err));
  CHECK(err.find("topsecret") == std::string::npos);
  err.clear();
  CHECK_FALSE(parseUpstreamProxy("socks5://alice:" + std::string(300, 'x') + "@h:1", err));
}

TEST_CASE("upstream proxy exclusions (NO_PROXY style)") {
  std::string err;
  auto px = parseUpstreamProxy("http://127.0.0.1:3128", err);
  REQUIRE(px);
  auto x = parseProxyExclusions(" example.com, .internal.test ,10.0.0.0/8, ::1, [fd00::1]:8443, localhost:4433", err);
  REQUIRE(x);
  px->exclude = *x;
  CHECK_FALSE(px->usedFor("example.com", 443));
  CHECK_FALSE(px->usedFor("WWW.Example.COM", 443));
  CHECK(px->usedFor("notexample.com", 443));
  CHECK_FALSE(px->usedFor("internal.test", 443));
  CHECK_FALSE(px->usedFor("a.b.internal.test", 443));
  CHECK_FALSE(px->usedFor("10.1.2.3", 443));
  CHECK(px->usedFor("11.1.2.3", 443));
  CHECK_FALSE(px->usedFor("::1", 443));
  CHECK_FALSE(px->usedFor("fd00::1", 8443));
  CHECK(px->usedFor("fd00::1", 443));
  CHECK_FALSE(px->usedFor("localhost", 4433));
  CHECK(px->usedFor("localhost", 4434));
  CHECK(px->usedFor("127.0.0.1", 4433));  // names are not resolved, as curl does not

  px->exclude = *parseProxyExclusions("*", err);
  CHECK_FALSE(px->usedFor("anything", 1));
  px->exclude = *parseProxyExclusions("", err);
  CHECK(px->usedFor("anything", 1));
  for (const char* bad : {"a b", "10.0.0.0/33", "host:0", "host:x", "[::1", "exa$mple"}) {
    err.clear();
    CHECK_MESSAGE(!parseProxyExclusions(bad, err), bad);
    CHECK(!err.empty());
  }
}

TEST_CASE("upstream proxy options are validated") {
  ProxyConfig cfg;
  cfg.upstream_proxy = "socks5://127.0.0.1:1080";
  cfg.upstream_proxy_exclude = "localhost,127.0.0.0/8";
  CHECK(cfg.validate().empty());
  std::string err;
  const auto p = upstreamProxyOf(cfg, err);
  REQUIRE(p);
  CHECK(p->exclude.size() == 2);
  cfg.upstream_proxy_exclude = "10.0.0.0/99";
  CHECK(cfg.validate().size() == 1);
  cfg.upstream_proxy_exclude.clear();
  cfg.upstream_proxy = "socks4://127.0.0.1:1080";
  CHECK(cfg.validate().size() == 1);
}
