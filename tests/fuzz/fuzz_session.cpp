// libFuzzer target: the sans-I/O proxy session (src/session/) driven the way net/ drives it, with
// the inputs, their order and their bytes chosen by the fuzzer: raw bytes on either leg, the bytes
// of a real in-memory OpenSSL client and server (cut anywhere, optionally with one byte flipped),
// the upstream connect succeeding or failing, write completions and failures, FINs and resets,
// the timer, a shutdown. The driver's contract (one read and one write per leg at a time, bytes
// only on a read that is out) is kept, as the playbook tests do (tests/unit/session/playbook.h),
// and checked: a session asking for a second read or write on a leg aborts the run.
//
// Input layout (FuzzedDataProvider): the integers (world, operation codes, lengths, cuts) are
// taken from the end of the input, the byte strings from the front; tools/fuzz_session_seeds.py
// writes seeds in this layout from real captured bytes.
//
// Deterministic: no sockets, no clock (the session's clock is injected), and OpenSSL's random
// bytes come from a stream reseeded for every input, so an input replays the same handshakes.
// RAND_set_rand_method is deprecated in OpenSSL 3.0 but still honoured by RAND_bytes/RAND_priv_bytes.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <fuzzer/FuzzedDataProvider.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "analysis/kex.h"
#include "net/proxy_request.h"
#include "pki/ca.h"
#include "pki/forge.h"
#include "session/proxy_session.h"
#include "tls/cert_summary.h"
#include "tls/context.h"
#include "tls/engine.h"
#include "trace/event.h"
#include "trace/text.h"

namespace {

using namespace tlstrace;
using session::Leg;
namespace in = session::in;
namespace act = session::act;

// OpenSSL's randomness, reproducible: splitmix64 from a fixed seed at the start of every input.
std::uint64_t g_rand = 0;
int randBytes(unsigned char* buf, int num) {
  for (int i = 0; i < num; ++i) {
    std::uint64_t z = (g_rand += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    buf[i] = static_cast<unsigned char>(z ^ (z >> 31));
  }
  return 1;
}
int randStatus() { return 1; }
RAND_METHOD g_rand_method = {nullptr, randBytes, nullptr, nullptr, randBytes, randStatus};
void installRandom() {
  static const bool done = RAND_set_rand_method(&g_rand_method) == 1;
  (void)done;
  g_rand = 0x746c737472616365ULL;
}

session::SteadyClock::time_point g_now;

struct Quiet : tls::TlsEngine::Observer {
  void onTlsMessage(bool, int, std::span<const std::uint8_t>) override {}
  void onRecordHeader(bool, std::span<const std::uint8_t>) override {}
  void onKeylog(std::string_view) override {}
};

pki::CertAuthority& proxyCa() {
  static pki::CertAuthority ca = pki::createCa("fuzz proxy CA");
  return ca;
}

// What sessions share, in eight variants (the low three bits of the first integer): explicit or
// reverse front end; the default trace or every category with secrets, mirroring and a key log;
// the upstream certificate accepted (--insecure) or verified (and, explicit, Proxy-Authorization).
struct World {
  config::ProxyConfig cfg;
  pki::Forger forger{proxyCa(), 16};
  tls::SslCtxPtr client_ctx;
  tls::SslCtxPtr upstream_ctx;
  std::unique_ptr<trace::Tracer> tracer;
  analysis::PrimeCache primes;
  tls::CertSummaryCache certs;
  session::Deps deps;
  std::unique_ptr<session::FrontEnd> front;

  explicit World(unsigned v) {
    const bool explicit_mode = (v & 1) != 0, full = (v & 2) != 0, verify = (v & 4) != 0;
    cfg.mode = explicit_mode ? config::Mode::Explicit : config::Mode::Reverse;
    cfg.upstream = config::HostPort{"localhost", 4433};
    cfg.log_secrets = full;
    cfg.mirror_client = full;
    cfg.insecure = !verify;
    client_ctx = tls::makeClientFacingContext({}, "");
    upstream_ctx = tls::makeUpstreamContext({}, "", !verify);
    tracer = std::make_unique<trace::Tracer>(full ? trace::kAll : trace::kDefaultCategories);
    if (full) {
      tls::TlsEngine::reportSecrets(client_ctx.get());
      tls::TlsEngine::reportSecrets(upstream_ctx.get());
      deps.keylog = [](std::string_view) {};
    }
    deps.cfg = &cfg;
    deps.tracer = tracer.get();
    deps.forger = &forger;
    deps.client_ctx = client_ctx.get();
    deps.upstream_ctx = upstream_ctx.get();
    deps.primes = &primes;
    deps.certs = &certs;
    deps.now = [] { return g_now; };
    if (verify && explicit_mode) deps.expected_proxy_auth = "Basic dTpw";
    if (explicit_mode) front = std::make_unique<net::ExplicitFrontEnd>(deps.expected_proxy_auth);
    else front = std::make_unique<session::ReverseFrontEnd>(*cfg.upstream);
  }
};

World& world(unsigned v) {
  static std::array<std::unique_ptr<World>, 8> worlds;
  if (!worlds[v]) worlds[v] = std::make_unique<World>(v);
  return *worlds[v];
}

// The real peers' contexts: the client trusts the proxy's CA; both in a TLS 1.3 and a TLS 1.2 one.
SSL_CTX* peerContext(bool server, bool tls12) {
  static std::array<tls::SslCtxPtr, 4> ctxs;
  auto& c = ctxs[(server ? 2 : 0) + (tls12 ? 1 : 0)];
  if (c) return c.get();
  c.reset(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (server) {
    // A leaf for localhost with an RSA key (a CA certificate cannot sign TLS 1.2 key exchanges:
    // its keyUsage has no digitalSignature), from an origin CA the proxy does not trust.
    static pki::CertAuthority origin_ca = pki::createCa("fuzz origin CA");
    static pki::Forger origin(origin_ca, 1, pki::Forger::KeyType::Rsa);
    std::string error;
    static tls::X509Ptr leaf = origin.leaf(pki::LeafNames{"localhost", {"localhost"}, {"127.0.0.1"}}, error);
    if (!leaf || SSL_CTX_use_certificate(c.get(), leaf.get()) != 1 ||
        SSL_CTX_use_PrivateKey(c.get(), origin.leafKey()) != 1)
      std::abort();
  } else {
    X509_STORE_add_cert(SSL_CTX_get_cert_store(c.get()), proxyCa().cert.get());
    SSL_CTX_set_verify(c.get(), SSL_VERIFY_PEER, nullptr);
  }
  if (tls12) SSL_CTX_set_max_proto_version(c.get(), TLS1_2_VERSION);
  tls::TlsEngine::prepareContext(c.get());
  return c.get();
}

// A real TLS peer on one leg: what the session sends it is fed in; what it produces waits in
// `outbox` until the fuzzer delivers it (in pieces it chooses).
struct Peer {
  Quiet obs;
  std::unique_ptr<tls::TlsEngine> tls;
  std::vector<std::uint8_t> outbox;
  Peer(bool server, bool tls12) : tls(std::make_unique<tls::TlsEngine>(peerContext(server, tls12), server, &obs)) {}
  void take(std::vector<std::uint8_t>& from_session) {
    if (!from_session.empty()) tls->feed(from_session);
    from_session.clear();
    if (!tls->handshakeDone()) (void)tls->handshake();
    std::vector<std::uint8_t> plain;
    if (tls->handshakeDone()) (void)tls->read(plain);
    (void)tls->takeOut(outbox, SIZE_MAX);
  }
  // Application-level moves of an established peer: data, close_notify, KeyUpdate, renegotiation.
  void act(std::uint8_t what, const std::vector<std::uint8_t>& data) {
    if (!tls->handshakeDone()) return;
    switch (what % 4) {
      case 0: (void)tls->write(data); break;
      case 1: tls->shutdown(); break;
      case 2:
        if (SSL_version(tls->ssl()) == TLS1_3_VERSION) SSL_key_update(tls->ssl(), SSL_KEY_UPDATE_REQUESTED);
        (void)tls->write(data);
        break;
      default:
        if (SSL_version(tls->ssl()) <= TLS1_2_VERSION && SSL_renegotiate(tls->ssl()) == 1)
          (void)SSL_do_handshake(tls->ssl());
        break;
    }
    (void)tls->takeOut(outbox, SIZE_MAX);
  }
};

enum Op : std::uint8_t {
  kClientBytes,    // fuzzer bytes read on the client leg
  kUpstreamBytes,  // fuzzer bytes read on the upstream leg
  kClientPeer,     // the real client's pending output (a piece of it, maybe one byte flipped)
  kServerPeer,     // the real server's
  kWritten,        // the write out on a leg completes
  kConnected,
  kConnectFailed,
  kClosed,  // FIN, RST or a read error on a leg with a read out
  kWriteFailed,
  kTimer,    // the armed timer fires
  kAdvance,  // time passes without the timer firing
  kStop,
  kClientAct,  // the real client sends data, close_notify, a KeyUpdate or renegotiates
  kServerAct,
  kOpCount
};

struct Driver {
  FuzzedDataProvider& fdp;
  session::ProxySession& s;
  bool reading[3] = {false, false, false};
  bool writing[3] = {false, false, false};
  bool dead[3] = {false, false, false};  // aborted: the driver drops what was out on it
  std::size_t in_flight[3] = {0, 0, 0};
  std::vector<std::uint8_t> sent[3];  // written by the session, not yet given to the real peer
  bool connecting = false, connected = false, timer = false, finished = false, stopped = false;
  session::SteadyClock::time_point timer_at{};

  void feed(session::Input input) {
    for (const auto& a : s.handle(std::move(input))) {
      if (const auto* r = std::get_if<act::Read>(&a)) {
        if (reading[int(r->leg)]) std::abort();  // two reads out on one leg
        reading[int(r->leg)] = true;
      } else if (const auto* w = std::get_if<act::Send>(&a)) {
        if (writing[int(w->leg)]) std::abort();  // two writes out on one leg
        writing[int(w->leg)] = true;
        in_flight[int(w->leg)] = w->bytes.size();
        sent[int(w->leg)].insert(sent[int(w->leg)].end(), w->bytes.begin(), w->bytes.end());
      } else if (std::holds_alternative<act::Connect>(a)) {
        connecting = true;
      } else if (const auto* t = std::get_if<act::ArmTimer>(&a)) {
        timer = true;
        timer_at = t->at;
      } else if (std::holds_alternative<act::Finish>(a)) {
        finished = true;
      } else if (const auto* ab = std::get_if<act::Abort>(&a)) {
        reading[int(ab->leg)] = writing[int(ab->leg)] = false;
        dead[int(ab->leg)] = true;
      }
    }
  }
  Leg pickLeg() { return fdp.ConsumeBool() ? Leg::Upstream : Leg::Client; }
  bool canRead(Leg l) const { return reading[int(l)] && !dead[int(l)] && (l == Leg::Client || connected); }
  void bytes(Leg l, std::span<const std::uint8_t> b) {
    if (b.empty() || !canRead(l)) return;
    reading[int(l)] = false;
    feed(in::Bytes{l, b});
  }
  // A piece of a real peer's output, cut where the fuzzer says, maybe with one byte flipped.
  void fromPeer(Peer& p, Leg l, std::vector<std::uint8_t>& to_peer) {
    p.take(to_peer);
    const auto cut = fdp.ConsumeIntegral<std::uint16_t>();
    const auto flip = fdp.ConsumeIntegral<std::uint8_t>();
    if (p.outbox.empty() || !canRead(l)) return;
    const std::size_t n = cut == 0 ? p.outbox.size() : 1 + cut % p.outbox.size();
    std::vector<std::uint8_t> piece(p.outbox.begin(), p.outbox.begin() + static_cast<std::ptrdiff_t>(n));
    p.outbox.erase(p.outbox.begin(), p.outbox.begin() + static_cast<std::ptrdiff_t>(n));
    if (flip != 0) piece[fdp.ConsumeIntegral<std::uint16_t>() % piece.size()] ^= flip;
    bytes(l, piece);
  }
  void run(Peer& client, Peer& server) {
    for (int i = 0; i < 256 && !finished && fdp.remaining_bytes() > 0; ++i) step(client, server);
  }
  void step(Peer& client, Peer& server) {
    switch (fdp.ConsumeIntegral<std::uint8_t>() % kOpCount) {
      case kClientBytes:
      case kUpstreamBytes: {
        const Leg l = fdp.ConsumeBool() ? Leg::Upstream : Leg::Client;
        const auto b = fdp.ConsumeBytes<std::uint8_t>(fdp.ConsumeIntegralInRange<std::uint16_t>(0, 16384 + 64));
        bytes(l, b);
        break;
      }
      case kClientPeer: fromPeer(client, Leg::Client, sent[int(Leg::Client)]); break;
      case kServerPeer: fromPeer(server, Leg::Upstream, sent[int(Leg::Upstream)]); break;
      case kWritten: {
        const Leg l = pickLeg();
        if (!writing[int(l)] || dead[int(l)]) break;
        writing[int(l)] = false;
        feed(in::Written{l, in_flight[int(l)]});
        break;
      }
      case kConnected:
      case kConnectFailed: {
        const bool ok = fdp.ConsumeBool();
        if (!connecting) break;
        connecting = false;
        connected = ok;
        if (ok) feed(in::Connected{"127.0.0.1:4433", "127.0.0.1:40000", 0.2});
        else feed(in::ConnectFailed{fdp.ConsumeBool() ? 504 : 502, "Connection refused"});
        break;
      }
      case kClosed: {
        const Leg l = pickLeg();
        const auto how = static_cast<in::Closed::How>(fdp.ConsumeIntegral<std::uint8_t>() % 3);
        const bool peer_fin_first = fdp.ConsumeBool();
        if (!reading[int(l)] || (l == Leg::Upstream && !connected)) break;
        reading[int(l)] = false;
        feed(in::Closed{l, how, how == in::Closed::How::Fin ? "" : "Connection reset by peer", peer_fin_first});
        break;
      }
      case kWriteFailed: {
        const Leg l = pickLeg();
        const bool reset = fdp.ConsumeBool();
        if (!writing[int(l)]) break;
        writing[int(l)] = false;
        feed(in::WriteFailed{l, reset, reset ? "Broken pipe" : "Input/output error"});
        break;
      }
      case kTimer:
        if (!timer) break;
        timer = false;
        if (timer_at > g_now) g_now = timer_at;
        feed(in::TimerFired{});
        break;
      case kAdvance: g_now += std::chrono::milliseconds(fdp.ConsumeIntegral<std::uint16_t>()) * 8; break;
      case kStop:
        if (stopped) break;
        stopped = true;
        feed(in::Stop{"shutting down"});
        break;
      default: {
        Peer& p = fdp.ConsumeBool() ? server : client;
        const auto what = fdp.ConsumeIntegral<std::uint8_t>();
        p.act(what, fdp.ConsumeBytes<std::uint8_t>(fdp.ConsumeIntegralInRange<std::uint16_t>(0, 2048)));
        break;
      }
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  installRandom();
  g_now = session::SteadyClock::time_point{std::chrono::hours(1000)};
  FuzzedDataProvider fdp(data, size);
  const auto setup = fdp.ConsumeIntegral<std::uint8_t>();
  World& w = world(setup & 7);
  {
    Peer client(false, (setup & 8) != 0);
    Peer server(true, (setup & 16) != 0);
    if ((setup & 32) == 0) SSL_set_tlsext_host_name(client.tls->ssl(), "localhost");
    session::ProxySession s(w.deps, *w.front, 1);
    Driver d{fdp, s};
    d.feed(in::Start{"127.0.0.1:50000", "127.0.0.1:8443"});
    d.run(client, server);
    // The events as the sinks would write them: JSON Lines and the three text shapes.
    // FUZZ_SESSION_DEBUG=1: the text trace on stderr, to see how far a seed gets.
    static const bool debug = std::getenv("FUZZ_SESSION_DEBUG") != nullptr;
    std::string text;
    for (const auto& e : s.events()) {
      (void)trace::toJson(e);
      for (auto f : {trace::TextFormat::Default, trace::TextFormat::Jsse, trace::TextFormat::Openssl})
        trace::appendText(e, f, text);
      if (debug) std::fputs(trace::renderText(e).c_str(), stderr);
    }
  }
  return 0;
}
