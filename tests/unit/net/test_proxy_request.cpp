#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "config/address.h"
#include "net/proxy_request.h"
#include "net/services.h"
#include "session/proxy_session.h"

using namespace tlstrace::net;
namespace session = tlstrace::session;

namespace {
ProxyRequest parse(const std::string& s) {
  return parseProxyRequest(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
}
}  // namespace

TEST_CASE("CONNECT requests") {
  auto r = parse("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  REQUIRE(r.kind == ProxyRequest::Kind::Connect);
  CHECK(r.target.host == "example.com");
  CHECK(r.target.port == 443);
  // Bytes after the head are left for the tunnel.
  const std::string with_tail = "CONNECT [::1]:8443 HTTP/1.1\r\n\r\n\x16\x03\x01";
  r = parse(with_tail);
  REQUIRE(r.kind == ProxyRequest::Kind::Connect);
  CHECK(r.target.host == "::1");
  CHECK(r.consumed == with_tail.size() - 3);
}

TEST_CASE("partial heads need more bytes") {
  CHECK(parse("CONNECT example.com:443 HTTP/1.1\r\nHost: exa").kind == ProxyRequest::Kind::NeedMore);
  CHECK(parse("").kind == ProxyRequest::Kind::NeedMore);
}

TEST_CASE("a GET in origin-form is for the proxy itself: its CA page, else 400 as before") {
  const std::string get = "GET /ca.pem?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
  auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(get.data()), get.size());
  const auto r = parseProxyRequest(bytes);
  CHECK(r.kind == ProxyRequest::Kind::Local);
  CHECK(r.path == "/ca.pem");
  const auto none = ExplicitFrontEnd("").onClientBytes(bytes);
  CHECK(none.kind == session::FrontStep::Kind::Refuse);
  CHECK(none.status == 400);
  const auto page = ExplicitFrontEnd("Basic x", CaPage{"PEM\n", "DER", "AB:CD", "/CN=ca"}).onClientBytes(bytes);
  REQUIRE(page.kind == session::FrontStep::Kind::Answer);  // no proxy credentials for a public certificate
  CHECK(page.head.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(page.head.ends_with("\r\n\r\nPEM\n"));
  CHECK(caPageResponse(CaPage{"P", "D", "AB:CD", "/CN=<ca>"}, "/").find("/CN=&lt;ca&gt;") != std::string::npos);
  CHECK(caPageResponse(CaPage{"P", "D", "", ""}, "/nope").starts_with("HTTP/1.1 404"));
}

TEST_CASE("malformed and unsupported requests get a status") {
  struct Row {
    const char* req;
    int status;
  };
  const Row rows[] = {
      {"CONNECT example.com HTTP/1.1\r\n\r\n", 400},        // no port
      {"CONNECT :443 HTTP/1.1\r\n\r\n", 400},               // no host
      {"CONNECT example.com:99999 HTTP/1.1\r\n\r\n", 400},  // bad port
      {"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 400},          // origin-form, not GET: not a proxy request
      {"GET https://x/ HTTP/1.1\r\n\r\n", 400},             // https needs CONNECT
      {"\x16\x03\x01\x00\x05hello", 400},                   // TLS to the HTTP front end
      {"CONNECT a:1 HTTP/1.1\r\nBad Header\r\n\r\n", 400},
  };
  for (const auto& row : rows) {
    CAPTURE(row.req);
    auto r = parse(row.req);
    CHECK(r.kind == ProxyRequest::Kind::Error);
    CHECK(r.status == row.status);
    CHECK_FALSE(r.reason.empty());
  }
  std::string huge = "CONNECT a:1 HTTP/1.1\r\nX: " + std::string(70000, 'a');
  auto r = parse(huge);
  CHECK(r.kind == ProxyRequest::Kind::Error);
  CHECK(r.status == 431);
}

TEST_CASE("absolute-form requests are rewritten to origin-form") {
  auto r = parse(
      "GET http://example.com:8081/path?q=1 HTTP/1.1\r\nHost: example.com:8081\r\nProxy-Connection: "
      "keep-alive\r\n\r\n");
  REQUIRE(r.kind == ProxyRequest::Kind::PlainHttp);
  CHECK(r.target.host == "example.com");
  CHECK(r.target.port == 8081);
  CHECK(r.forward_head.rfind("GET /path?q=1 HTTP/1.1\r\n", 0) == 0);
  CHECK(r.forward_head.find("Proxy-Connection") == std::string::npos);
  CHECK(r.forward_head.find("Connection: close") != std::string::npos);
  r = parse("GET http://example.com HTTP/1.1\r\n\r\n");
  REQUIRE(r.kind == ProxyRequest::Kind::PlainHttp);
  CHECK(r.target.port == 80);
  CHECK(r.forward_head.find("Host: example.com:80") != std::string::npos);
}

TEST_CASE("error responses are complete HTTP messages") {
  const std::string resp = tlstrace::session::httpErrorResponse(502, "cannot reach x:1: Connection refused");
  CHECK(resp.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);
  const auto body = resp.substr(resp.find("\r\n\r\n") + 4);
  CHECK(resp.find("Content-Length: " + std::to_string(body.size())) != std::string::npos);
}

TEST_CASE("this host's interface addresses include loopback (the exposure rules' own addresses)") {
  const auto own = tlstrace::net::interfaceAddresses();
  CHECK(std::find(own.begin(), own.end(), *tlstrace::config::parseIp("127.0.0.1")) != own.end());
}
