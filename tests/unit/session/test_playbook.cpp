// The proxy session without sockets: scripted inputs, the exact actions and events expected.
#include <algorithm>
#include <numeric>

#include "net/proxy_request.h"
#include "tests/unit/session/playbook.h"

using namespace tlstrace;
using namespace tlstrace::playbook;
using V = std::vector<std::string>;
using How = in::Closed::How;

namespace {

bool contains(const V& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }
std::size_t indexOf(const V& v, const std::string& s) {
  return static_cast<std::size_t>(std::find(v.begin(), v.end(), s) - v.begin());
}

// A reverse-mode session taken through both handshakes.
struct Established {
  World w;
  Client c{w};
  Server srv;
  Run r{w};
  Established() {
    r.start();
    r.bytes(Leg::Client, c.hello());
    r.feed(in::Connected{"127.0.0.1:4433", "127.0.0.1:40000", 0.2});
    pump(r, c, &srv);
    REQUIRE(c.tls->handshakeDone());
    REQUIRE(srv.tls->handshakeDone());
    pump(r, c, &srv);  // session tickets
    (void)r.takeActions();
    (void)r.takeEvents();
  }
  // Plaintext the server got from the client (through the proxy), and the other way.
  std::string serverGot() {
    std::vector<std::uint8_t> p;
    (void)srv.tls->read(p);
    return text(p);
  }
  std::string clientGot() {
    std::vector<std::uint8_t> p;
    (void)c.tls->read(p);
    return text(p);
  }
};

// The tcp.close of a leg, emitted so far.
const trace::ev::TcpClose* tcpClose(Run& r, Leg leg) {
  for (const auto& e : r.s.events())
    if (e.leg == leg)
      if (const auto* c = e.as<trace::ev::TcpClose>()) return c;
  return nullptr;
}

// "by/how in/out" of a leg's tcp.close: close_notify received and sent, "-" when not reported.
std::string closeFacts(Run& r, Leg leg) {
  const auto* c = tcpClose(r, leg);
  if (!c) return "none";
  auto b = [](const std::optional<bool>& v) { return v ? (*v ? "notify" : "none") : "-"; };
  return c->by + "/" + c->how + " " + b(c->close_notify_in) + "/" + b(c->close_notify_out);
}

}  // namespace

TEST_CASE("a ClientHello split across reads, then both handshakes in order and data both ways") {
  fakeNow() = session::SteadyClock::time_point{std::chrono::hours(1000)};
  World w;
  Client c(w);
  Server srv;
  Run r(w);
  r.start();
  CHECK(r.takeActions() == V{"timer +10s", "read client"});
  CHECK(r.takeEvents() == V{"conn.open"});

  const auto hello = c.hello();
  REQUIRE(hello.size() > 100);
  r.bytes(Leg::Client, std::span(hello).first(5));  // the record header alone
  CHECK(r.takeActions() == V{"read client"});
  r.bytes(Leg::Client, std::span(hello).subspan(5, 60));
  CHECK(r.takeActions() == V{"read client"});
  CHECK(r.takeEvents().empty());
  r.bytes(Leg::Client, std::span(hello).subspan(65));
  // The whole hello: connect to the target; the hello is decoded and traced once the connect is
  // under way (at the start of the next input).
  CHECK(r.takeActions() == V{"connect localhost:4433"});
  CHECK(r.takeEvents().empty());

  r.feed(in::Connected{"127.0.0.1:4433", "127.0.0.1:40000", 0.2});
  CHECK(r.takeActions() == V{"send upstream", "read upstream"});
  CHECK(r.takeEvents() ==
        V{"client tls.message ClientHello", "upstream tcp.connect", "upstream tls.message ClientHello"});

  pump(r, c, &srv);
  REQUIRE(c.tls->handshakeDone());
  REQUIRE(srv.tls->handshakeDone());
  const V ev = r.takeEvents();
  // The upstream handshake completes (and is traced) before the client's ServerHello goes out.
  for (const std::string e : {"upstream tls.message ServerHello", "upstream tls.trust", "upstream tls.established",
                              "upstream tls.key_exchange", "client tls.message ServerHello", "client tls.established",
                              "client tls.key_exchange"})
    CHECK_MESSAGE(contains(ev, e), e << " in " << doctest::toString(ev));
  CHECK(indexOf(ev, "upstream tls.established") < indexOf(ev, "client tls.message ServerHello"));
  CHECK(indexOf(ev, "client tls.message ServerHello") < indexOf(ev, "client tls.established"));
  const auto* est = r.last<trace::ev::TlsEstablished>();
  REQUIRE(est);
  CHECK(est->version == "TLSv1.3");
  CHECK(est->sni.value == "localhost");

  // Data both ways through the relay.
  const std::string ping = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  REQUIRE(c.tls->write(bytesOf(ping)) == tls::TlsEngine::Status::Ok);
  pump(r, c, &srv);
  std::vector<std::uint8_t> got;
  (void)srv.tls->read(got);
  CHECK(text(got) == ping);
  REQUIRE(srv.tls->write(bytesOf("pong")) == tls::TlsEngine::Status::Ok);
  pump(r, c, &srv);
  got.clear();
  (void)c.tls->read(got);
  CHECK(text(got) == "pong");
  CHECK_FALSE(r.finished);
}

TEST_CASE("upstream refused or timed out: the client gets a handshake_failure alert, the trace says why") {
  for (int status : {502, 504}) {
    CAPTURE(status);
    World w;
    Client c(w);
    Run r(w);
    r.start();
    r.bytes(Leg::Client, c.hello());
    (void)r.takeActions();
    (void)r.takeEvents();
    r.feed(in::ConnectFailed{status, status == 502 ? "Connection refused" : "connect timed out after 10 s"});
    CHECK(r.takeActions() == V{"timer +2s", "send client"});
    CHECK(r.takeEvents() == V{"client tls.message ClientHello", "upstream tcp.connect", "client tls.alert",
                              "client tls.error upstream_unreachable"});
    r.written(Leg::Client);
    CHECK(r.takeActions() == V{"shutdown client", "finish"});
    CHECK(r.takeEvents() == V{"client tcp.close proxy/fin", "conn.summary", "conn.close"});
    c.tls->feed(r.takeSent(Leg::Client));
    CHECK(c.tls->handshake() == tls::TlsEngine::Status::Error);
    CHECK(c.tls->error().find("handshake failure") != std::string::npos);
    CHECK(r.last<trace::ev::ConnClose>()->outcome.find("Connection refused") !=
          (status == 502 ? std::string::npos : 0));
  }
}

TEST_CASE("explicit mode: CONNECT to a refused or silent upstream answers 502 / 504") {
  for (int status : {502, 504}) {
    CAPTURE(status);
    World w(true, config::Mode::Explicit);
    w.front = std::make_unique<net::ExplicitFrontEnd>("");
    Run r(w);
    r.start();
    CHECK(r.takeActions() == V{"timer +10s", "read client"});
    const std::string req = "CONNECT localhost:4433 HTTP/1.1\r\nHost: localhost:4433\r\n\r\n";
    r.bytes(Leg::Client, bytesOf(req.substr(0, 10)));
    CHECK(r.takeActions() == V{"read client"});
    r.bytes(Leg::Client, bytesOf(req.substr(10)));
    CHECK(r.takeActions() == V{"connect localhost:4433"});
    CHECK(r.takeEvents() == V{"conn.open", "client proxy.request"});
    r.feed(in::ConnectFailed{status, "x"});
    CHECK(r.takeActions() == V{"timer +2s", "send client"});
    CHECK(r.takeEvents() == V{"upstream tcp.connect", "client proxy.error " + std::to_string(status)});
    CHECK(text(r.takeSent(Leg::Client)).starts_with("HTTP/1.1 " + std::to_string(status)));
  }
}

TEST_CASE("explicit mode: bytes after CONNECT that are not TLS are relayed as plain TCP") {
  World w(true, config::Mode::Explicit);
  w.front = std::make_unique<net::ExplicitFrontEnd>("");
  Run r(w);
  r.start();
  r.bytes(Leg::Client, bytesOf("CONNECT localhost:22 HTTP/1.1\r\n\r\n"));
  (void)r.takeActions();
  r.feed(in::Connected{"127.0.0.1:22", "127.0.0.1:40000", 0.1});
  CHECK(r.takeActions() == V{"send client", "read upstream", "read client"});
  CHECK(text(r.takeSent(Leg::Client)) == "HTTP/1.1 200 Connection Established\r\n\r\n");
  r.written(Leg::Client);
  (void)r.takeEvents();
  r.bytes(Leg::Client, bytesOf("SSH-2.0-OpenSSH_9.2\r\n"));
  CHECK(r.takeEvents() == V{"client conn.plaintext"});
  CHECK(r.takeActions() == V{"read client", "send upstream"});
  CHECK(text(r.takeSent(Leg::Upstream)) == "SSH-2.0-OpenSSH_9.2\r\n");
}

TEST_CASE("explicit mode: a wrong or missing Proxy-Authorization gets 407") {
  World w(true, config::Mode::Explicit);
  w.front = std::make_unique<net::ExplicitFrontEnd>("Basic dTpw");
  Run r(w);
  r.start();
  (void)r.takeActions();
  r.bytes(Leg::Client, bytesOf("CONNECT localhost:443 HTTP/1.1\r\nProxy-Authorization: Basic eDp5\r\n\r\n"));
  CHECK(r.takeActions() == V{"timer +2s", "send client"});
  const std::string resp = text(r.takeSent(Leg::Client));
  CHECK(resp.starts_with("HTTP/1.1 407"));
  CHECK(resp.find("Proxy-Authenticate: Basic") != std::string::npos);
}

TEST_CASE("explicit mode: the Basic scheme is matched case-insensitively (RFC 7235 2.1, RFC 7617)") {
  for (const char* auth : {"Basic dTpw", "basic dTpw", "bAsIc dTpw", "BASIC   dTpw"}) {
    CAPTURE(auth);
    World w(true, config::Mode::Explicit);
    w.front = std::make_unique<net::ExplicitFrontEnd>("Basic dTpw");
    Run r(w);
    r.start();
    (void)r.takeActions();
    r.bytes(Leg::Client,
            bytesOf(std::string("CONNECT localhost:443 HTTP/1.1\r\nProxy-Authorization: ") + auth + "\r\n\r\n"));
    CHECK(r.takeActions() == V{"connect localhost:443"});
  }
  // The credentials themselves are not (base64 is case-sensitive), nor is another scheme Basic.
  for (const char* auth : {"Basic DTPW", "Bearer dTpw", "Basicx dTpw", "BasicdTpw"}) {
    CAPTURE(auth);
    World w(true, config::Mode::Explicit);
    w.front = std::make_unique<net::ExplicitFrontEnd>("Basic dTpw");
    Run r(w);
    r.start();
    (void)r.takeActions();
    r.bytes(Leg::Client,
            bytesOf(std::string("CONNECT localhost:443 HTTP/1.1\r\nProxy-Authorization: ") + auth + "\r\n\r\n"));
    CHECK(text(r.takeSent(Leg::Client)).starts_with("HTTP/1.1 407"));
  }
}

TEST_CASE("explicit mode: a refused target (exposure rules) gets conn.refused and a 403, no connect") {
  World w(true, config::Mode::Explicit);
  w.front = std::make_unique<net::ExplicitFrontEnd>("");
  Run r(w);
  r.start();
  (void)r.takeActions();
  r.bytes(Leg::Client, bytesOf("CONNECT localhost:22 HTTP/1.1\r\n\r\n"));
  CHECK(r.takeActions() == V{"connect localhost:22"});
  const std::string why = "target localhost:22: 127.0.0.1 is loopback, refused for a non-loopback client";
  r.feed(in::TargetRefused{"10.1.2.3:5000", why});
  CHECK(r.takeEvents() == V{"conn.open", "client proxy.request", "conn.refused", "client proxy.error 403"});
  REQUIRE(r.last<trace::ev::ConnRefused>());
  CHECK(r.last<trace::ev::ConnRefused>()->client == "10.1.2.3:5000");
  CHECK(r.last<trace::ev::ConnRefused>()->reason == why);
  const std::string resp = text(r.takeSent(Leg::Client));
  CHECK(resp.starts_with("HTTP/1.1 403 Forbidden\r\n"));
  CHECK(resp.ends_with("\r\n\r\ntlstrace: " + why + "\n"));
  r.drain();
  CHECK(r.last<trace::ev::ConnClose>()->outcome == why);
}

TEST_CASE("reverse mode: plain HTTP to the TLS port gets a 400, other bytes a close") {
  {
    World w;
    Run r(w);
    r.start();
    r.bytes(Leg::Client, bytesOf("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(r.takeEvents() == V{"conn.open", "client tls.error not_tls", "client proxy.error 400"});
    CHECK(text(r.takeSent(Leg::Client)).starts_with("HTTP/1.1 400"));
  }
  {
    World w;
    Run r(w);
    r.start();
    r.bytes(Leg::Client, bytesOf("\x01\x02garbage"));
    CHECK(r.takeEvents() == V{"conn.open", "client tls.error not_tls", "client tcp.close proxy/fin", "conn.close"});
    CHECK(r.takeActions() == V{"timer +10s", "read client", "timer +2s", "shutdown client", "finish"});
  }
}

TEST_CASE("an untrusted upstream certificate: tls.trust says so, the client gets an alert") {
  World w(false);  // verify against the system store: the test server is self-signed
  Client c(w);
  Server srv;
  Run r(w);
  r.start();
  r.bytes(Leg::Client, c.hello());
  r.feed(in::Connected{"127.0.0.1:4433", "127.0.0.1:40000", 0.2});
  pump(r, c, &srv);
  const V ev = r.takeEvents();
  CHECK(contains(ev, "upstream tls.trust"));
  CHECK(indexOf(ev, "upstream tls.trust") < indexOf(ev, "client tls.error"));
  CHECK_FALSE(contains(ev, "client tls.established"));
  const auto* trust = r.last<trace::ev::TlsTrust>();
  REQUIRE(trust);
  CHECK(trust->report.object.find("verified")->asBool() == false);
  const auto* err = r.last<trace::ev::TlsError>();
  REQUIRE(err);
  CHECK(err->origin == "upstream");  // (the last tls.error: the client leg's)
  CHECK_FALSE(c.tls->handshakeDone());
  CHECK(r.finished);
}

TEST_CASE("a ClientHello below the client leg's minimum version is refused before any connect") {
  World w;
  w.client_ctx = tls::makeClientFacingContext({"1.3", "", "", "", ""}, "");  // --client-tls-min 1.3
  w.deps.client_ctx = w.client_ctx.get();
  Client c(w);
  SSL_CTX_set_max_proto_version(c.ctx.get(), TLS1_2_VERSION);  // a TLS 1.2 client
  c.tls = std::make_unique<tls::TlsEngine>(c.ctx.get(), false, &c.obs);
  Run r(w);
  r.start();
  (void)r.takeActions();
  r.bytes(Leg::Client, c.hello());
  CHECK(r.takeActions() == V{"timer +2s", "send client"});  // no "connect"
  CHECK(r.takeEvents() == V{"conn.open", "client tls.message ClientHello", "client tls.alert",
                            "client tls.error client_version_too_low"});
  const auto* err = r.last<trace::ev::TlsError>();
  REQUIRE(err);
  CHECK(err->stage == "client_hello");
  CHECK(err->hint.find("--client-tls-min 1.2") != std::string::npos);
  r.written(Leg::Client);
  c.tls->feed(r.takeSent(Leg::Client));
  CHECK(c.tls->handshake() == tls::TlsEngine::Status::Error);
  CHECK(c.tls->error().find("protocol version") != std::string::npos);  // the client's own reading
  // A TLS 1.3 client goes on to connect upstream.
  Client c13(w);
  Run r13(w, 2);
  r13.start();
  (void)r13.takeActions();
  r13.bytes(Leg::Client, c13.hello());
  CHECK(contains(r13.takeActions(), "connect localhost:4433"));
}

TEST_CASE("half-close: close_notify and FIN are passed on, the other direction still flows, then both close") {
  for (Leg first : {Leg::Client, Leg::Upstream}) {
    CAPTURE(sideName(first));
    Established e;
    const Leg second = otherLeg(first);
    tls::TlsEngine& closer = first == Leg::Client ? *e.c.tls : *e.srv.tls;
    tls::TlsEngine& stayer = first == Leg::Client ? *e.srv.tls : *e.c.tls;
    auto closerPeerGot = [&] { return first == Leg::Client ? e.serverGot() : e.clientGot(); };
    auto stayerPeerGot = [&] { return first == Leg::Client ? e.clientGot() : e.serverGot(); };
    REQUIRE(closer.write(bytesOf("last words")) == tls::TlsEngine::Status::Ok);
    closer.shutdown();
    pump(e.r, e.c, &e.srv);
    CHECK(closerPeerGot() == "last words");
    e.r.closed(first, How::Fin);  // its FIN
    e.r.drain();
    CHECK(contains(e.r.takeActions(), "shutdown " + sideName(second)));
    CHECK_FALSE(e.r.finished);
    // The other direction still relays.
    REQUIRE(stayer.write(bytesOf("reply")) == tls::TlsEngine::Status::Ok);
    pump(e.r, e.c, &e.srv);
    CHECK(stayerPeerGot() == "reply");
    stayer.shutdown();
    pump(e.r, e.c, &e.srv);
    e.r.closed(second, How::Fin);
    e.r.drain();
    CHECK(e.r.finished);
    const V ev = e.r.takeEvents();
    CHECK(contains(ev, sideName(first) + " tcp.close peer/fin"));
    CHECK(contains(ev, sideName(second) + " tcp.close proxy/fin"));
    // Both directions ended with close_notify, received and passed on.
    CHECK(closeFacts(e.r, first) == "peer/fin notify/notify");
    CHECK(closeFacts(e.r, second) == "proxy/fin notify/notify");
    CHECK(e.r.last<trace::ev::ConnClose>()->outcome == "ok");
  }
}

TEST_CASE("crossing FINs: the kernel's word on whose FIN came first wins over the order of completions") {
  for (bool peer_first : {false, true}) {
    CAPTURE(peer_first);
    Established e;
    e.srv.tls->shutdown();  // the server: close_notify, then its FIN
    pump(e.r, e.c, &e.srv);
    e.r.closed(Leg::Upstream, How::Fin);
    e.r.drain();
    CHECK(contains(e.r.takeActions(), "shutdown client"));  // our FIN went out first, as far as we know
    e.c.tls->shutdown();
    pump(e.r, e.c, &e.srv);
    CHECK_FALSE(e.r.finished);  // everything relayed: the client's FIN is awaited
    e.r.closed(Leg::Client, How::Fin, peer_first);
    CHECK(e.r.finished);
    CHECK(closeFacts(e.r, Leg::Client) == (peer_first ? "peer/fin notify/notify" : "proxy/fin notify/notify"));
    CHECK(closeFacts(e.r, Leg::Upstream) == "peer/fin notify/notify");
  }
}

TEST_CASE("a FIN without close_notify is passed on as a FIN without close_notify (truncation)") {
  for (Leg first : {Leg::Client, Leg::Upstream}) {
    CAPTURE(sideName(first));
    Established e;
    const Leg second = otherLeg(first);
    tls::TlsEngine& closer = first == Leg::Client ? *e.c.tls : *e.srv.tls;
    tls::TlsEngine& stayer = first == Leg::Client ? *e.srv.tls : *e.c.tls;
    REQUIRE(closer.write(bytesOf("cut short")) == tls::TlsEngine::Status::Ok);
    pump(e.r, e.c, &e.srv);
    CHECK((first == Leg::Client ? e.serverGot() : e.clientGot()) == "cut short");
    (void)e.r.takeActions();
    e.r.closed(first, How::Fin);                                    // FIN, no close_notify
    CHECK(e.r.takeActions() == V{"shutdown " + sideName(second)});  // no send: no close_notify
    CHECK(e.r.takeSent(second).empty());
    std::vector<std::uint8_t> p;
    CHECK(stayer.read(p) == tls::TlsEngine::Status::WantIo);  // the stayer's peer saw no close_notify
    CHECK_FALSE(stayer.sawCloseNotify());
    // The other direction ends cleanly: that close_notify is passed on.
    stayer.shutdown();
    pump(e.r, e.c, &e.srv);
    e.r.closed(second, How::Fin);
    e.r.drain();
    CHECK(e.r.finished);
    CHECK(closer.read(p) == tls::TlsEngine::Status::Closed);
    CHECK(closeFacts(e.r, first) == "peer/fin none/notify");
    CHECK(closeFacts(e.r, second) == "proxy/fin notify/none");
  }
}

// The driver's word as the session ends the client leg: nothing yet when the session decides on
// its FIN; when the session ends, that the client's FIN was in as ours went out
// (net/connection.cpp), although the session never read it.
struct FinCameIn final : session::ProxySession::SocketFacts {
  int client_asks = 0;
  std::optional<trace::ev::TcpInfo> tcpInfoAtClose(trace::Leg) override { return std::nullopt; }
  session::ProxySession::PeerEnd peerEnd(trace::Leg leg) override {
    using PE = session::ProxySession::PeerEnd;
    return leg == trace::Leg::Client && ++client_asks > 1 ? PE::Fin : PE::None;
  }
};

TEST_CASE("a peer's fatal alert then FIN: the peer closed first, the other leg gets no close_notify") {
  for (bool client_fin_came_in : {false, true}) {
    CAPTURE(client_fin_came_in);
    Established e;
    FinCameIn facts;
    if (client_fin_came_in) e.r.s.setSocketFacts(&facts);
    // The client's next record reaches the server damaged: the server answers with a fatal alert
    // (bad_record_mac), as a real server does, and would then close.
    REQUIRE(e.c.tls->write(bytesOf("hello")) == tls::TlsEngine::Status::Ok);
    std::vector<std::uint8_t> hello;
    (void)e.c.tls->takeOut(hello, SIZE_MAX);
    e.r.bytes(Leg::Client, hello);
    e.r.drain();
    auto rec = e.r.takeSent(Leg::Upstream);
    REQUIRE(rec.size() > 10);
    rec.back() ^= 0x01;
    e.srv.tls->feed(rec);
    std::vector<std::uint8_t> p;
    REQUIRE(e.srv.tls->read(p) == tls::TlsEngine::Status::Error);
    std::vector<std::uint8_t> alert;
    (void)e.srv.tls->takeOut(alert, SIZE_MAX);
    REQUIRE(!alert.empty());
    e.r.bytes(Leg::Upstream, alert);
    const V acts = e.r.takeActions();
    CHECK_FALSE(contains(acts, "shutdown upstream"));  // the server's FIN is awaited
    CHECK(contains(acts, "read upstream"));
    CHECK(contains(acts, "shutdown client"));
    CHECK(e.r.takeSent(Leg::Client).empty());  // no close_notify to the client
    const auto* err = e.r.last<trace::ev::TlsError>();
    REQUIRE(err);
    CHECK(err->alert_received.value_or("") == "bad_record_mac");
    e.r.drain();
    e.r.closed(Leg::Upstream, How::Fin);
    CHECK(e.r.takeActions() == V{"shutdown upstream", "finish"});
    CHECK(closeFacts(e.r, Leg::Upstream) == "peer/fin none/none");
    // The session ended without reading the client's end: only the driver knows whose FIN was first.
    CHECK(closeFacts(e.r, Leg::Client) == (client_fin_came_in ? "peer/fin none/none" : "proxy/fin none/none"));
    CHECK(facts.client_asks == (client_fin_came_in ? 2 : 0));
  }
}

TEST_CASE("an error the proxy detects: its alert, then its FIN first") {
  Established e;
  std::vector<std::uint8_t> junk = {23, 3, 3, 0, 32};
  junk.resize(5 + 32, 0x5a);  // application data that does not decrypt
  e.r.bytes(Leg::Upstream, junk);
  const V acts = e.r.takeActions();
  CHECK(contains(acts, "send upstream"));  // the alert
  e.r.drain();
  CHECK(contains(e.r.takeActions(), "shutdown upstream"));
  auto out = e.r.takeSent(Leg::Upstream);
  e.srv.tls->feed(out);
  std::vector<std::uint8_t> p;
  CHECK(e.srv.tls->read(p) == tls::TlsEngine::Status::Error);
  CHECK(e.srv.tls->error().find("bad record mac") != std::string::npos);
  e.r.closed(Leg::Upstream, How::Fin);
  CHECK(e.r.finished);
  CHECK(closeFacts(e.r, Leg::Upstream) == "proxy/fin none/none");
  CHECK(closeFacts(e.r, Leg::Client) == "proxy/fin none/none");
}

TEST_CASE("a reset mid-response: what arrived is relayed, then the reset is passed on") {
  Established e;
  std::vector<std::uint8_t> big(100 * 1024, 'x');
  REQUIRE(e.srv.tls->write(big) == tls::TlsEngine::Status::Ok);
  std::vector<std::uint8_t> wire;
  (void)e.srv.tls->takeOut(wire, SIZE_MAX);
  e.r.bytes(Leg::Upstream, wire);
  REQUIRE(e.r.writing[int(Leg::Client)]);
  (void)e.r.takeActions();
  e.r.closed(Leg::Upstream, How::Rst);
  CHECK(e.r.takeActions() == V{"abort upstream", "timer +2s"});  // the client's write is still out
  e.r.drain();
  const V after = e.r.takeActions();
  REQUIRE(after.size() >= 2);
  CHECK(V(after.end() - 2, after.end()) == V{"abort client", "finish"});
  CHECK_FALSE(contains(after, "shutdown client"));
  e.c.tls->feed(e.r.takeSent(Leg::Client));
  CHECK(e.clientGot().size() == big.size());
  CHECK_FALSE(e.c.tls->sawCloseNotify());
  CHECK(closeFacts(e.r, Leg::Upstream) == "peer/rst none/none");
  CHECK(closeFacts(e.r, Leg::Client) == "proxy/rst none/none");
}

TEST_CASE("a reset on either leg is passed on as a reset") {
  for (Leg reset : {Leg::Client, Leg::Upstream}) {
    CAPTURE(sideName(reset));
    Established e;
    const Leg peer = otherLeg(reset);
    e.r.closed(reset, How::Rst);
    // Nothing queued for the other peer: its reset follows at once, no close_notify, no FIN.
    CHECK(e.r.takeActions() == V{"abort " + sideName(reset), "timer +2s", "abort " + sideName(peer), "finish"});
    const V ev = e.r.takeEvents();
    CHECK(contains(ev, sideName(reset) + " tcp.close peer/rst"));
    CHECK(contains(ev, sideName(peer) + " tcp.close proxy/rst"));
    CHECK(closeFacts(e.r, reset) == "peer/rst none/none");
    CHECK(closeFacts(e.r, peer) == "proxy/rst none/none");
    CHECK(e.r.last<trace::ev::ConnClose>()->outcome.find("connection reset by peer") != std::string::npos);
  }
}

TEST_CASE("backpressure: a slow client stops reads from the server until its writes drain") {
  Established e;
  std::vector<std::uint8_t> big(1024 * 1024);
  std::iota(big.begin(), big.end(), std::uint8_t{0});
  REQUIRE(e.srv.tls->write(big) == tls::TlsEngine::Status::Ok);
  std::vector<std::uint8_t> wire;
  (void)e.srv.tls->takeOut(wire, SIZE_MAX);
  // Feed the server's records while the client's writes never complete.
  std::size_t fed = 0;
  int rounds = 0;
  while (e.r.reading[int(Leg::Upstream)] && fed < wire.size() && rounds++ < 200) {
    const std::size_t n = std::min<std::size_t>(16 * 1024, wire.size() - fed);
    e.r.bytes(Leg::Upstream, std::span(wire).subspan(fed, n));
    fed += n;
  }
  CHECK_FALSE(e.r.reading[int(Leg::Upstream)]);  // paused
  CHECK(fed < wire.size());
  CHECK(fed >= 256 * 1024);
  CHECK(e.r.writing[int(Leg::Client)]);
  // The client takes what was written: reads from the server resume.
  for (int i = 0; i < 64 && !e.r.reading[int(Leg::Upstream)]; ++i) e.r.written(Leg::Client);
  CHECK(e.r.reading[int(Leg::Upstream)]);
}

TEST_CASE("handshake timeout: a client that never finishes its ClientHello is closed after --handshake-timeout") {
  fakeNow() = session::SteadyClock::time_point{std::chrono::hours(2000)};
  World w;
  Client c(w);
  Run r(w);
  r.start();
  const auto hello = c.hello();
  r.bytes(Leg::Client, std::span(hello).first(20));
  (void)r.takeActions();
  (void)r.takeEvents();
  fakeNow() += std::chrono::seconds(4);
  r.feed(in::TimerFired{});  // early (a re-armed timer's old deadline): waits on
  CHECK(r.takeActions() == V{"timer +6s"});
  fakeNow() += std::chrono::seconds(7);
  r.feed(in::TimerFired{});
  CHECK(r.takeEvents() == V{"client tls.error timeout", "client tcp.close proxy/timeout", "conn.close"});
  CHECK(r.takeActions() == V{"timer +2s", "shutdown client", "finish"});
  CHECK(r.last<trace::ev::ConnClose>()->outcome == "handshake timeout");
}

TEST_CASE("idle timeout: an established connection with no traffic for --idle-timeout closes both legs") {
  fakeNow() = session::SteadyClock::time_point{std::chrono::hours(3000)};
  Established e;
  fakeNow() += std::chrono::seconds(301);
  e.r.feed(in::TimerFired{});
  const V acts = e.r.takeActions();
  CHECK(acts == V{"timer +2s", "send client", "send upstream"});  // close_notify on both legs
  e.r.drain();
  CHECK(e.r.finished);
  CHECK(e.r.last<trace::ev::ConnClose>()->outcome == "idle timeout");
}

TEST_CASE("idle timeout shorter than the handshake's: the watchdog is armed for it when the relay starts") {
  fakeNow() = session::SteadyClock::time_point{std::chrono::hours(3100)};
  World w;
  w.cfg.idle_timeout_s = 1;  // (the handshake's 10 s are armed at the start)
  Client c{w};
  Server srv;
  Run r{w};
  r.start();
  CHECK(r.takeActions() == V{"timer +10s", "read client"});
  r.bytes(Leg::Client, c.hello());
  r.feed(in::Connected{"127.0.0.1:4433", "127.0.0.1:40000", 0.2});
  pump(r, c, &srv);
  pump(r, c, &srv);  // session tickets
  REQUIRE(srv.tls->handshakeDone());
  V timers;
  for (const auto& a : r.takeActions())
    if (a.rfind("timer", 0) == 0) timers.push_back(a);
  CHECK(timers == V{"timer +1s"});
  fakeNow() += std::chrono::milliseconds(1001);
  r.feed(in::TimerFired{});
  CHECK(r.takeActions() == V{"timer +2s", "send client", "send upstream"});  // close_notify on both legs
  r.drain();
  CHECK(r.last<trace::ev::ConnClose>()->outcome == "idle timeout");
}

TEST_CASE("a client refused at accept time (--max-connections): conn.refused and, in explicit mode, a 503") {
  auto r = session::refuseConnection(9, "127.0.0.1:5000", "--max-connections (1) reached", true);
  CHECK(r.event.name() == "conn.refused");
  CHECK(r.event.conn == 9);
  REQUIRE(r.event.as<trace::ev::ConnRefused>());
  CHECK(r.event.as<trace::ev::ConnRefused>()->reason == "--max-connections (1) reached");
  CHECK(r.response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
  CHECK(session::refuseConnection(9, "127.0.0.1:5000", "x", false).response.empty());
  CHECK(session::refuseConnection(9, "10.1.2.3:5000", "not on loopback", true, 403)
            .response.starts_with("HTTP/1.1 403 Forbidden\r\n"));
  net::ExplicitFrontEnd explicit_front("");
  session::ReverseFrontEnd reverse_front({"localhost", 443});
  CHECK(explicit_front.answersRefusals());
  CHECK_FALSE(reverse_front.answersRefusals());
}
