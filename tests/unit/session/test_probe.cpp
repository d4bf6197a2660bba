// Playbooks for `tlstrace probe`: a ProxySession started by probe() runs the upstream leg alone
// against a real in-memory OpenSSL server. What the server's own SSL says (the SNI it received,
// the version and suite it chose, whether it resumed) is what the events are compared with.
#include <algorithm>
#include <string>
#include <vector>

#include "tests/unit/session/playbook.h"

using namespace tlstrace;
using namespace tlstrace::playbook;

namespace {

// Carries bytes between the session's upstream leg and the server until nothing moves.
void pumpUpstream(Run& r, Server& srv) {
  for (int i = 0; i < 50 && !r.finished; ++i) {
    bool moved = false;
    r.drain();
    if (auto b = r.takeSent(Leg::Upstream); !b.empty()) {
      srv.tls->feed(b);
      moved = true;
    }
    if (!srv.tls->handshakeDone()) (void)srv.tls->handshake();
    std::vector<std::uint8_t> plain;
    if (srv.tls->handshakeDone()) (void)srv.tls->read(plain);  // the client's close_notify
    if (r.reading[int(Leg::Upstream)] && srv.tls->pendingOut() > 0) {
      std::vector<std::uint8_t> out;
      (void)srv.tls->takeOut(out, SIZE_MAX);
      r.bytes(Leg::Upstream, out);
      moved = true;
    }
    if (!moved && !r.writing[int(Leg::Upstream)]) return;
  }
}

session::ProbeSpec spec(std::shared_ptr<tls::SavedSession> save, std::shared_ptr<tls::SavedSession> resume) {
  session::ProbeSpec p;
  p.target = config::HostPort{"localhost", 4433};
  p.sni = "probe.example";
  p.alpn = {"h2"};
  p.ticket_wait_s = 1;
  p.save = std::move(save);
  p.resume = std::move(resume);
  return p;
}

bool noClientLeg(Run& r) {
  for (const auto& e : r.s.events())
    if (e.leg == trace::Leg::Client) return false;
  return true;
}

}  // namespace

TEST_CASE("probe: the upstream leg alone, then a resumption with the ticket it kept") {
  World w;
  auto saved = std::make_shared<tls::SavedSession>();
  Server srv;
  Run r(w);
  r.probe(spec(saved, nullptr));
  CHECK(r.takeActions() == std::vector<std::string>{"timer +10s", "connect localhost:4433"});
  r.feed(in::Connected{"127.0.0.1:4433", "127.0.0.1:40000", 0.2});
  CHECK(r.takeActions() == std::vector<std::string>{"send upstream", "read upstream"});
  pumpUpstream(r, srv);
  REQUIRE(srv.tls->handshakeDone());
  REQUIRE(r.finished);
  // What the server received and chose, by its own account.
  const char* sni = SSL_get_servername(srv.tls->ssl(), TLSEXT_NAMETYPE_host_name);
  REQUIRE(sni != nullptr);
  CHECK(std::string(sni) == "probe.example");
  const auto* est = r.last<trace::ev::TlsEstablished>();
  REQUIRE(est != nullptr);
  CHECK(est->version == SSL_get_version(srv.tls->ssl()));
  CHECK(est->cipher.name == SSL_CIPHER_standard_name(SSL_get_current_cipher(srv.tls->ssl())));
  CHECK_FALSE(est->resumed);
  CHECK(noClientLeg(r));
  const auto ev = r.takeEvents();
  CHECK(ev.front() == "conn.open");
  CHECK(std::find(ev.begin(), ev.end(), "upstream tls.message NewSessionTicket") != ev.end());
  CHECK(std::find(ev.begin(), ev.end(), "upstream tls.trust") != ev.end());
  CHECK(std::find(ev.begin(), ev.end(), "upstream tls.key_exchange") != ev.end());
  CHECK(ev.back() == "conn.close");
  CHECK(r.last<trace::ev::ConnOpen>()->mode == "probe");
  CHECK(r.last<trace::ev::ConnClose>()->outcome == "ok");
  REQUIRE(saved->saved());
  CHECK(saved->hasTicket());

  // The resumption attempt: a fresh server engine on the same context (its ticket keys).
  srv.tls = std::make_unique<tls::TlsEngine>(srv.ctx.get(), true, &srv.obs);
  Run r2(w, 2);
  r2.probe(spec(nullptr, saved));
  r2.feed(in::Connected{"127.0.0.1:4433", "127.0.0.1:40001", 0.2});
  pumpUpstream(r2, srv);
  REQUIRE(srv.tls->handshakeDone());
  CHECK(SSL_session_reused(srv.tls->ssl()) == 1);
  const auto* est2 = r2.last<trace::ev::TlsEstablished>();
  REQUIRE(est2 != nullptr);
  CHECK(est2->resumed);
}

TEST_CASE("probe: a refused connection ends with the error, no client alert") {
  World w;
  Run r(w);
  r.probe(spec(nullptr, nullptr));
  (void)r.takeActions();
  r.feed(in::ConnectFailed{502, "Connection refused"});
  CHECK(r.finished);
  CHECK(noClientLeg(r));
  CHECK(r.last<trace::ev::TcpConnect>()->error == std::optional<std::string>("Connection refused"));
  CHECK(r.last<trace::ev::ConnClose>()->outcome.find("Connection refused") != std::string::npos);
}
