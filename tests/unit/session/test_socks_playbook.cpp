// SOCKS5 mode through the session core: the replies RFC 1928 (sections 3 and 6) and RFC 1929
// (section 2) prescribe, byte for byte, at each step; both TLS handshakes after a CONNECT; and the
// refusals, each with the protocol's own reply and one conn.refused with its cause.
#include <algorithm>
#include <cerrno>

#include "session/socks_front_end.h"
#include "tests/unit/session/playbook.h"

using namespace tlstrace;
using namespace tlstrace::playbook;
using V = std::vector<std::string>;

namespace {

std::string b(std::initializer_list<int> v) {
  std::string out;
  for (int c : v) out.push_back(static_cast<char>(c));
  return out;
}
// RFC 1928 section 6: VER 5, REP, RSV 0, ATYP 1, BND.ADDR 0.0.0.0, BND.PORT 0 (a refusal).
std::string rep(int code) { return b({5, code, 0, 1, 0, 0, 0, 0, 0, 0}); }
// Success: BND.ADDR and BND.PORT are the proxy's end of the upstream connection, 127.0.0.1:40000.
const std::string kSucceeded = b({5, 0, 0, 1, 127, 0, 0, 1, 0x9c, 0x40});
// A CONNECT to localhost:4433 by domain name (ATYP 3, section 5).
const std::string kConnectLocalhost = b({5, 1, 0, 3, 9}) + "localhost" + b({0x11, 0x51});

struct SocksWorld : World {
  explicit SocksWorld(const std::string& auth = "") : World(true, config::Mode::Socks5) {
    cfg.upstream.reset();
    front = std::make_unique<session::SocksFrontEnd>(auth);
  }
};

bool has(const V& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

TEST_CASE("socks5: username/password, CONNECT by name, then both handshakes") {
  SocksWorld w("alice:s3cret");
  Client c{w};
  Server srv;
  Run r{w};
  r.start();
  CHECK(r.takeActions() == V{"timer +10s", "read client"});
  r.bytes(Leg::Client, bytesOf(b({5, 2, 0, 2})));     // no-auth and username/password offered
  CHECK(text(r.takeSent(Leg::Client)) == b({5, 2}));  // username/password chosen
  r.drain();
  r.bytes(Leg::Client, bytesOf(b({1, 5}) + "alice" + b({6}) + "s3cret"));
  CHECK(text(r.takeSent(Leg::Client)) == b({1, 0}));  // RFC 1929: success
  r.drain();
  (void)r.takeActions();
  r.bytes(Leg::Client, bytesOf(kConnectLocalhost));
  CHECK(r.takeActions() == V{"connect localhost:4433"});
  CHECK(r.takeSent(Leg::Client).empty());  // the reply waits for the connection
  r.feed(in::Connected{"127.0.0.1:4433", "127.0.0.1:40000", 0.2});
  CHECK(text(r.takeSent(Leg::Client)) == kSucceeded);
  r.drain();
  r.bytes(Leg::Client, c.hello());
  pump(r, c, &srv);
  CHECK(c.tls->handshakeDone());
  CHECK(srv.tls->handshakeDone());
  const V evs = r.takeEvents();
  CHECK(evs[0] == "conn.open");
  CHECK(evs[1] == "client proxy.request");
  CHECK(has(evs, "client tls.established"));
  CHECK(has(evs, "upstream tls.established"));
  CHECK_FALSE(has(evs, "conn.refused"));
  REQUIRE(r.last<trace::ev::ProxyRequest>());
  CHECK(r.last<trace::ev::ProxyRequest>()->method == "SOCKS5 CONNECT");
  CHECK(r.last<trace::ev::ProxyRequest>()->target == "localhost:4433");
}

TEST_CASE("socks5: a greeting, request and ClientHello in one read") {
  SocksWorld w;
  Client c{w};
  Server srv;
  Run r{w};
  r.start();
  (void)r.takeActions();
  const auto hello = c.hello();
  r.bytes(Leg::Client, bytesOf(b({5, 1, 0}) + kConnectLocalhost + text(hello)));
  CHECK(text(r.takeSent(Leg::Client)) == b({5, 0}));
  r.drain();
  r.feed(in::Connected{"127.0.0.1:4433", "127.0.0.1:40000", 0.2});
  CHECK(text(r.takeSent(Leg::Client)) == kSucceeded);  // (the client's TLS engine gets only TLS from here)
  pump(r, c, &srv);
  CHECK(c.tls->handshakeDone());
  CHECK(srv.tls->handshakeDone());
}

TEST_CASE("socks5: connect failures and refused targets answer with RFC 1928 reply codes") {
  struct Case {
    const char* name;
    session::Input input;
    std::string reply;
    const char* cause;
  };
  const std::vector<Case> cases = {
      {"refused", in::ConnectFailed{502, "Connection refused", ECONNREFUSED}, rep(5), "connection_refused"},
      {"host unreachable", in::ConnectFailed{502, "No route to host", EHOSTUNREACH}, rep(4), "host_unreachable"},
      {"network unreachable", in::ConnectFailed{502, "Network is unreachable", ENETUNREACH}, rep(3),
       "network_unreachable"},
      {"no such name", in::ConnectFailed{502, "name resolution failed: Host not found", 0}, rep(4), "host_unreachable"},
      {"timed out", in::ConnectFailed{504, "connect timed out after 10 s", 0}, rep(6), "timeout"},
      {"another error", in::ConnectFailed{502, "Permission denied", EACCES}, rep(1), "connect_failed"},
      // Through an upstream proxy (net/upstream_hop.cpp): its REP 6 about the target, its own failure.
      {"upstream TTL expired", in::ConnectFailed{502, "upstream proxy: REP 6 TTL expired", ETIMEDOUT}, rep(6),
       "timeout"},
      {"upstream proxy failed", in::ConnectFailed{502, "upstream proxy refused: REP 2", EIO}, rep(1), "connect_failed"},
      {"exposure rules", in::TargetRefused{"10.1.2.3:5000", "target localhost:4433: 127.0.0.1 is loopback"}, rep(2),
       "not_allowed"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    SocksWorld w;
    Run r{w};
    r.start();
    r.bytes(Leg::Client, bytesOf(b({5, 1, 0}) + kConnectLocalhost));
    r.drain();
    (void)r.takeSent(Leg::Client);
    r.feed(c.input);
    r.drain();
    CHECK(text(r.takeSent(Leg::Client)) == c.reply);
    const V evs = r.takeEvents();
    CHECK(std::count(evs.begin(), evs.end(), "conn.refused") == 1);
    CHECK_FALSE(has(evs, "client proxy.error 502"));
    CHECK_FALSE(has(evs, "client proxy.error 403"));
    REQUIRE(r.last<trace::ev::ConnRefused>());
    CHECK(r.last<trace::ev::ConnRefused>()->cause == std::optional<std::string>(c.cause));
  }
}

TEST_CASE("socks5: a bad request gets its reply, conn.refused with the cause, and a close; no connect") {
  SocksWorld w;
  Run r{w};
  r.start();
  (void)r.takeActions();
  r.bytes(Leg::Client, bytesOf(b({5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80})));  // BIND
  r.drain();
  CHECK(text(r.takeSent(Leg::Client)) == b({5, 0}) + rep(7));
  for (const auto& a : r.takeActions()) CHECK_FALSE(a.starts_with("connect"));
  REQUIRE(r.last<trace::ev::ConnRefused>());
  CHECK(r.last<trace::ev::ConnRefused>()->cause == std::optional<std::string>("socks_command"));
  CHECK(r.last<trace::ev::ConnRefused>()->client == "127.0.0.1:50000");
}

TEST_CASE("socks5: bytes after the CONNECT that are not TLS are relayed as plain TCP") {
  SocksWorld w;
  Run r{w};
  r.start();
  r.bytes(Leg::Client, bytesOf(b({5, 1, 0}) + b({5, 1, 0, 1, 127, 0, 0, 1, 0, 22})));
  r.drain();
  (void)r.takeActions();
  r.feed(in::Connected{"127.0.0.1:22", "127.0.0.1:40000", 0.1});
  CHECK(r.takeActions() == V{"send client", "read upstream", "read client"});
  CHECK(text(r.takeSent(Leg::Client)) == b({5, 0}) + kSucceeded);
  r.written(Leg::Client);
  (void)r.takeEvents();
  r.bytes(Leg::Client, bytesOf("SSH-2.0-OpenSSH_9.2\r\n"));
  CHECK(r.takeEvents() == V{"client conn.plaintext"});
  CHECK(text(r.takeSent(Leg::Upstream)) == "SSH-2.0-OpenSSH_9.2\r\n");
}
