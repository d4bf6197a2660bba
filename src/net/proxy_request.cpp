#include "net/proxy_request.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <sstream>

namespace tlstrace::net {

namespace http = boost::beast::http;

namespace {

ProxyRequest error(int status, std::string reason) {
  ProxyRequest r;
  r.kind = ProxyRequest::Kind::Error;
  r.status = status;
  r.reason = std::move(reason);
  return r;
}

}  // namespace

ProxyRequest parseProxyRequest(std::span<const std::uint8_t> bytes, std::size_t head_limit) {
  http::request_parser<http::empty_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(head_limit));
  parser.eager(false);
  boost::system::error_code ec;
  const std::size_t used = parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec == http::error::need_more) {
    if (bytes.size() >= head_limit)
      return error(431, "request header larger than " + std::to_string(head_limit) + " bytes");
    return {};
  }
  if (ec == http::error::header_limit)
    return error(431, "request header larger than " + std::to_string(head_limit) + " bytes");
  if (ec) return error(400, "malformed request: " + ec.message());
  if (!parser.is_header_done()) return {};

  const auto& req = parser.get();
  std::string err;
  std::string auth;
  if (auto it = req.find(http::field::proxy_authorization); it != req.end())
    auth = std::string(it->value().data(), it->value().size());
  if (req.method() == http::verb::connect) {
    auto hp = config::parseHostPort(std::string_view(req.target().data(), req.target().size()), err);
    if (!hp) return error(400, "bad CONNECT target: " + err);
    ProxyRequest r;
    r.kind = ProxyRequest::Kind::Connect;
    r.target = *hp;
    r.consumed = used;
    r.proxy_authorization = auth;
    return r;
  }
  std::string_view target(req.target().data(), req.target().size());
  if (target.starts_with('/') && req.method() == http::verb::get) {
    ProxyRequest r;  // origin-form: the client talks to the proxy itself (RFC 9112 3.2.1)
    r.kind = ProxyRequest::Kind::Local;
    r.path = std::string(target.substr(0, target.find('?')));
    r.consumed = used;
    return r;
  }
  if (!target.starts_with("http://")) {
    if (target.starts_with("https://"))
      return error(400, "use CONNECT for https:// targets (e.g. curl -x http://proxy https://...)");
    return error(400, "not a proxy request: expected CONNECT host:port or an absolute http:// URL");
  }
  target.remove_prefix(7);
  const auto slash = target.find_first_of("/?");
  std::string_view authority = target.substr(0, slash);
  std::string path = slash == std::string_view::npos ? "/" : std::string(target.substr(slash));
  if (path.front() == '?') path.insert(path.begin(), '/');
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  auto hp = config::parseHostPort(authority, err, 80);
  if (!hp) return error(400, "bad URL authority: " + err);
  if (parser.chunked() || (parser.content_length() && *parser.content_length() > 0)) {
    // Bodies are relayed as bytes after the head; nothing to do here.
  }
  // RFC 9112 3.2.1: the origin server expects origin-form; hop-by-hop proxy headers are dropped.
  http::request<http::empty_body> fwd = req;
  fwd.target(path);
  fwd.erase("Proxy-Connection");
  fwd.erase("Proxy-Authorization");
  fwd.set(http::field::connection, "close");
  if (fwd.find(http::field::host) == fwd.end()) fwd.set(http::field::host, hp->str());
  std::ostringstream os;
  os << fwd.base();
  ProxyRequest r;
  r.kind = ProxyRequest::Kind::PlainHttp;
  r.target = *hp;
  r.forward_head = os.str();
  r.consumed = used;
  r.proxy_authorization = auth;
  return r;
}

namespace {

// Compares credentials without an early exit on the first differing byte.
bool sameSecret(const std::string& a, const std::string& b) {
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) diff |= static_cast<unsigned>(a[i] ^ b[i]);
  return diff == 0;
}

// RFC 7235 section 2.1: the auth-scheme is case-insensitive ("basic", "BASIC" are "Basic"), with
// one or more spaces before the credentials; the token68 of RFC 7617 section 2 is kept as sent.
std::string canonicalBasic(std::string_view v) {
  const auto sp = v.find(' ');
  if (sp == std::string_view::npos || !boost::beast::iequals(v.substr(0, sp), "basic")) return std::string(v);
  const auto token = v.find_first_not_of(' ', sp);
  return "Basic " + std::string(token == std::string_view::npos ? std::string_view() : v.substr(token));
}

}  // namespace

session::FrontStep ExplicitFrontEnd::onClientBytes(std::span<const std::uint8_t> bytes) const {
  using K = session::FrontStep::Kind;
  session::FrontStep st;
  if (bytes.empty()) return st;  // NeedMore
  ProxyRequest req = parseProxyRequest(bytes);
  switch (req.kind) {
    case ProxyRequest::Kind::NeedMore: return st;
    case ProxyRequest::Kind::Error:
      st.kind = K::Refuse;
      st.status = req.status;
      st.reason = std::move(req.reason);
      return st;
    case ProxyRequest::Kind::Local:
      if (ca_page_.pem.empty()) {
        st.kind = K::Refuse;
        st.status = 400;
        st.reason = "not a proxy request: expected CONNECT host:port or an absolute http:// URL";
        return st;
      }
      // The CA certificate is public: no proxy credentials asked for it.
      st.kind = K::Answer;
      st.method = "GET";
      st.reason = req.path;
      st.head = caPageResponse(ca_page_, req.path);
      st.consumed = req.consumed;
      return st;
    case ProxyRequest::Kind::Connect:
    case ProxyRequest::Kind::PlainHttp: break;
  }
  if (!expected_auth_.empty() && !sameSecret(canonicalBasic(req.proxy_authorization), expected_auth_)) {
    st.kind = K::Refuse;
    st.status = 407;
    st.reason = req.proxy_authorization.empty() ? "proxy authentication required" : "wrong proxy credentials";
    st.headers = "Proxy-Authenticate: Basic realm=\"tlstrace\"\r\n";
    return st;
  }
  st.target = std::move(req.target);
  st.consumed = req.consumed;
  if (req.kind == ProxyRequest::Kind::Connect) {
    st.kind = K::Tunnel;
    st.method = "CONNECT";
    st.reply = "HTTP/1.1 200 Connection Established\r\n\r\n";
  } else {
    st.kind = K::Forward;
    st.method = "GET/absolute-form";
    st.head = std::move(req.forward_head);
  }
  return st;
}

namespace {

std::string response(int status, const char* reason, const std::string& type, const std::string& body,
                     const std::string& extra = {}) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nCache-Control: no-store\r\n" + extra +
         "Connection: close\r\n\r\n" + body;
}

std::string html(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

}  // namespace

std::string caPageResponse(const CaPage& page, const std::string& path) {
  if (path == "/ca.pem")
    return response(200, "OK", "application/x-pem-file", page.pem,
                    "Content-Disposition: attachment; filename=\"tlstrace-ca.pem\"\r\n");
  // application/x-x509-ca-cert: the type browsers and Android offer to install.
  if (path == "/ca.der" || path == "/ca.crt")
    return response(200, "OK", "application/x-x509-ca-cert", page.der,
                    "Content-Disposition: attachment; filename=\"tlstrace-ca.der\"\r\n");
  if (path != "/" && path != "/index.html")
    return response(404, "Not Found", "text/plain; charset=utf-8", "not found: try /, /ca.pem or /ca.der\n");
  const std::string body =
      "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>tlstrace CA</title></head><body>\n"
      "<h1>tlstrace interception CA</h1>\n<p>Clients must trust this certificate to talk TLS through this "
      "proxy. Install it only where you mean to be traced.</p>\n<ul>\n"
      "<li><a href=\"/ca.pem\">ca.pem</a> (PEM: curl, OpenSSL, Python, Node.js, Java keytool)</li>\n"
      "<li><a href=\"/ca.der\">ca.der</a> (DER: Windows, Android, macOS, browsers)</li>\n</ul>\n"
      "<p>Subject: <code>" +
      html(page.subject) + "</code><br>SHA-256: <code>" + html(page.sha256) +
      "</code></p>\n<p>The exact commands for each trust store: <code>tlstrace ca install --print "
      "system|java|nss|python|node</code></p>\n</body></html>\n";
  return response(200, "OK", "text/html; charset=utf-8", body);
}

}  // namespace tlstrace::net
