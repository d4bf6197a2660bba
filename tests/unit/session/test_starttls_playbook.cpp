// STARTTLS through the session (reverse mode, --starttls smtp): the preamble relayed message by
// message with a conn.starttls event each, then both TLS legs with real OpenSSL engines in memory;
// and a refusal (454) passed to the client as it came, with the connection left alone.
#include <algorithm>

#include "tests/unit/session/playbook.h"

using namespace tlstrace;
using namespace tlstrace::playbook;
using V = std::vector<std::string>;
using How = in::Closed::How;

namespace {

// Connected to the SMTP server; the proxy reads both legs and has relayed the banner.
struct Smtp {
  World w{true, config::Mode::Reverse};
  Run r{init(w)};
  static World& init(World& w) {
    w.cfg.starttls = "smtp";
    return w;
  }
  Smtp() {
    r.start();
    // A STARTTLS server speaks first: the connection is made before any client byte.
    CHECK(r.takeActions() == V{"timer +10s", "connect localhost:4433"});
    r.feed(in::Connected{"127.0.0.1:4433", "127.0.0.1:40000", 0.1});
    CHECK(r.takeActions() == V{"read upstream", "read client"});
    exchange(Leg::Upstream, "220 mail.example ESMTP\r\n");
    exchange(Leg::Client, "EHLO client.example\r\n");
    exchange(Leg::Upstream, "250-mail.example\r\n250 STARTTLS\r\n");
    exchange(Leg::Client, "STARTTLS\r\n");
    CHECK(r.takeEvents() == V{"conn.open", "upstream tcp.connect", "upstream conn.starttls", "client conn.starttls",
                              "upstream conn.starttls", "client conn.starttls"});
  }
  // One message from a peer reaches the other one unchanged.
  void exchange(Leg from, const std::string& msg) {
    r.bytes(from, bytesOf(msg));
    CHECK(text(r.takeSent(otherLeg(from))) == msg);
    r.drain();
    (void)r.takeActions();
  }
};

}  // namespace

TEST_CASE("STARTTLS smtp: the preamble is relayed and traced, then both legs are intercepted") {
  Smtp t;
  Run& r = t.r;
  REQUIRE(r.last<trace::ev::ConnStartTls>());
  CHECK(r.last<trace::ev::ConnStartTls>()->step == "starttls");
  t.exchange(Leg::Upstream, "220 2.0.0 Ready to start TLS\r\n");
  REQUIRE(r.last<trace::ev::ConnStartTls>());
  CHECK(r.last<trace::ev::ConnStartTls>()->step == "ready");
  CHECK(r.last<trace::ev::ConnStartTls>()->text == "220 2.0.0 Ready to start TLS");
  // Now TLS: the client's ClientHello, the proxy's own handshake upstream, then the client's.
  Client c(t.w);
  Server srv;
  r.bytes(Leg::Client, c.hello());
  pump(r, c, &srv);
  CHECK(c.tls->handshakeDone());
  CHECK(srv.tls->handshakeDone());
  const V ev = r.takeEvents();
  CHECK(std::count(ev.begin(), ev.end(), "upstream tls.established") == 1);
  CHECK(std::count(ev.begin(), ev.end(), "client tls.established") == 1);
  CHECK(std::find(ev.begin(), ev.end(), "client conn.plaintext") == ev.end());
}

TEST_CASE("STARTTLS smtp refused: the 454 reaches the client, tls.error says why, the session goes on") {
  Smtp t;
  Run& r = t.r;
  t.exchange(Leg::Upstream, "454 4.7.0 TLS not available due to temporary reason\r\n");
  const V ev = r.takeEvents();
  CHECK(ev == V{"upstream conn.starttls", "upstream tls.error starttls_refused"});
  REQUIRE(r.last<trace::ev::TlsError>());
  CHECK(r.last<trace::ev::TlsError>()->stage == "starttls");
  CHECK(r.last<trace::ev::TlsError>()->reason ==
        "the server refused STARTTLS: 454 4.7.0 TLS not available due to temporary reason");
  t.exchange(Leg::Client, "QUIT\r\n");
  t.exchange(Leg::Upstream, "221 2.0.0 Bye\r\n");
  CHECK(r.takeEvents() == V{"client conn.starttls", "upstream conn.starttls"});
  // The server closes: its FIN is passed on as a FIN, the relay ends as plain TCP.
  r.closed(Leg::Upstream, How::Fin);
  CHECK(r.takeEvents() == V{"upstream conn.plaintext"});
  const V acts = r.takeActions();
  CHECK(std::find(acts.begin(), acts.end(), "shutdown client") != acts.end());
}

TEST_CASE("STARTTLS: the preamble falls under the idle timeout, the handshake after it has its own") {
  Smtp t;
  Run& r = t.r;
  // The handshake timer (10 s from the start) fires during the preamble: not a handshake timeout,
  // the idle one is armed instead.
  r.feed(in::TimerFired{});
  CHECK(r.takeActions() == V{"timer +300s"});
  CHECK(r.takeEvents().empty());
  t.exchange(Leg::Upstream, "220 2.0.0 Ready to start TLS\r\n");
  r.feed(in::TimerFired{});
  CHECK(r.takeActions() == V{"timer +10s"});  // now the handshake's, from the upgrade on
}
