// TlsEngine against itself in memory: the engine's own BIO must carry a whole handshake and bulk
// data both ways, hand its output out whole or in pieces, and hold no buffer once idle.
#include <doctest/doctest.h>
#include <openssl/dherr.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <numeric>

#include "pki/ca.h"
#include "tls/buffer_pool.h"
#include "tls/engine.h"

using namespace tlstrace;
using tls::TlsEngine;

namespace {

struct NoObserver : TlsEngine::Observer {
  int messages = 0;
  void onTlsMessage(bool, int, std::span<const std::uint8_t>) override { ++messages; }
  void onRecordHeader(bool, std::span<const std::uint8_t>) override {}
  void onKeylog(std::string_view) override {}
};

struct Pair {
  pki::CertAuthority id = pki::createCa("engine test");
  tls::SslCtxPtr server_ctx{SSL_CTX_new(TLS_server_method())};
  tls::SslCtxPtr client_ctx{SSL_CTX_new(TLS_client_method())};
  NoObserver server_obs, client_obs;
  std::unique_ptr<TlsEngine> server, client;

  Pair() {
    REQUIRE(SSL_CTX_use_certificate(server_ctx.get(), id.cert.get()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(server_ctx.get(), id.key.get()) == 1);
    TlsEngine::prepareContext(server_ctx.get());
    TlsEngine::prepareContext(client_ctx.get());
    server = std::make_unique<TlsEngine>(server_ctx.get(), true, &server_obs);
    client = std::make_unique<TlsEngine>(client_ctx.get(), false, &client_obs);
  }

  // Moves what `from` produced into `to`, `chunk` bytes at a time (partial takes included).
  static std::size_t move(TlsEngine& from, TlsEngine& to, std::size_t chunk) {
    std::size_t moved = 0;
    std::vector<std::uint8_t> wire;
    while (from.pendingOut() > 0) {
      wire.clear();
      moved += from.takeOut(wire, chunk);
      to.feed(wire);
    }
    return moved;
  }

  void handshake(std::size_t chunk) {
    for (int round = 0; round < 10; ++round) {
      const auto c = client->handshake();
      move(*client, *server, chunk);
      const auto s = server->handshake();
      move(*server, *client, chunk);
      if (c == TlsEngine::Status::Ok && s == TlsEngine::Status::Ok) return;
      REQUIRE(c != TlsEngine::Status::Error);
      REQUIRE(s != TlsEngine::Status::Error);
    }
    FAIL("handshake did not finish in 10 rounds");
  }
};

}  // namespace

TEST_CASE("a handshake and 200 KiB each way through the engine's BIO, whole and in pieces") {
  for (std::size_t chunk : {SIZE_MAX, std::size_t{7}, std::size_t{3000}}) {
    CAPTURE(chunk);
    Pair p;
    p.handshake(chunk);
    CHECK(p.client->handshakeDone());
    CHECK(p.server->handshakeDone());
    CHECK(p.client_obs.messages > 4);
    std::vector<std::uint8_t> data(200 * 1024);
    std::iota(data.begin(), data.end(), std::uint8_t{1});
    for (auto [from, to] : {std::pair{p.client.get(), p.server.get()}, std::pair{p.server.get(), p.client.get()}}) {
      REQUIRE(from->write(data) == TlsEngine::Status::Ok);
      CHECK(from->pendingOut() > data.size());  // ciphertext: records carry headers and tags
      CHECK(Pair::move(*from, *to, chunk) > data.size());
      std::vector<std::uint8_t> got;
      CHECK(to->read(got) == TlsEngine::Status::WantIo);
      CHECK(got == data);
    }
    // close_notify arrives as Closed, after any data before it.
    p.client->shutdown();
    Pair::move(*p.client, *p.server, chunk);
    std::vector<std::uint8_t> rest;
    CHECK(p.server->read(rest) == TlsEngine::Status::Closed);
    CHECK(rest.empty());
    CHECK(p.server->sawCloseNotify());
  }
}

TEST_CASE("an empty input is 'retry', not end of stream; compact keeps what is still buffered") {
  Pair p;
  CHECK(p.server->handshake() == TlsEngine::Status::WantIo);  // nothing fed yet
  CHECK(p.client->handshake() == TlsEngine::Status::WantIo);  // ClientHello out, waiting
  const std::size_t hello = p.client->pendingOut();
  CHECK(hello > 100);
  p.client->compact();  // output not taken: must stay
  CHECK(p.client->pendingOut() == hello);
  p.handshake(SIZE_MAX);
  const std::vector<std::uint8_t> msg{'h', 'i'};
  REQUIRE(p.client->write(msg) == TlsEngine::Status::Ok);
  p.client->compact();
  CHECK(p.client->pendingOut() > 0);
  Pair::move(*p.client, *p.server, SIZE_MAX);
  std::vector<std::uint8_t> got;
  CHECK(p.server->read(got) == TlsEngine::Status::WantIo);
  CHECK(got == msg);
  p.server->compact();
  p.client->compact();
  CHECK(p.server->pendingOut() == 0);
  CHECK(p.client->pendingOut() == 0);
}

TEST_CASE("output goes whole into an empty buffer; partial takes keep the buffers bounded") {
  // A relayed bulk transfer: 64 KiB of plaintext per burst. Taken into an empty buffer, the
  // records move whole (a swap, no copy). Appended to bytes already queued, at most `cap` move and
  // a few bytes of each burst wait for the next (the case that once grew the output buffer forever).
  for (bool queued : {false, true}) {
    CAPTURE(queued);
    constexpr std::size_t cap = 64 * 1024;
    Pair p;
    p.handshake(SIZE_MAX);
    const std::vector<std::uint8_t> chunk(64 * 1024, 0x5a);
    std::size_t made = 0, moved = 0, most_held = 0, whole = 0;
    for (int burst = 0; burst < 200; ++burst) {
      const std::size_t waiting = p.server->pendingOut();
      REQUIRE(p.server->write(chunk) == TlsEngine::Status::Ok);
      made += p.server->pendingOut() - waiting;
      std::vector<std::uint8_t> wire;
      if (queued) wire.push_back(0);  // stands for queued bytes; not fed
      const std::size_t before = p.server->pendingOut();
      const std::size_t n = p.server->takeOut(wire, cap);
      CHECK(n == wire.size() - (queued ? 1 : 0));
      if (n == before) ++whole;
      if (queued) CHECK(n <= cap);
      moved += n;
      p.client->feed(std::span(wire).subspan(queued ? 1 : 0));
      std::vector<std::uint8_t> plain;
      CHECK(p.client->read(plain) == TlsEngine::Status::WantIo);
      most_held = std::max({most_held, p.server->heldBytes(), p.client->heldBytes()});
    }
    CHECK(moved + p.server->pendingOut() == made);
    CHECK(most_held < 512 * 1024);
    if (!queued) CHECK(whole == 200);        // every burst whole, nothing left behind
    else CHECK(p.server->pendingOut() > 0);  // the tail of the last burst waits
  }
}

TEST_CASE("lent ciphertext is read in place, and what is left unread outlives the lender's buffer") {
  // As the relay does it: each socket read lands in one scratch buffer that the next read
  // overwrites; the engine must have copied any partial record before that.
  for (std::size_t piece : {std::size_t{1000}, std::size_t{16 * 1024 + 29}, std::size_t{70 * 1024}}) {
    CAPTURE(piece);
    Pair p;
    p.handshake(SIZE_MAX);
    std::vector<std::uint8_t> data(150 * 1024);
    std::iota(data.begin(), data.end(), std::uint8_t{7});
    REQUIRE(p.server->write(data) == TlsEngine::Status::Ok);
    std::vector<std::uint8_t> wire;
    p.server->takeOut(wire, SIZE_MAX);
    std::vector<std::uint8_t> scratch(piece), got;
    std::size_t stops = 0;
    for (std::size_t off = 0; off < wire.size(); off += piece) {
      const std::size_t n = std::min(piece, wire.size() - off);
      std::copy_n(wire.begin() + static_cast<std::ptrdiff_t>(off), n, scratch.begin());
      p.client->lend(std::span(scratch.data(), n));
      // Stop after the first record of each lend: the rest must wait in the engine, readable later.
      bool first = true;
      const auto st = p.client->readEach([&](std::span<const std::uint8_t> plain) {
        got.insert(got.end(), plain.begin(), plain.end());
        if (!first) return true;
        first = false;
        ++stops;
        return false;
      });
      CHECK(st == TlsEngine::Status::WantIo);
      p.client->keepRest();
      std::fill(scratch.begin(), scratch.end(), std::uint8_t{0xee});  // the next read's bytes
    }
    const std::size_t before = got.size();
    CHECK(p.client->read(got) == TlsEngine::Status::WantIo);  // what the stops left behind
    CHECK(got == data);
    CHECK(stops > 0);
    if (piece > 2 * 16 * 1024) CHECK(got.size() > before);  // several records per lend: some waited
  }
}

TEST_CASE("the buffer pool hands back storage, and keeps neither huge buffers nor unlimited ones") {
  tls::ByteBuffer b;
  b.reserve(4096);
  const auto* storage = b.data();
  tls::returnBuffer(b);
  CHECK(b.capacity() == 0);
  tls::ByteBuffer again = tls::borrowBuffer();
  CHECK(again.data() == storage);
  CHECK(again.empty());
  CHECK(again.capacity() >= 4096);
  tls::ByteBuffer huge;
  huge.reserve(1 << 20);
  tls::returnBuffer(huge);
  CHECK(huge.capacity() == 0);
  CHECK(tls::borrowBuffer().capacity() < (1u << 20));
  std::vector<tls::ByteBuffer> many(100);
  for (auto& m : many) {
    m.reserve(64);
    tls::returnBuffer(m);
  }
  int pooled = 0;
  while (tls::borrowBuffer().capacity() > 0) ++pooled;
  CHECK(pooled == 64);
}

TEST_CASE("the reason a diagnosis reads is the SSL library's, even when another library's error comes first") {
  // What OpenSSL 3 queues for a ServerKeyExchange with g = p-1: the DH check's error, then SSL's.
  ERR_clear_error();
  ERR_raise(ERR_LIB_DH, DH_R_NOT_SUITABLE_GENERATOR);
  ERR_raise(ERR_LIB_SSL, SSL_R_BAD_DH_VALUE);
  int reason = -1;
  const std::string text = tls::errorQueueText(reason);
  CHECK(reason == SSL_R_BAD_DH_VALUE);
  CHECK(text.find("not suitable generator") != std::string::npos);
  CHECK(text.find("bad dh value") != std::string::npos);
  // No SSL error: the first one's reason; an empty queue: 0.
  ERR_raise(ERR_LIB_DH, DH_R_NOT_SUITABLE_GENERATOR);
  (void)tls::errorQueueText(reason);
  CHECK(reason == DH_R_NOT_SUITABLE_GENERATOR);
  (void)tls::errorQueueText(reason);
  CHECK(reason == 0);
}
