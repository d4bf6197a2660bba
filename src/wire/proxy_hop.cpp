#include "wire/proxy_hop.h"

#include <algorithm>
#include <utility>

#include "wire/socks5_client.h"

namespace tlstrace::wire {

namespace {

bool digit(std::uint8_t c) { return c >= '0' && c <= '9'; }

// Reads through the next CRLF (RFC 9112 2.2 allows a bare LF too); false when there is none yet.
bool readLine(ByteReader& rd, std::string& line) {
  const Bytes rest = rd.rest();
  const auto lf = std::find(rest.begin(), rest.end(), std::uint8_t{'\n'});
  if (lf == rest.end()) return false;
  const auto n = static_cast<std::size_t>(lf - rest.begin());
  Bytes b;
  if (!rd.readBytes(n + 1, b)) return false;
  line.assign(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

}  // namespace

std::string httpConnectRequest(std::string_view host, std::uint16_t port, std::string_view authorization) {
  const bool v6 = host.find(':') != std::string_view::npos;
  const std::string authority = (v6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" + std::to_string(port);
  std::string r = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n";
  if (!authorization.empty()) r += "Proxy-Authorization: " + std::string(authorization) + "\r\n";
  return r + "\r\n";
}

HttpConnectReply parseHttpConnectReply(Bytes in) {
  HttpConnectReply r;
  ByteReader rd(in.first(std::min(in.size(), kMaxConnectReplyHead)));
  std::string line;
  if (!readLine(rd, line)) {
    if (in.size() >= kMaxConnectReplyHead || (in.size() >= 5 && !std::equal(in.begin(), in.begin() + 5, "HTTP/"))) {
      r.kind = HttpConnectReply::Kind::Malformed;
      r.error = in.size() >= kMaxConnectReplyHead ? "reply head longer than 16 KiB" : "not an HTTP reply";
    }
    return r;
  }
  // RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
  const auto bad = [&r](const char* why) {
    r.kind = HttpConnectReply::Kind::Malformed;
    r.error = why;
    return r;
  };
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || line[8] != ' ' || !digit(line[9]) || !digit(line[10]) ||
      !digit(line[11]) || (line.size() > 12 && line[12] != ' '))
    return bad("not an HTTP/1.x status line");
  r.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  r.reason = line.size() > 13 ? line.substr(13) : std::string();
  // The header fields up to the empty line; none of them matters for the tunnel.
  while (readLine(rd, line))
    if (line.empty()) {
      r.kind = HttpConnectReply::Kind::Done;
      r.length = rd.offset();
      return r;
    }
  if (in.size() >= kMaxConnectReplyHead) return bad("reply head longer than 16 KiB");
  r.status = 0;
  r.reason.clear();
  return r;
}

std::string ProxyHop::name() const { return spec_.protocol == Protocol::HttpConnect ? "HTTP CONNECT" : "SOCKS5"; }

ProxyHop::Step ProxyHop::start() {
  Step s;
  s.kind = Step::Kind::Send;
  if (spec_.protocol == Protocol::HttpConnect) {
    phase_ = Phase::HttpReply;
    const std::string req = httpConnectRequest(spec_.host, spec_.port, spec_.auth ? spec_.authorization : "");
    s.send.assign(req.begin(), req.end());
  } else {
    phase_ = Phase::SocksMethod;
    s.send = socks5::greeting(spec_.auth);
  }
  return s;
}

ProxyHop::Step ProxyHop::fail(std::string why, int status, std::string reply, bool target) {
  phase_ = Phase::Over;
  Step s;
  s.kind = Step::Kind::Failed;
  s.why = std::move(why);
  s.status = status;
  s.reply = std::move(reply);
  s.target_failed = target;
  return s;
}

ProxyHop::Step ProxyHop::done(std::size_t length, std::string reply, int status) {
  phase_ = Phase::Over;
  Step s;
  s.kind = Step::Kind::Done;
  s.reply = std::move(reply);
  s.status = status;
  s.rest.assign(buf_.begin() + static_cast<std::ptrdiff_t>(length), buf_.end());
  buf_.clear();
  return s;
}

ProxyHop::Step ProxyHop::onBytes(Bytes in) {
  if (phase_ == Phase::Over || phase_ == Phase::Start) return fail("upstream proxy spoke out of turn");
  buf_.insert(buf_.end(), in.begin(), in.end());
  if (phase_ != Phase::HttpReply) return socksStep();
  const HttpConnectReply r = parseHttpConnectReply(buf_);
  using K = HttpConnectReply::Kind;
  if (r.kind == K::NeedMore) return Step{};
  if (r.kind == K::Malformed) return fail("upstream proxy sent a bad reply to CONNECT: " + r.error);
  std::string reply = std::to_string(r.status) + (r.reason.empty() ? "" : " " + r.reason);
  if (r.status >= 200 && r.status < 300) return done(r.length, std::move(reply), r.status);
  // 4xx: the proxy refused the request (rules, 407 credentials); 5xx: it could not reach the target.
  const bool target = r.status >= 500;
  std::string why =
      target ? "upstream proxy could not open the tunnel: " + reply : "upstream proxy refused CONNECT: " + reply;
  if (r.status == 407)
    why += spec_.auth ? " (it refused the credentials of --upstream-proxy)"
                      : " (it wants credentials: --upstream-proxy http://USER:PASS@HOST:PORT)";
  return fail(std::move(why), r.status, std::move(reply), target);
}

ProxyHop::Step ProxyHop::socksStep() {
  using socks5::Parse;
  Step s;
  s.kind = Step::Kind::Send;
  if (phase_ == Phase::SocksMethod) {
    const auto m = socks5::parseMethodReply(buf_);
    if (m.parse == Parse::NeedMore) return Step{};
    if (m.parse == Parse::Malformed) return fail("upstream proxy sent a bad SOCKS5 method reply: " + m.error);
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(m.length));
    if (m.method == socks5::kMethodPassword && spec_.auth) {
      phase_ = Phase::SocksAuth;
      s.send = socks5::passwordRequest(spec_.user, spec_.password);
      return s;
    }
    if (m.method != socks5::kMethodNone)
      return fail(m.method == socks5::kNoAcceptable
                      ? std::string(spec_.auth ? "upstream SOCKS5 proxy accepts none of our methods"
                                               : "upstream SOCKS5 proxy wants authentication: --upstream-proxy "
                                                 "socks5://USER:PASS@HOST:PORT")
                      : "upstream SOCKS5 proxy chose method " + std::to_string(m.method) + ", which we did not offer",
                  m.method, "method " + std::to_string(m.method));
  } else if (phase_ == Phase::SocksAuth) {
    const auto a = socks5::parsePasswordReply(buf_);
    if (a.parse == Parse::NeedMore) return Step{};
    if (a.parse == Parse::Malformed) return fail("upstream proxy sent a bad SOCKS5 authentication reply: " + a.error);
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(a.length));
    if (a.status != 0)
      return fail("upstream SOCKS5 proxy refused the credentials of --upstream-proxy (RFC 1929 status " +
                      std::to_string(a.status) + ")",
                  a.status, "authentication status " + std::to_string(a.status));
  } else {
    const auto c = socks5::parseConnectReply(buf_);
    if (c.parse == Parse::NeedMore) return Step{};
    if (c.parse == Parse::Malformed) return fail("upstream proxy sent a bad SOCKS5 reply: " + c.error);
    if (c.rep == 0) return done(c.length, "succeeded, bound " + c.bound, 0);
    std::string reply = "REP " + std::to_string(c.rep) + " " + std::string(socks5::replyText(c.rep));
    const bool target = socks5::targetFailure(c.rep);
    std::string why = std::string(target ? "upstream SOCKS5 proxy could not reach the target: "
                                         : "upstream SOCKS5 proxy refused CONNECT: ") +
                      reply;
    return fail(std::move(why), c.rep, std::move(reply), target);
  }
  phase_ = Phase::SocksConnect;
  s.send = socks5::connectRequest(spec_.host, spec_.port);
  if (s.send.empty()) return fail("target name longer than SOCKS5's 255 bytes");
  return s;
}

ProxyHop::Step ProxyHop::onClosed() {
  return fail("upstream proxy closed the connection during the " + name() + " handshake");
}

}  // namespace tlstrace::wire
