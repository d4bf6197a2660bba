// The STARTTLS preamble machine, table-driven on real bytes: the client side captured from
// `openssl s_client -starttls PROTO` (OpenSSL 3.0) and `psql` (PostgreSQL 15), the server side
// from the protocol-faithful test servers of tests/integration/starttls_servers.py (whose answers
// are the RFC examples: RFC 3207 4, RFC 9051 6.2.1, RFC 2595 4, RFC 4511 4.14.2).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "../test_util.h"
#include "session/starttls.h"

using tlstrace::session::parseStartTlsProto;
using tlstrace::session::StartTlsMachine;
using tlstrace::session::StartTlsProto;
using tlstrace::session::StartTlsResult;
using tlstrace::testing::fromHex;
using K = StartTlsResult::Kind;

namespace {

struct Msg {
  bool client;
  std::string hex;
};

struct Case {
  const char* name;
  StartTlsProto proto;
  std::vector<Msg> msgs;
  std::vector<std::string> steps;  // "c:name" / "s:name", in order
  K last;                          // the kind of the last feed
  bool refused = false;
};

std::string hexOf(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string h;
  for (unsigned char c : s) (h += d[c >> 4]) += d[c & 15];
  return h;
}
Msg C(const std::string& text) { return {true, hexOf(text)}; }
Msg S(const std::string& text) { return {false, hexOf(text)}; }
Msg Ch(const char* hex) { return {true, hex}; }
Msg Sh(const char* hex) { return {false, hex}; }

// The start of s_client's ClientHello, as it sent it in plaintext after a refusal it ignored.
const char* kHelloStart = "160301013601000132030398";
const char* kPgSslRequest = "0000000804d2162f";  // s_client and psql alike
const char* kPsqlStartup =
    "00000031000300007573657200750064617461626173650064006170706c69636174696f6e5f6e616d65007073716c0000";
const char* kMysqlGreeting =
    "580000000a382e302e33362d746c7374726163652d74657374002a000000616263646566676800018aff020008001500000000000000"
    "000000696a6b6c6d6e6f7071727374006d7973716c5f6e61746976655f70617373776f726400";
const char* kMysqlGreetingNoSsl =  // the same greeting without CLIENT_SSL (0x8a -> 0x82)
    "580000000a382e302e33362d746c7374726163652d74657374002a0000006162636465666768000182ff020008001500000000000000"
    "000000696a6b6c6d6e6f7071727374006d7973716c5f6e61746976655f70617373776f726400";
const char* kMysqlSslRequest = "2000000185ae7f0000000001210000000000000000000000000000000000000000000000";
const char* kLdapStartTls = "301d02010177188016312e332e362e312e342e312e313436362e3230303337";
const char* kLdapSuccess = "3024020101781f0a0100040004008a16312e332e362e312e342e312e313436362e3230303337";
const char* kLdapRefused =
    "303902010178340a013504000415544c53206e6f7420617661696c61626c65206e6f778a16312e332e362e312e342e312e313436362e323030"
    "3337";

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"smtp accepted",
       StartTlsProto::Smtp,
       {S("220 localhost ESMTP tlstrace-test\r\n"), C("EHLO mail.example.com\r\n"),
        S("250-localhost greets you\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n"), C("STARTTLS\r\n"),
        S("220 2.0.0 Ready to start TLS\r\n")},
       {"s:banner", "c:ehlo", "s:capabilities", "c:starttls", "s:ready"},
       K::Upgrade},
      {"smtp refused (454), then s_client's ClientHello in the clear",
       StartTlsProto::Smtp,
       {S("220 localhost ESMTP tlstrace-test\r\n"), C("EHLO mail.example.com\r\n"), S("250 STARTTLS\r\n"),
        C("STARTTLS\r\n"), S("454 4.7.0 TLS not available due to temporary reason\r\n"), Ch(kHelloStart), Ch("0a")},
       {"s:banner", "c:ehlo", "s:capabilities", "c:starttls", "s:refused"},
       K::Plain,
       true},
      {"smtp: MAIL before STARTTLS is plaintext",
       StartTlsProto::Smtp,
       {S("220 hi\r\n"), C("EHLO x\r\n"), S("250 hi\r\n"), C("MAIL FROM:<a@b>\r\n")},
       {"s:banner", "c:ehlo", "s:capabilities"},
       K::Plain},
      {"imap accepted",
       StartTlsProto::Imap,
       {S("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] tlstrace-test ready\r\n"), C(". CAPABILITY\r\n"),
        S("* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n. OK CAPABILITY completed\r\n"), C(". STARTTLS\r\n"),
        S(". OK Begin TLS negotiation now\r\n")},
       {"s:banner", "c:command", "s:capabilities", "s:reply", "c:starttls", "s:ready"},
       K::Upgrade},
      {"imap refused (NO)",
       StartTlsProto::Imap,
       {S("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"), C("a1 STARTTLS\r\n"),
        S("a1 NO [UNAVAILABLE] TLS not available now\r\n"), C("a2 LOGOUT\r\n")},
       {"s:banner", "c:starttls", "s:refused", "c:command"},
       K::Continue,
       true},
      {"imap: LOGIN before STARTTLS is plaintext",
       StartTlsProto::Imap,
       {S("* OK ready\r\n"), C("a LOGIN user secret\r\n")},
       {"s:banner"},
       K::Plain},
      {"pop3 accepted",
       StartTlsProto::Pop3,
       {S("+OK tlstrace-test POP3 server ready\r\n"), C("STLS\r\n"), S("+OK Begin TLS negotiation\r\n")},
       {"s:banner", "c:starttls", "s:ready"},
       K::Upgrade},
      {"pop3 CAPA, then refused (-ERR)",
       StartTlsProto::Pop3,
       {S("+OK ready\r\n"), C("CAPA\r\n"), S("+OK Capability list follows\r\nSTLS\r\nTOP\r\n.\r\n"), C("STLS\r\n"),
        S("-ERR TLS not available now\r\n")},
       {"s:banner", "c:command", "s:capabilities", "c:starttls", "s:refused"},
       K::Continue,
       true},
      {"postgres accepted",
       StartTlsProto::Postgres,
       {Ch(kPgSslRequest), Sh("53")},
       {"c:ssl_request", "s:ready"},
       K::Upgrade},
      {"postgres refused ('N'), psql goes on in plaintext (sslmode=prefer)",
       StartTlsProto::Postgres,
       {Ch(kPgSslRequest), Sh("4e"), Ch(kPsqlStartup)},
       {"c:ssl_request", "s:refused"},
       K::Plain,
       true},
      {"postgres 17 direct TLS: the first bytes are a ClientHello",
       StartTlsProto::Postgres,
       {Ch(kHelloStart)},
       {},
       K::DirectTls},
      {"mysql accepted: the client's SSLRequest, then its handshake",
       StartTlsProto::Mysql,
       {Sh(kMysqlGreeting), Ch(kMysqlSslRequest)},
       {"s:greeting", "c:ssl_request"},
       K::Upgrade},
      {"mysql: no CLIENT_SSL offered",
       StartTlsProto::Mysql,
       {Sh(kMysqlGreetingNoSsl)},
       {"s:greeting"},
       K::Continue,
       true},
      {"ldap accepted",
       StartTlsProto::Ldap,
       {Ch(kLdapStartTls), Sh(kLdapSuccess)},
       {"c:starttls", "s:ready"},
       K::Upgrade},
      {"ldap refused (unwillingToPerform)",
       StartTlsProto::Ldap,
       {Ch(kLdapStartTls), Sh(kLdapRefused)},
       {"c:starttls", "s:refused"},
       K::Continue,
       true},
      {"ldap: a bind first is plaintext",
       StartTlsProto::Ldap,
       {Ch("300c020101600702010304008000")},  // BindRequest, simple, empty
       {},
       K::Plain},
  };
  return all;
}

// Feeds each message whole, then again one byte at a time: the same steps, the same bytes out.
struct Outcome {
  std::vector<std::string> steps;
  std::vector<std::uint8_t> out[2];  // forwarded: [0] to the client, [1] to the server
  K last = K::Continue;
  bool refused = false;
};

Outcome play(const Case& c, bool bytewise) {
  StartTlsMachine m(c.proto);
  Outcome o;
  for (const auto& msg : c.msgs) {
    const auto b = fromHex(msg.hex);
    std::vector<std::span<const std::uint8_t>> parts;
    if (bytewise)
      for (std::size_t i = 0; i < b.size(); ++i) parts.emplace_back(b.data() + i, 1);
    else parts.emplace_back(b);
    for (auto p : parts) {
      if (o.last != K::Continue) break;
      StartTlsResult r = m.feed(msg.client, p);
      for (const auto& s : r.steps) o.steps.push_back(std::string(s.from_client ? "c:" : "s:") + s.step);
      auto& out = o.out[msg.client ? 1 : 0];
      out.insert(out.end(), r.forward.begin(), r.forward.end());
      out.insert(out.end(), r.rest.begin(), r.rest.end());
      auto& back = o.out[msg.client ? 0 : 1];
      back.insert(back.end(), r.back.begin(), r.back.end());
      o.refused = o.refused || r.refused.has_value();
      o.last = r.kind;
    }
  }
  return o;
}

}  // namespace

TEST_CASE("STARTTLS preambles captured from s_client and psql") {
  for (const auto& c : cases()) {
    CAPTURE(c.name);
    const Outcome whole = play(c, false);
    CHECK(whole.steps == c.steps);
    CHECK(whole.last == c.last);
    CHECK(whole.refused == c.refused);
    const Outcome bytewise = play(c, true);
    CHECK(bytewise.steps == whole.steps);
    CHECK(bytewise.last == whole.last);
    // Nothing is dropped or invented: once the preamble is over, every byte fed was passed on.
    if (c.last != K::Continue) {
      std::vector<std::uint8_t> fed[2];
      for (const auto& msg : c.msgs) {
        const auto b = fromHex(msg.hex);
        fed[msg.client ? 1 : 0].insert(fed[msg.client ? 1 : 0].end(), b.begin(), b.end());
      }
      CHECK(whole.out[1] == fed[1]);
      CHECK(whole.out[0] == fed[0]);
      if (c.last != K::DirectTls) CHECK(bytewise.out[1] == fed[1]);  // (direct: decided on the first byte)
    }
  }
}

TEST_CASE("STARTTLS step texts carry the protocol's own words") {
  StartTlsMachine m(StartTlsProto::Smtp);
  (void)m.feed(false, fromHex(hexOf("220 a\r\n")));
  (void)m.feed(true, fromHex(hexOf("STARTTLS\r\n")));
  const auto r = m.feed(false, fromHex(hexOf("454 4.7.0 TLS not available\r\n")));
  REQUIRE(r.refused);
  CHECK(*r.refused == "454 4.7.0 TLS not available");
  StartTlsMachine l(StartTlsProto::Ldap);
  (void)l.feed(true, fromHex(kLdapStartTls));
  const auto lr = l.feed(false, fromHex(kLdapRefused));
  REQUIRE(lr.refused);
  CHECK(*lr.refused == "ExtendedResponse unwillingToPerform (53), messageID 1: TLS not available now");
  StartTlsMachine y(StartTlsProto::Mysql);
  const auto g = y.feed(false, fromHex(kMysqlGreeting));
  REQUIRE(g.steps.size() == 1);
  CHECK(g.steps[0].text == "protocol 10, server 8.0.36-tlstrace-test, connection 42, CLIENT_SSL offered");
}

TEST_CASE("STARTTLS: the server's bytes after its yes are not taken for TLS") {
  StartTlsMachine m(StartTlsProto::Postgres);
  (void)m.feed(true, fromHex(kPgSslRequest));
  const auto r = m.feed(false, fromHex("53"
                                       "4500000008"));  // 'S' and an injected message (CVE-2021-23214)
  CHECK(r.kind == K::Plain);
  CHECK(r.forward.size() == 6);
}

TEST_CASE("STARTTLS: a line with no end, or too many messages, ends the preamble") {
  StartTlsMachine m(StartTlsProto::Smtp);
  const std::vector<std::uint8_t> junk(70 * 1024, 'x');
  const auto r = m.feed(false, junk);
  CHECK(r.kind == K::Plain);
  CHECK(r.forward.size() == junk.size());
  StartTlsMachine n(StartTlsProto::Smtp);
  K last = K::Continue;
  for (int i = 0; i < 100 && last == K::Continue; ++i) last = n.feed(true, fromHex(hexOf("NOOP\r\n"))).kind;
  CHECK(last == K::Plain);
}

TEST_CASE("STARTTLS protocols by name and by port") {
  using tlstrace::session::startTlsFor;
  CHECK(parseStartTlsProto("postgres") == StartTlsProto::Postgres);
  CHECK(!parseStartTlsProto("ftp"));
  CHECK(startTlsFor("auto", 587) == StartTlsProto::Smtp);
  CHECK(startTlsFor("auto", 3306) == StartTlsProto::Mysql);
  CHECK(!startTlsFor("auto", 443));
  CHECK(!startTlsFor("off", 25));
  CHECK(startTlsFor("imap", 4433) == StartTlsProto::Imap);
}
