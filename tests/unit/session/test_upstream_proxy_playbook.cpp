// The session with --upstream-proxy: which connections it sends through the proxy (act::Connect's
// via), and what tcp.connect and tls.error say when the tunnel opens or a hop fails. The hop's
// bytes are net/'s (tests/integration/test_upstream_proxy.py runs them against real proxies).
#include <algorithm>

#include "config/upstream_proxy.h"
#include "net/proxy_request.h"
#include "tests/unit/session/playbook.h"

using namespace tlstrace;
using namespace tlstrace::playbook;
using V = std::vector<std::string>;

namespace {

config::UpstreamProxy proxyFor(const std::string& url, const std::string& exclude = "") {
  config::ProxyConfig cfg;
  cfg.upstream_proxy = url;
  cfg.upstream_proxy_exclude = exclude;
  std::string err;
  auto p = config::upstreamProxyOf(cfg, err);
  REQUIRE_MESSAGE(p, err);
  return *p;
}

const act::Connect* connectOf(const Run& r) {
  for (const auto& a : r.raw)
    if (const auto* c = std::get_if<act::Connect>(&a)) return c;
  return nullptr;
}

}  // namespace

TEST_CASE("upstream proxy: the tunnel opens, tcp.connect names the proxy and its reply") {
  World w;
  const auto proxy = proxyFor("http://alice:s3cret@127.0.0.1:3128");
  w.deps.upstream_proxy = &proxy;
  Client c(w);
  Server srv;
  Run r(w);
  r.start();
  r.bytes(Leg::Client, c.hello());
  const act::Connect* conn = connectOf(r);
  REQUIRE(conn);
  CHECK(conn->via == &proxy);
  CHECK(conn->host == "localhost");
  in::Connected up{"127.0.0.1:3128", "127.0.0.1:40000", 0.2};
  up.proxy_status = 200;
  up.proxy_reply = "200 Connection established";
  up.tunnel_ms = 1.5;
  r.feed(std::move(up));
  const auto* tc = r.last<trace::ev::TcpConnect>();
  REQUIRE(tc);
  CHECK(tc->peer == "127.0.0.1:3128");
  CHECK(tc->target == "localhost:4433");
  CHECK(tc->via == "http://127.0.0.1:3128");
  CHECK(tc->hop == "target");
  CHECK(tc->proxy_status == 200);
  CHECK(tc->proxy_reply == "200 Connection established");
  CHECK(tc->tunnel_ms == 1.5);
  pump(r, c, &srv);
  CHECK(c.tls->handshakeDone());
  // The credentials are nowhere in the events.
  for (auto& e : r.s.events()) {
    std::string line;
    trace::appendJsonLine(e, line);
    CHECK(line.find("s3cret") == std::string::npos);
  }
}

TEST_CASE("upstream proxy: a refusal is the proxy hop's, with the proxy's status, and the client is told") {
  World w;
  const auto proxy = proxyFor("http://127.0.0.1:3128");
  w.deps.upstream_proxy = &proxy;
  Client c(w);
  Run r(w);
  r.start();
  r.bytes(Leg::Client, c.hello());
  (void)r.takeEvents();
  in::ConnectFailed f{502, "upstream proxy refused CONNECT: 403 Forbidden"};
  f.hop = "proxy";
  f.proxy_status = 403;
  f.proxy_reply = "403 Forbidden";
  r.feed(std::move(f));
  CHECK(r.takeEvents() == V{"client tls.message ClientHello", "upstream tcp.connect",
                            "upstream tls.error upstream_proxy_refused", "client tls.alert",
                            "client tls.error upstream_proxy_refused"});
  const auto* tc = r.last<trace::ev::TcpConnect>();
  REQUIRE(tc);
  CHECK(tc->hop == "proxy");
  CHECK(tc->proxy_status == 403);
  CHECK(tc->error == "upstream proxy refused CONNECT: 403 Forbidden");
  const auto* err = r.last<trace::ev::TlsError>();
  CHECK(err->reason == "cannot reach localhost:4433: upstream proxy refused CONNECT: 403 Forbidden");
}

TEST_CASE("upstream proxy: a dead proxy and an unreachable target are told apart") {
  for (const char* hop : {"proxy", "target"}) {
    CAPTURE(hop);
    World w(true, config::Mode::Explicit);
    w.front = std::make_unique<net::ExplicitFrontEnd>("");
    const auto proxy = proxyFor("socks5://127.0.0.1:1080");
    w.deps.upstream_proxy = &proxy;
    Run r(w);
    r.start();
    const std::string req = "CONNECT localhost:4433 HTTP/1.1\r\nHost: localhost:4433\r\n\r\n";
    r.bytes(Leg::Client, bytesOf(req));
    in::ConnectFailed f{502, "x"};
    f.hop = hop;
    if (std::string(hop) == "target") f.proxy_status = 5;
    r.feed(std::move(f));
    const std::string cause = std::string(hop) == "proxy" ? "upstream_proxy_failed" : "upstream_unreachable";
    const V ev = r.takeEvents();
    CHECK(std::find(ev.begin(), ev.end(), "upstream tls.error " + cause) != ev.end());
    CHECK(r.last<trace::ev::TcpConnect>()->hop == hop);
    CHECK(text(r.takeSent(Leg::Client)).starts_with("HTTP/1.1 502"));
  }
}

TEST_CASE("upstream proxy: an excluded target goes direct") {
  World w;
  const auto proxy = proxyFor("http://127.0.0.1:3128", "example.com,localhost:4433");
  w.deps.upstream_proxy = &proxy;
  Client c(w);
  Run r(w);
  r.start();
  r.bytes(Leg::Client, c.hello());
  const act::Connect* conn = connectOf(r);
  REQUIRE(conn);
  CHECK(conn->via == nullptr);
  r.feed(in::Connected{"127.0.0.1:4433", "127.0.0.1:40000", 0.2});
  CHECK_FALSE(r.last<trace::ev::TcpConnect>()->via.has_value());
}
