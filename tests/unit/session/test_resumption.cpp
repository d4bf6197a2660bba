// Resumption on the client leg (the client resumes with the proxy), TLS 1.2 by session ID and by
// ticket, TLS 1.3 by PSK over x25519 and ffdhe2048; and received ChangeCipherSpec messages. The
// facts compared with come from the client's own OpenSSL (what it sent, what it resumed) and the
// server's (the CCS it sent on the upstream leg).
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "tests/unit/session/playbook.h"

using namespace tlstrace;
using namespace tlstrace::playbook;

namespace {

// The client's own count of the ChangeCipherSpec messages it sent.
void countCcs(int write_p, int, int content_type, const void*, size_t, SSL*, void* arg) {
  if (write_p && content_type == SSL3_RT_CHANGE_CIPHER_SPEC) ++*static_cast<int*>(arg);
}

struct SessionFree {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};
using SessionPtr = std::unique_ptr<SSL_SESSION, SessionFree>;

// One reverse-mode connection through both handshakes, with the tickets that follow taken in.
struct Conn {
  Client c;
  Server srv;
  Run r;
  int client_ccs_sent = 0;
  int server_ccs_sent = 0;
  Conn(World& w, std::uint64_t id, int max_version, const char* groups, bool tickets, SSL_SESSION* resume)
      : c(w), r(w, id) {
    SSL* ssl = c.tls->ssl();
    SSL_set_msg_callback(ssl, countCcs);
    SSL_set_msg_callback_arg(ssl, &client_ccs_sent);
    SSL_set_msg_callback(srv.tls->ssl(), countCcs);
    SSL_set_msg_callback_arg(srv.tls->ssl(), &server_ccs_sent);
    if (max_version) REQUIRE(SSL_set_max_proto_version(ssl, max_version) == 1);
    if (groups) REQUIRE(SSL_set1_groups_list(ssl, groups) == 1);
    if (!tickets) SSL_set_options(ssl, SSL_OP_NO_TICKET);
    if (resume) REQUIRE(SSL_set_session(ssl, resume) == 1);
    r.start();
    r.bytes(Leg::Client, c.hello());
    r.feed(in::Connected{"127.0.0.1:4433", "127.0.0.1:40000", 0.2});
    pump(r, c, &srv);
    REQUIRE(c.tls->handshakeDone());
    pump(r, c, &srv);
    std::vector<std::uint8_t> plain;
    (void)c.tls->read(plain);  // takes TLS 1.3 tickets in
  }
  SessionPtr session() const { return SessionPtr(SSL_get1_session(c.tls->ssl())); }
  template <class Kind>
  std::vector<const Kind*> all(trace::Leg leg) {
    std::vector<const Kind*> out;
    for (const auto& e : r.s.events())
      if (const auto* k = e.as<Kind>(); k && e.leg == leg) out.push_back(k);
    return out;
  }
  int receivedCcs(trace::Leg leg) {
    int n = 0;
    for (const auto* m : all<trace::ev::TlsMessage>(leg)) n += m->dir == "in" && m->type == "ChangeCipherSpec";
    return n;
  }
  const trace::ev::TlsEstablished& established() {
    const auto v = all<trace::ev::TlsEstablished>(trace::Leg::Client);
    REQUIRE(v.size() == 1);
    return *v.front();
  }
};

std::string field(const trace::Json& j, std::string_view k) {
  const trace::Json* v = j.find(k);
  return v ? v->dump() : "absent";
}

struct Case {
  const char* name;
  int max_version;
  const char* groups;
  bool tickets;
};

}  // namespace

TEST_CASE("TLS 1.2 resumption on the client leg: no key exchange, what was resumed, SNI, received CCS") {
  for (const Case& k :
       {Case{"session ID", TLS1_2_VERSION, nullptr, false}, Case{"ticket", TLS1_2_VERSION, nullptr, true}}) {
    CAPTURE(k.name);
    World w;
    Conn first(w, 1, k.max_version, k.groups, k.tickets, nullptr);
    const SessionPtr sess = first.session();
    REQUIRE(sess);
    // The full handshake: the client's CCS arrives and is traced as the sent ones are.
    CHECK(first.receivedCcs(trace::Leg::Client) == first.client_ccs_sent);
    CHECK(first.client_ccs_sent == 1);
    CHECK(first.all<trace::ev::TlsKeyExchange>(trace::Leg::Client).size() == 1);

    Conn again(w, 2, k.max_version, k.groups, k.tickets, sess.get());
    REQUIRE(SSL_session_reused(again.c.tls->ssl()) == 1);  // the client says it resumed
    const auto& est = again.established();
    CHECK(est.resumed);
    CHECK(est.sni.value == std::string("localhost"));  // what the client set (SSL_set_tlsext_host_name)
    CHECK_FALSE(est.group.value);                      // nothing was exchanged
    CHECK(again.all<trace::ev::TlsKeyExchange>(trace::Leg::Client).empty());
    CHECK(again.receivedCcs(trace::Leg::Client) == again.client_ccs_sent);
    CHECK(again.client_ccs_sent == 1);
    // The upstream leg's full handshake: the server's CCS, received by the proxy.
    CHECK(again.receivedCcs(trace::Leg::Upstream) == again.server_ccs_sent);
    CHECK(again.server_ccs_sent == 1);
    REQUIRE(est.resumption);
    const trace::Json& res = *est.resumption;
    const unsigned char* tick = nullptr;
    size_t tick_len = 0;
    SSL_SESSION_get0_ticket(sess.get(), &tick, &tick_len);
    if (k.tickets) {
      REQUIRE(SSL_SESSION_has_ticket(sess.get()) == 1);
      CHECK(field(res, "mechanism") == "\"ticket\"");
      CHECK(field(res, "ticket_length") == std::to_string(tick_len));
      CHECK(field(res, "lifetime") == std::to_string(SSL_SESSION_get_ticket_lifetime_hint(sess.get())));
    } else {
      REQUIRE(SSL_SESSION_has_ticket(sess.get()) == 0);
      unsigned int id_len = 0;
      (void)SSL_SESSION_get_id(sess.get(), &id_len);
      CHECK(field(res, "mechanism") == "\"session_id\"");
      CHECK(field(res, "session_id_length") == std::to_string(id_len));
    }
    // The age is OpenSSL's (whole seconds since the session's own time), not the fake clock's: at
    // most what has passed since SSL_SESSION_get_time() by the real clock (a busy machine may
    // cross a second).
    const long age = std::stol(field(res, "age"));
    CHECK(age >= 0);
    CHECK(age <= static_cast<long>(std::time(nullptr) - SSL_SESSION_get_time(sess.get())));
  }
}

TEST_CASE("TLS 1.3 PSK resumption on the client leg is named as full handshakes over the same group are") {
  for (const auto& [groups, full_kex, psk_kex] :
       {std::tuple{"X25519", "ECDHE", "PSK_ECDHE"}, std::tuple{"ffdhe2048", "DHE", "PSK_DHE"}}) {
    CAPTURE(groups);
    World w;
    Conn first(w, 1, 0, groups, true, nullptr);
    const SessionPtr sess = first.session();
    REQUIRE(sess);
    REQUIRE(SSL_SESSION_is_resumable(sess.get()) == 1);
    const auto kex1 = first.all<trace::ev::TlsKeyExchange>(trace::Leg::Client);
    REQUIRE(kex1.size() == 1);
    CHECK(field(kex1.front()->report.object, "kex") == std::string("\"") + full_kex + "\"");
    // TLS 1.3's compatibility CCS (RFC 8446 D.4), received as the client sent it.
    CHECK(first.receivedCcs(trace::Leg::Client) == first.client_ccs_sent);
    CHECK(first.client_ccs_sent == 1);
    CHECK(first.receivedCcs(trace::Leg::Upstream) == first.server_ccs_sent);
    CHECK(first.server_ccs_sent == 1);

    Conn again(w, 2, 0, groups, true, sess.get());
    REQUIRE(SSL_session_reused(again.c.tls->ssl()) == 1);
    const auto kex2 = again.all<trace::ev::TlsKeyExchange>(trace::Leg::Client);
    REQUIRE(kex2.size() == 1);
    const trace::Json& kj = kex2.front()->report.object;
    CHECK(field(kj, "kex") == std::string("\"") + psk_kex + "\"");
    // The group the client itself negotiated.
    const int nid = static_cast<int>(SSL_get_negotiated_group(again.c.tls->ssl()));
    CHECK(field(kj, "group") == std::string("\"") + (nid == NID_X25519 ? "x25519" : "ffdhe2048") + "\"");
    CHECK(field(kj, "psk_offered") == "true");
    CHECK(field(kj, "resumed") == "true");
    const auto& est = again.established();
    CHECK(est.resumed);
    CHECK(est.sni.value == std::string("localhost"));
    REQUIRE(est.resumption);
    CHECK(field(*est.resumption, "mechanism") == "\"psk\"");
    CHECK(field(*est.resumption, "lifetime") == std::to_string(SSL_SESSION_get_ticket_lifetime_hint(sess.get())));
    CHECK(field(*est.resumption, "obfuscated_ticket_age") != "absent");
    CHECK(again.receivedCcs(trace::Leg::Client) == again.client_ccs_sent);
  }
}
