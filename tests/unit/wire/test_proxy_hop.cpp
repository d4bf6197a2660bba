// The upstream-proxy hop (wire/proxy_hop.h, wire/socks5_client.h) against bytes real proxies sent:
// tinyproxy 1.11.1 (Debian 12) answering CONNECT with and without BasicAuth and refusing a port
// (ConnectPort), Dante 1.4.2 (danted) answering SOCKS5 CONNECT (success with the target's first
// bytes in the same read, a socks block rule, a refused port), and microsocks 1.0.3 with RFC 1929
// authentication. Each was read off a socket by a plain Python client; the request bytes follow
// RFC 1928 4 / RFC 1929 2 / RFC 9110 9.3.6 byte by byte.
#include <doctest/doctest.h>

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "wire/proxy_hop.h"
#include "wire/socks5_client.h"

using namespace tlstrace::wire;

namespace {

std::vector<std::uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }
std::vector<std::uint8_t> hex(std::string_view h) { return fromHex(h); }

// tinyproxy's replies, as read.
constexpr std::string_view kTinyproxy200 =
    "HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n";
constexpr std::string_view kTinyproxy403 =
    "HTTP/1.1 403 Access violation\r\nServer: tinyproxy/1.11.1\r\nContent-Type: text/html\r\nConnection: "
    "close\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n";
constexpr std::string_view kTinyproxy407 =
    "HTTP/1.0 407 Proxy Authentication Required\r\nServer: tinyproxy/1.11.1\r\nContent-Type: "
    "text/html\r\nProxy-Authenticate: Basic realm=\"Tinyproxy\"\r\nConnection: close\r\n\r\n<?xml";
constexpr std::string_view kTinyproxy500 =
    "HTTP/1.1 500 Unable to connect\r\nServer: tinyproxy/1.11.1\r\nContent-Type: text/html\r\nConnection: "
    "close\r\n\r\n<?xml";

ProxyHop::Spec httpSpec(bool auth = false) {
  ProxyHop::Spec s;
  s.protocol = ProxyHop::Protocol::HttpConnect;
  s.host = "localhost";
  s.port = 4433;
  s.auth = auth;
  s.authorization = "Basic YWxpY2U6czNjcmV0";  // base64("alice:s3cret"), RFC 7617
  return s;
}

ProxyHop::Spec socksSpec(std::string host, bool auth = false) {
  ProxyHop::Spec s;
  s.protocol = ProxyHop::Protocol::Socks5;
  s.host = std::move(host);
  s.port = 4433;
  s.auth = auth;
  s.user = "alice";
  s.password = "s3cret";
  return s;
}

}  // namespace

TEST_CASE("HTTP CONNECT request: authority-form, Host, Proxy-Authorization (RFC 9110 9.3.6)") {
  CHECK(httpConnectRequest("localhost", 4433, "") == "CONNECT localhost:4433 HTTP/1.1\r\nHost: localhost:4433\r\n\r\n");
  CHECK(httpConnectRequest("::1", 443, "Basic YWxpY2U6czNjcmV0") ==
        "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nProxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n\r\n");
}

TEST_CASE("HTTP CONNECT replies from tinyproxy") {
  const auto ok = parseHttpConnectReply(bytes(kTinyproxy200));
  CHECK(ok.kind == HttpConnectReply::Kind::Done);
  CHECK(ok.status == 200);
  CHECK(ok.reason == "Connection established");
  CHECK(ok.length == kTinyproxy200.size());
  const auto refused = parseHttpConnectReply(bytes(kTinyproxy403));
  CHECK(refused.kind == HttpConnectReply::Kind::Done);
  CHECK(refused.status == 403);
  CHECK(refused.reason == "Access violation");
  // Every prefix of a complete head is incomplete, never malformed.
  for (std::size_t n = 0; n < kTinyproxy200.size(); ++n)
    CHECK(parseHttpConnectReply(bytes(kTinyproxy200.substr(0, n))).kind == HttpConnectReply::Kind::NeedMore);
  CHECK(parseHttpConnectReply(bytes("SSH-2.0-OpenSSH_9.2\r\n")).kind == HttpConnectReply::Kind::Malformed);
  CHECK(parseHttpConnectReply(hex("05000001")).kind == HttpConnectReply::Kind::NeedMore);
  CHECK(parseHttpConnectReply(hex("050000017f00")).kind == HttpConnectReply::Kind::Malformed);
  CHECK(parseHttpConnectReply(bytes("HTTP/1.1 2x0 OK\r\n\r\n")).kind == HttpConnectReply::Kind::Malformed);
  const std::string endless = "HTTP/1.1 200 OK\r\n" + std::string(kMaxConnectReplyHead, 'a');
  CHECK(parseHttpConnectReply(bytes(endless)).kind == HttpConnectReply::Kind::Malformed);
}

TEST_CASE("HTTP hop: tunnel open, refusals name the hop") {
  ProxyHop hop(httpSpec(true));
  auto st = hop.start();
  REQUIRE(st.kind == ProxyHop::Step::Kind::Send);
  CHECK(std::string(st.send.begin(), st.send.end()) ==
        "CONNECT localhost:4433 HTTP/1.1\r\nHost: localhost:4433\r\nProxy-Authorization: Basic "
        "YWxpY2U6czNjcmV0\r\n\r\n");
  // The reply in two reads, then the server's first bytes in the same read as its end.
  const auto reply = bytes(std::string(kTinyproxy200) + "SSH-2.0-x\r\n");
  CHECK(hop.onBytes(std::span(reply).first(10)).kind == ProxyHop::Step::Kind::NeedMore);
  st = hop.onBytes(std::span(reply).subspan(10));
  REQUIRE(st.kind == ProxyHop::Step::Kind::Done);
  CHECK(st.status == 200);
  CHECK(st.reply == "200 Connection established");
  CHECK(std::string(st.rest.begin(), st.rest.end()) == "SSH-2.0-x\r\n");

  for (auto [text, status, target] : {std::tuple{kTinyproxy403, 403, false}, std::tuple{kTinyproxy407, 407, false},
                                      std::tuple{kTinyproxy500, 500, true}}) {
    ProxyHop h(httpSpec());
    (void)h.start();
    const auto f = h.onBytes(bytes(text));
    REQUIRE(f.kind == ProxyHop::Step::Kind::Failed);
    CHECK(f.status == status);
    CHECK(f.target_failed == target);
  }
  ProxyHop h(httpSpec());
  (void)h.start();
  CHECK(h.onBytes(bytes(kTinyproxy403)).why == "upstream proxy refused CONNECT: 403 Access violation");
  ProxyHop closed(httpSpec());
  (void)closed.start();
  CHECK(closed.onClosed().kind == ProxyHop::Step::Kind::Failed);
}

TEST_CASE("SOCKS5 client messages (RFC 1928 3, 4; RFC 1929 2)") {
  CHECK(socks5::greeting(false) == hex("050100"));
  CHECK(socks5::greeting(true) == hex("05020002"));
  CHECK(socks5::passwordRequest("alice", "s3cret") == hex("0105616c69636506733363726574"));
  CHECK(socks5::connectRequest("127.0.0.1", 4433) == hex("050100017f0000011151"));
  CHECK(socks5::connectRequest("localhost", 4433) == hex("05010003096c6f63616c686f73741151"));
  CHECK(socks5::connectRequest("::1", 443) == hex("050100040000000000000000000000000000000101bb"));
  CHECK(socks5::connectRequest(std::string(256, 'a'), 443).empty());
}

TEST_CASE("SOCKS5 replies from danted and microsocks") {
  // danted: success, with the target's first bytes ("hello") in the same read.
  const auto ok = hex("050000017f000001d4c768656c6c6f");
  const auto r = socks5::parseConnectReply(ok);
  REQUIRE(r.parse == socks5::Parse::Done);
  CHECK(r.rep == 0);
  CHECK(r.bound == "127.0.0.1:54471");
  CHECK(r.length == 10);
  for (std::size_t n = 0; n < 10; ++n)
    CHECK(socks5::parseConnectReply(std::span(ok).first(n)).parse == socks5::Parse::NeedMore);
  // danted: a `socks block` rule (REP 2), a refused port (REP 5).
  CHECK(socks5::parseConnectReply(hex("050200017f0000011152")).rep == 2);
  CHECK(socks5::parseConnectReply(hex("050500017f000001bc2d")).rep == 5);
  CHECK(socks5::parseConnectReply(hex("0500000900")).parse == socks5::Parse::Malformed);
  CHECK(socks5::parseConnectReply(hex("0400")).parse == socks5::Parse::Malformed);
  // microsocks: method choice, RFC 1929 success and failure, and its reply (bound 0.0.0.0:0).
  CHECK(socks5::parseMethodReply(hex("0502")).method == socks5::kMethodPassword);
  CHECK(socks5::parseMethodReply(hex("05ff")).method == socks5::kNoAcceptable);
  CHECK(socks5::parsePasswordReply(hex("0100")).status == 0);
  CHECK(socks5::parsePasswordReply(hex("0102")).status == 2);
  CHECK(socks5::parseConnectReply(hex("05000001000000000000")).bound == "0.0.0.0:0");
  CHECK(socks5::replyText(5) == "connection refused");
  CHECK(socks5::targetFailure(5));
  CHECK_FALSE(socks5::targetFailure(2));
}

TEST_CASE("SOCKS5 hop with RFC 1929 authentication (microsocks' bytes)") {
  ProxyHop hop(socksSpec("localhost", true));
  auto st = hop.start();
  CHECK(st.send == hex("05020002"));
  st = hop.onBytes(hex("0502"));
  REQUIRE(st.kind == ProxyHop::Step::Kind::Send);
  CHECK(st.send == socks5::passwordRequest("alice", "s3cret"));
  st = hop.onBytes(hex("0100"));
  REQUIRE(st.kind == ProxyHop::Step::Kind::Send);
  CHECK(st.send == hex("05010003096c6f63616c686f73741151"));
  st = hop.onBytes(hex("050000"));
  CHECK(st.kind == ProxyHop::Step::Kind::NeedMore);
  st = hop.onBytes(hex("01000000000000"));
  REQUIRE(st.kind == ProxyHop::Step::Kind::Done);
  CHECK(st.status == 0);
  CHECK(st.reply == "succeeded, bound 0.0.0.0:0");
  CHECK(st.rest.empty());

  ProxyHop wrong(socksSpec("localhost", true));
  (void)wrong.start();
  (void)wrong.onBytes(hex("0502"));
  st = wrong.onBytes(hex("0102"));
  REQUIRE(st.kind == ProxyHop::Step::Kind::Failed);
  CHECK_FALSE(st.target_failed);

  ProxyHop none(socksSpec("localhost"));  // no credentials, and microsocks wants some
  (void)none.start();
  st = none.onBytes(hex("05ff"));
  REQUIRE(st.kind == ProxyHop::Step::Kind::Failed);
  CHECK(st.why.find("wants authentication") != std::string::npos);
}

TEST_CASE("SOCKS5 hop without authentication (danted's bytes)") {
  ProxyHop hop(socksSpec("127.0.0.1"));
  CHECK(hop.start().send == hex("050100"));
  auto st = hop.onBytes(hex("0500"));
  REQUIRE(st.kind == ProxyHop::Step::Kind::Send);
  CHECK(st.send == hex("050100017f0000011151"));
  st = hop.onBytes(hex("050000017f000001d4c768656c6c6f"));
  REQUIRE(st.kind == ProxyHop::Step::Kind::Done);
  CHECK(st.reply == "succeeded, bound 127.0.0.1:54471");
  CHECK(std::string(st.rest.begin(), st.rest.end()) == "hello");

  for (auto [reply, target] : {std::pair{"050200017f0000011152", false}, std::pair{"050500017f000001bc2d", true}}) {
    ProxyHop h(socksSpec("127.0.0.1"));
    (void)h.start();
    (void)h.onBytes(hex("0500"));
    st = h.onBytes(hex(reply));
    REQUIRE(st.kind == ProxyHop::Step::Kind::Failed);
    CHECK(st.target_failed == target);
  }
  CHECK(st.reply == "REP 5 connection refused");
}
