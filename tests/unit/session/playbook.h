// Playbooks for the proxy session: a ProxySession driven with scripted inputs, in memory, between
// a real OpenSSL client and a real OpenSSL server (TlsEngine over memory buffers). Each step
// records the actions the session asked for and the events it emitted, in a compact text form,
// so that a test states the exact sequence it expects.
#pragma once
#include <doctest/doctest.h>
#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "analysis/kex.h"
#include "pki/ca.h"
#include "pki/forge.h"
#include "session/proxy_session.h"
#include "tls/cert_summary.h"
#include "tls/context.h"
#include "tls/engine.h"
#include "trace/event.h"

namespace doctest {
template <>
struct StringMaker<std::vector<std::string>> {
  static String convert(const std::vector<std::string>& v) {
    std::string s = "{";
    for (const auto& x : v) s += (s.size() > 1 ? ", \"" : "\"") + x + "\"";
    return (s + "}").c_str();
  }
};
}  // namespace doctest

namespace tlstrace::playbook {

using session::Leg;
namespace in = session::in;
namespace act = session::act;

// The session's clock, moved by the tests.
inline session::SteadyClock::time_point& fakeNow() {
  static session::SteadyClock::time_point t{std::chrono::hours(1000)};
  return t;
}

struct Quiet : tls::TlsEngine::Observer {
  void onTlsMessage(bool, int, std::span<const std::uint8_t>) override {}
  void onRecordHeader(bool, std::span<const std::uint8_t>) override {}
  void onKeylog(std::string_view) override {}
};

// Everything a session shares with others, as the composition root builds it.
struct World {
  config::ProxyConfig cfg;
  pki::CertAuthority proxy_ca = pki::createCa("playbook proxy CA");
  pki::Forger forger{proxy_ca, 16};
  tls::SslCtxPtr client_ctx = tls::makeClientFacingContext({}, "");
  tls::SslCtxPtr upstream_ctx;
  trace::Tracer tracer{trace::kDefaultCategories};
  analysis::PrimeCache primes;
  tls::CertSummaryCache certs;
  session::Deps deps;
  std::unique_ptr<session::FrontEnd> front;

  // `trusted`: the upstream leg accepts any certificate (--insecure); else it verifies against
  // the system store, which does not know the test server's self-signed certificate.
  explicit World(bool insecure = true, config::Mode mode = config::Mode::Reverse) {
    cfg.mode = mode;
    cfg.upstream = config::HostPort{"localhost", 4433};
    upstream_ctx = tls::makeUpstreamContext({}, "", insecure);
    deps.cfg = &cfg;
    deps.tracer = &tracer;
    deps.forger = &forger;
    deps.client_ctx = client_ctx.get();
    deps.upstream_ctx = upstream_ctx.get();
    deps.primes = &primes;
    deps.certs = &certs;
    deps.now = [] { return fakeNow(); };
    front = std::make_unique<session::ReverseFrontEnd>(*cfg.upstream);
  }
};

// The real server: self-signed, in memory.
struct Server {
  pki::CertAuthority id = pki::createCa("localhost");
  tls::SslCtxPtr ctx{SSL_CTX_new(TLS_server_method())};
  Quiet obs;
  std::unique_ptr<tls::TlsEngine> tls;
  explicit Server(int max_version = 0) {
    REQUIRE(SSL_CTX_use_certificate(ctx.get(), id.cert.get()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(ctx.get(), id.key.get()) == 1);
    if (max_version) SSL_CTX_set_max_proto_version(ctx.get(), max_version);
    tls::TlsEngine::prepareContext(ctx.get());
    tls = std::make_unique<tls::TlsEngine>(ctx.get(), true, &obs);
  }
};

// The real client, trusting the proxy's CA.
struct Client {
  tls::SslCtxPtr ctx{SSL_CTX_new(TLS_client_method())};
  Quiet obs;
  std::unique_ptr<tls::TlsEngine> tls;
  explicit Client(const World& w, const char* sni = "localhost") {
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), w.proxy_ca.cert.get());
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    tls::TlsEngine::prepareContext(ctx.get());
    tls = std::make_unique<tls::TlsEngine>(ctx.get(), false, &obs);
    if (sni) SSL_set_tlsext_host_name(tls->ssl(), sni);
  }
  // Its first flight (the ClientHello).
  std::vector<std::uint8_t> hello() {
    (void)tls->handshake();
    std::vector<std::uint8_t> out;
    (void)tls->takeOut(out, SIZE_MAX);
    return out;
  }
};

inline std::string text(const std::vector<std::uint8_t>& b) { return {b.begin(), b.end()}; }
inline std::span<const std::uint8_t> bytesOf(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

inline std::string sideName(Leg l) { return l == Leg::Client ? "client" : l == Leg::Upstream ? "upstream" : "-"; }
inline Leg otherLeg(Leg l) { return l == Leg::Client ? Leg::Upstream : Leg::Client; }

// One action as text: "read client", "send upstream 517", "connect localhost:4433",
// "timer +10s", "shutdown client", "abort upstream", "finish".
inline std::string describe(const session::Action& a) {
  struct V {
    std::string operator()(const act::Read& r) const { return "read " + sideName(r.leg); }
    std::string operator()(const act::Send& s) const { return "send " + sideName(s.leg); }
    std::string operator()(const act::Shutdown& s) const { return "shutdown " + sideName(s.leg); }
    std::string operator()(const act::Abort& s) const { return "abort " + sideName(s.leg); }
    std::string operator()(const act::Connect& c) const {
      return "connect " + std::string(c.host) + ":" + std::to_string(c.port);
    }
    std::string operator()(const act::ArmTimer& t) const {
      const auto s = std::chrono::duration_cast<std::chrono::seconds>(t.at - fakeNow()).count();
      return "timer +" + std::to_string(s) + "s";
    }
    std::string operator()(const act::Finish&) const { return "finish"; }
    std::string operator()(const act::TestPrime& t) const { return "test prime " + sideName(t.leg); }
  };
  return std::visit(V{}, a);
}

// One event as text: its name, and for handshake messages the type ("tls.message ClientHello").
inline std::string describe(const trace::Event& e) {
  std::string s(e.name());
  if (const auto* m = e.as<trace::ev::TlsMessage>()) s += " " + m->type;
  if (const auto* err = e.as<trace::ev::TlsError>()) s += " " + err->cause;
  if (const auto* perr = e.as<trace::ev::ProxyError>()) s += " " + std::to_string(perr->status);
  if (const auto* c = e.as<trace::ev::TcpClose>()) s += " " + c->by + "/" + c->how;
  if (e.leg != trace::Leg::None) s = sideName(e.leg) + " " + s;
  return s;
}

// A session and what it did: the driver's side of the contract (one read and one write per leg
// at a time, sends completed on request).
struct Run {
  World& w;
  session::ProxySession s;
  std::vector<std::string> actions;   // since the last take
  std::vector<session::Action> raw;   // the last step's
  std::vector<std::uint8_t> sent[3];  // written per leg, not yet delivered to the peer
  bool reading[3] = {false, false, false};
  bool writing[3] = {false, false, false};
  std::size_t in_flight[3] = {0, 0, 0};
  bool finished = false;
  std::size_t events_seen = 0;

  explicit Run(World& world, std::uint64_t id = 1) : w(world), s(world.deps, *world.front, id) {}

  void feed(session::Input input) { record(s.handle(std::move(input))); }
  // A probe's start (session/probe.h) instead of start().
  void probe(const session::ProbeSpec& spec) { record(s.probe(spec)); }
  void record(const std::vector<session::Action>& acts) {
    raw = acts;
    for (const auto& a : raw) {
      actions.push_back(describe(a));
      if (auto* r = std::get_if<act::Read>(&a)) {
        CHECK_MESSAGE(!reading[int(r->leg)], "two reads out on one leg");
        reading[int(r->leg)] = true;
      } else if (auto* snd = std::get_if<act::Send>(&a)) {
        CHECK_MESSAGE(!writing[int(snd->leg)], "two writes out on one leg");
        writing[int(snd->leg)] = true;
        in_flight[int(snd->leg)] = snd->bytes.size();
        sent[int(snd->leg)].insert(sent[int(snd->leg)].end(), snd->bytes.begin(), snd->bytes.end());
      } else if (std::holds_alternative<act::Finish>(a)) {
        finished = true;
      }
    }
  }
  void start() { feed(in::Start{"127.0.0.1:50000", "127.0.0.1:8443"}); }
  // Bytes arrive on a leg (the session had asked to read).
  void bytes(Leg leg, std::span<const std::uint8_t> b) {
    REQUIRE_MESSAGE(reading[int(leg)], "bytes delivered without a read out");
    reading[int(leg)] = false;
    feed(in::Bytes{leg, b});
  }
  void closed(Leg leg, in::Closed::How how, bool peer_fin_first = false) {
    reading[int(leg)] = false;
    feed(in::Closed{leg, how, how == in::Closed::How::Rst ? "Connection reset by peer" : "", peer_fin_first});
  }
  // Completes the write under way on a leg.
  void written(Leg leg) {
    REQUIRE(writing[int(leg)]);
    writing[int(leg)] = false;
    feed(in::Written{leg, in_flight[int(leg)]});
  }
  // Completes writes until none is out (each completion may start the next).
  void drain() {
    for (int i = 0; i < 64 && (writing[1] || writing[2]); ++i)
      for (Leg l : {Leg::Client, Leg::Upstream})
        if (writing[int(l)]) written(l);
  }
  std::vector<std::uint8_t> takeSent(Leg leg) { return std::exchange(sent[int(leg)], {}); }
  std::vector<std::string> takeActions() { return std::exchange(actions, {}); }
  // Events emitted since the last call.
  std::vector<std::string> takeEvents() {
    std::vector<std::string> out;
    auto& ev = s.events();
    for (; events_seen < ev.size(); ++events_seen) out.push_back(describe(ev[events_seen]));
    return out;
  }
  // The last event of a kind emitted so far.
  template <class Kind>
  const Kind* last() const {
    auto& ev = const_cast<session::ProxySession&>(s).events();
    for (auto it = ev.rbegin(); it != ev.rend(); ++it)
      if (const auto* k = it->as<Kind>()) return k;
    return nullptr;
  }
};

// Moves bytes between the client, the session and the server until nothing moves: writes are
// completed, what the session sent is fed to the peer engine, what the peers produce is fed back
// when the session reads.
inline void pump(Run& r, Client& c, Server* srv, int rounds = 50) {
  for (int i = 0; i < rounds; ++i) {
    bool moved = false;
    r.drain();
    if (auto b = r.takeSent(Leg::Client); !b.empty()) {
      c.tls->feed(b);
      moved = true;
    }
    if (auto b = r.takeSent(Leg::Upstream); !b.empty() && srv) {
      srv->tls->feed(b);
      moved = true;
    }
    if (!c.tls->handshakeDone()) (void)c.tls->handshake();
    if (srv && !srv->tls->handshakeDone()) (void)srv->tls->handshake();
    if (r.finished) return;
    std::vector<std::uint8_t> out;
    if (r.reading[int(Leg::Client)] && c.tls->pendingOut() > 0) {
      (void)c.tls->takeOut(out, SIZE_MAX);
      r.bytes(Leg::Client, out);
      moved = true;
    }
    out.clear();
    if (srv && r.reading[int(Leg::Upstream)] && srv->tls->pendingOut() > 0) {
      (void)srv->tls->takeOut(out, SIZE_MAX);
      r.bytes(Leg::Upstream, out);
      moved = true;
    }
    if (!moved && !r.writing[1] && !r.writing[2]) return;
  }
}

}  // namespace tlstrace::playbook
