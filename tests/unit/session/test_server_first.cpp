// Server-speaks-first protocols (SSH, SMTP, FTP banners) behind CONNECT: while the proxy waits for
// the client's first bytes, the server's are relayed, as plain TCP both ways.
#include <algorithm>

#include "net/proxy_request.h"
#include "tests/unit/session/playbook.h"

using namespace tlstrace;
using namespace tlstrace::playbook;
using V = std::vector<std::string>;
using How = in::Closed::How;

namespace {

// An explicit-mode session whose CONNECT is answered: the 200 is written, the proxy reads both legs.
struct Tunnel {
  World w{true, config::Mode::Explicit};
  Run r{init(w)};
  static World& init(World& w) {
    w.front = std::make_unique<net::ExplicitFrontEnd>("");
    return w;
  }
  Tunnel() {
    r.start();
    CHECK(r.takeActions() == V{"timer +10s", "read client"});
    r.bytes(Leg::Client, bytesOf("CONNECT localhost:4433 HTTP/1.1\r\nHost: localhost:4433\r\n\r\n"));
    CHECK(r.takeActions() == V{"connect localhost:4433"});
    r.feed(in::Connected{"127.0.0.1:4433", "127.0.0.1:40000", 0.1});
    // Both legs are read from the tunnel's opening: whichever peer speaks first decides.
    CHECK(r.takeActions() == V{"send client", "read upstream", "read client"});
    CHECK(text(r.takeSent(Leg::Client)) == "HTTP/1.1 200 Connection Established\r\n\r\n");
    r.written(Leg::Client);
    (void)r.takeActions();
    CHECK(r.takeEvents() == V{"conn.open", "client proxy.request", "upstream tcp.connect"});
  }
};

}  // namespace

TEST_CASE("server speaks first after CONNECT: its banner reaches the client, then plain TCP both ways") {
  Tunnel t;
  Run& r = t.r;
  const std::string banner = "SSH-2.0-test\r\n";
  r.bytes(Leg::Upstream, bytesOf(banner));
  const V ev = r.takeEvents();
  REQUIRE(!ev.empty());
  CHECK(ev.front() == "upstream conn.plaintext");
  REQUIRE(r.last<trace::ev::ConnPlaintext>());
  CHECK(r.last<trace::ev::ConnPlaintext>()->first_bytes == "5353482d322e302d746573740d0a");  // the banner
  // The client's read is still out; the server is read again and the banner goes to the client.
  CHECK(r.takeActions() == V{"read upstream", "send client"});
  CHECK(text(r.takeSent(Leg::Client)) == banner);
  r.written(Leg::Client);
  (void)r.takeActions();

  // The client answers; the server echoes: both relayed as they are.
  const std::string hello = "SSH-2.0-client\r\nping";
  r.bytes(Leg::Client, bytesOf(hello));
  CHECK(r.takeActions() == V{"send upstream", "read client"});
  CHECK(text(r.takeSent(Leg::Upstream)) == hello);
  r.written(Leg::Upstream);
  r.bytes(Leg::Upstream, bytesOf(hello));
  CHECK(text(r.takeSent(Leg::Client)) == hello);
  r.drain();
  (void)r.takeActions();

  // The client ends; its FIN is passed on, then the server's.
  r.closed(Leg::Client, How::Fin);
  CHECK(r.takeActions() == V{"shutdown upstream"});
  r.closed(Leg::Upstream, How::Fin);
  r.drain();
  CHECK(r.finished);
  const auto* close = r.last<trace::ev::ConnClose>();
  REQUIRE(close);
  CHECK(close->outcome == "ok");
  CHECK(close->bytes_client_to_server == hello.size());                  // after the CONNECT head
  CHECK(close->bytes_server_to_client == banner.size() + hello.size());  // the banner and the echo
  CHECK(std::none_of(r.s.events().begin(), r.s.events().end(),
                     [](const trace::Event& e) { return e.as<trace::ev::TlsError>() != nullptr; }));
}

TEST_CASE("server speaks first while the client's first bytes are incomplete: they go upstream as they are") {
  Tunnel t;
  Run& r = t.r;
  // Five bytes that could start a ClientHello record: not enough to decide.
  const std::string start = "\x16\x03\x01\x00\x10";
  r.bytes(Leg::Client, bytesOf(start));
  CHECK(r.takeActions() == V{"read client"});
  CHECK(r.takeEvents().empty());
  r.bytes(Leg::Upstream, bytesOf("220 smtp ready\r\n"));
  CHECK(r.takeEvents().front() == "upstream conn.plaintext");
  CHECK(text(r.takeSent(Leg::Upstream)) == start);  // the client's bytes, never dropped
  CHECK(text(r.takeSent(Leg::Client)) == "220 smtp ready\r\n");
}

TEST_CASE("TLS after CONNECT: the upstream read out since the tunnel opened is the handshake's; intercepted") {
  Tunnel t;
  Run& r = t.r;
  Client c(t.w);
  Server srv;
  r.bytes(Leg::Client, c.hello());
  // The ClientHello goes upstream; no second read on the upstream leg (one is out already).
  const V a = r.takeActions();
  CHECK(std::count(a.begin(), a.end(), "read upstream") == 0);
  CHECK(std::count(a.begin(), a.end(), "send upstream") == 1);
  pump(r, c, &srv);
  REQUIRE(c.tls->handshakeDone());
  REQUIRE(srv.tls->handshakeDone());
  const V ev = r.takeEvents();
  CHECK(std::find(ev.begin(), ev.end(), "upstream tls.established") != ev.end());
  CHECK(std::find(ev.begin(), ev.end(), "client tls.established") != ev.end());
  CHECK(std::find(ev.begin(), ev.end(), "upstream conn.plaintext") == ev.end());
  CHECK(std::find(ev.begin(), ev.end(), "client conn.plaintext") == ev.end());
}

TEST_CASE("the server closes before anyone spoke: the trace says so on the upstream leg, the client gets a FIN") {
  Tunnel t;
  Run& r = t.r;
  r.closed(Leg::Upstream, How::Fin);
  r.drain();
  const V a = r.takeActions();
  CHECK(std::find(a.begin(), a.end(), "shutdown client") != a.end());
  const V ev = r.takeEvents();
  CHECK(std::find(ev.begin(), ev.end(), "upstream tcp.close peer/fin") != ev.end());
  REQUIRE(r.last<trace::ev::TlsError>());
  CHECK(r.last<trace::ev::TlsError>()->reason == "upstream closed the connection (FIN) during the handshake");
}
