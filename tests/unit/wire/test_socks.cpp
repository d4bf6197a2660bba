// The SOCKS5 server-side decoder (wire/socks.h). Every input and every expected answer is written
// from the message layouts of RFC 1928 (sections 3 to 6) and RFC 1929 (section 2), byte by byte,
// not from the decoder's output; the dialogues of real clients (curl, a Python client) are
// checked against the running proxy in tests/integration/test_socks.py.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "wire/socks.h"

using namespace tlstrace::wire;
using namespace tlstrace::wire::socks;

namespace {

std::vector<std::uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string b(std::initializer_list<int> v) {
  std::string out;
  for (int c : v) out.push_back(static_cast<char>(c));
  return out;
}
Dialogue decode(const std::string& s, const Credentials& req = {}) {
  const auto v = bytes(s);
  return decodeClient(Bytes(v), req);
}

// RFC 1928 section 3: VER 5, NMETHODS, METHODS.
const std::string kNoAuthGreeting = b({5, 1, 0});
const std::string kBothGreeting = b({5, 2, 0, 2});
// RFC 1928 section 4: VER 5, CMD, RSV 0, ATYP, DST.ADDR, DST.PORT (network order).
std::string request(int cmd, const std::string& atyp_and_addr, int port) {
  return b({5, cmd, 0}) + atyp_and_addr + b({port >> 8, port & 0xff});
}
const std::string kIpv4Loopback = b({1, 127, 0, 0, 1});
std::string domain(const std::string& name) { return b({3, static_cast<int>(name.size())}) + name; }
// RFC 1929 section 2: VER 1, ULEN, UNAME, PLEN, PASSWD.
std::string userPass(const std::string& u, const std::string& p) {
  return b({1, static_cast<int>(u.size())}) + u + b({static_cast<int>(p.size())}) + p;
}
// RFC 1928 section 6 with BND.ADDR 0.0.0.0:0.
std::string rep(int code) { return b({5, code, 0, 1, 0, 0, 0, 0, 0, 0}); }

}  // namespace

TEST_CASE("socks5: CONNECT by address type (RFC 1928 section 5)") {
  struct Case {
    const char* name;
    std::string addr;
    int port;
    std::string host;
  };
  std::string v6 = b({4});
  for (int i = 0; i < 15; ++i) v6.push_back(0);
  v6.push_back(1);
  const std::string doc = b({4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  const std::vector<Case> cases = {
      {"IPv4", kIpv4Loopback, 443, "127.0.0.1"},
      {"IPv4 high port", b({1, 192, 0, 2, 7}), 65535, "192.0.2.7"},
      {"IPv6 loopback", v6, 8443, "::1"},
      {"IPv6 documentation", doc, 1, "2001:db8::1"},
      {"domain", domain("localhost"), 80, "localhost"},
      {"domain with labels", domain("a-b.example.com"), 443, "a-b.example.com"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const std::string req = request(1, c.addr, c.port);
    const Dialogue d = decode(kNoAuthGreeting + req);
    REQUIRE(d.kind == Dialogue::Kind::Connect);
    CHECK(d.host == c.host);
    CHECK(d.port == c.port);
    CHECK(d.atyp == static_cast<std::uint8_t>(c.addr[0]));
    CHECK(d.interim == b({5, 0}));  // method selection: no authentication
    CHECK(d.consumed == kNoAuthGreeting.size() + req.size());
  }
}

TEST_CASE("socks5: bytes after the request are the tunnel's") {
  const std::string dialogue = kNoAuthGreeting + request(1, domain("localhost"), 443);
  const std::string hello_start = b({0x16, 3, 1, 0, 0x50});
  const Dialogue d = decode(dialogue + hello_start);
  REQUIRE(d.kind == Dialogue::Kind::Connect);
  CHECK(d.consumed == dialogue.size());
}

TEST_CASE("socks5: every prefix of a dialogue asks for more, owing only what is complete") {
  const Credentials req{"alice", "s3cret"};
  const std::string greeting = kBothGreeting, auth = userPass("alice", "s3cret");
  const std::string all = greeting + auth + request(1, domain("example.com"), 443);
  for (std::size_t n = 0; n < all.size(); ++n) {
    CAPTURE(n);
    const Dialogue d = decode(all.substr(0, n), req);
    REQUIRE(d.kind == Dialogue::Kind::NeedMore);
    std::string owed;
    if (n >= greeting.size()) owed += b({5, 2});                // username/password chosen
    if (n >= greeting.size() + auth.size()) owed += b({1, 0});  // RFC 1929 success
    CHECK(d.interim == owed);
    CHECK(d.host.empty());
  }
  const Dialogue d = decode(all, req);
  REQUIRE(d.kind == Dialogue::Kind::Connect);
  CHECK(d.interim == b({5, 2, 1, 0}));
  CHECK(d.user == "alice");
  CHECK(d.host == "example.com");
}

TEST_CASE("socks5: refusals get the protocol's own reply and a cause") {
  const Credentials none{}, alice{"alice", "s3cret"};
  struct Case {
    const char* name;
    std::string input;
    Credentials req;
    std::string interim;  // owed before the refusal
    std::string reply;
    const char* cause;
  };
  const std::vector<Case> cases = {
      // RFC 1928 section 3: X'FF' when none of the offered methods is acceptable.
      {"only username/password offered, none required", b({5, 1, 2}), none, "", b({5, 0xff}), "socks_no_method"},
      {"no methods at all", b({5, 0}), none, "", b({5, 0xff}), "socks_no_method"},
      {"only no-auth offered, password required", kNoAuthGreeting, alice, "", b({5, 0xff}), "socks_no_method"},
      // RFC 1929 section 2: a status other than 0 is failure, and the server closes.
      {"wrong password", kBothGreeting + userPass("alice", "wrong!"), alice, b({5, 2}), b({1, 1}), "socks_auth_failed"},
      {"password a prefix", kBothGreeting + userPass("alice", "s3cre"), alice, b({5, 2}), b({1, 1}),
       "socks_auth_failed"},
      {"wrong user", kBothGreeting + userPass("bob", "s3cret"), alice, b({5, 2}), b({1, 1}), "socks_auth_failed"},
      {"empty user and password", kBothGreeting + userPass("", ""), alice, b({5, 2}), b({1, 1}), "socks_auth_failed"},
      {"sub-negotiation version 5", kBothGreeting + b({5, 5}) + "alice", alice, b({5, 2}), b({1, 1}),
       "socks_auth_failed"},
      // RFC 1928 section 6: X'07' command not supported, X'08' address type not supported.
      {"BIND", kNoAuthGreeting + request(2, kIpv4Loopback, 80), none, b({5, 0}), rep(7), "socks_command"},
      {"UDP ASSOCIATE", kNoAuthGreeting + request(3, kIpv4Loopback, 80), none, b({5, 0}), rep(7), "socks_command"},
      {"command 9", kNoAuthGreeting + b({5, 9}), none, b({5, 0}), rep(7), "socks_command"},
      {"address type 2", kNoAuthGreeting + b({5, 1, 0, 2, 1, 2, 3, 4, 0, 80}), none, b({5, 0}), rep(8),
       "socks_address_type"},
      {"address type 0", kNoAuthGreeting + b({5, 1, 0, 0}), none, b({5, 0}), rep(8), "socks_address_type"},
      // General failure (X'01') for a request that is not one.
      {"request version 4", kNoAuthGreeting + b({4, 1, 0, 1}), none, b({5, 0}), rep(1), "socks_malformed"},
      {"empty domain", kNoAuthGreeting + request(1, domain(""), 80), none, b({5, 0}), rep(1), "socks_malformed"},
      {"domain with a space", kNoAuthGreeting + request(1, domain("a b"), 80), none, b({5, 0}), rep(1),
       "socks_malformed"},
      {"domain with a NUL", kNoAuthGreeting + request(1, domain(std::string("a\0b", 3)), 80), none, b({5, 0}), rep(1),
       "socks_malformed"},
      // Not SOCKS5: SOCKS4's own "request rejected" (VN 0, CD 91), else nothing to answer.
      {"SOCKS4 CONNECT", b({4, 1, 0, 80, 127, 0, 0, 1, 0}), none, "", b({0, 91, 0, 0, 0, 0, 0, 0}), "socks_version"},
      {"a TLS ClientHello", b({0x16, 3, 1, 0, 0x50}), none, "", "", "socks_version"},
      {"an HTTP CONNECT", "CONNECT localhost:443 HTTP/1.1\r\n", none, "", "", "socks_version"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const Dialogue d = decode(c.input, c.req);
    REQUIRE(d.kind == Dialogue::Kind::Error);
    CHECK(d.interim == c.interim);
    CHECK(d.error_reply == c.reply);
    CHECK(d.cause == c.cause);
    CHECK_FALSE(d.reason.empty());
  }
}

TEST_CASE("socks5: username/password accepted, request follows") {
  const Credentials alice{"alice", "s3cret"};
  const std::string req = request(1, kIpv4Loopback, 8080);
  const Dialogue d = decode(kBothGreeting + userPass("alice", "s3cret") + req, alice);
  REQUIRE(d.kind == Dialogue::Kind::Connect);
  CHECK(d.interim == b({5, 2, 1, 0}));
  CHECK(d.host == "127.0.0.1");
  CHECK(d.port == 8080);
  // A client offering only username/password (no no-auth) is served the same.
  const Dialogue only = decode(b({5, 1, 2}) + userPass("alice", "s3cret") + req, alice);
  CHECK(only.kind == Dialogue::Kind::Connect);
}

TEST_CASE("socks5: replies (RFC 1928 section 6, RFC 1929 section 2)") {
  CHECK(reply(Rep::Succeeded) == b({5, 0, 0, 1, 0, 0, 0, 0, 0, 0}));
  CHECK(reply(Rep::ConnectionRefused) == b({5, 5, 0, 1, 0, 0, 0, 0, 0, 0}));
  CHECK(authStatus(true) == b({1, 0}));
  CHECK(authStatus(false) == b({1, 1}));
  // A CONNECT's success names the proxy's own end of its connection to the target.
  CHECK(succeeded("127.0.0.1:40188") == b({5, 0, 0, 1, 127, 0, 0, 1, 0x9c, 0xfc}));
  CHECK(succeeded("[::1]:443") == b({5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0xbb}));
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "host:80", "1.2.3.4:8x", "[::1:80"})
    CHECK_MESSAGE(succeeded(bad) == reply(Rep::Succeeded), bad);
}
