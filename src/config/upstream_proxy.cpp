#include "config/upstream_proxy.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "config/config.h"

namespace tlstrace::config {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 3986 2.1: "%40" in a user name or password stands for '@'. nullopt on a bad escape.
std::optional<std::string> percentDecode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    unsigned v = 0;
    if (i + 2 >= s.size()) return std::nullopt;
    const auto r = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (r.ec != std::errc() || r.ptr != s.data() + i + 3) return std::nullopt;
    out.push_back(static_cast<char>(v));
    i += 2;
  }
  return out;
}

}  // namespace

std::optional<UpstreamProxy> parseUpstreamProxy(std::string_view url, std::string& error) {
  UpstreamProxy p;
  const auto sep = url.find("://");
  const std::string scheme = lower(url.substr(0, sep == std::string_view::npos ? 0 : sep));
  std::uint16_t default_port = 0;
  if (scheme == "http") {
    p.scheme = UpstreamProxy::Scheme::Http;
    default_port = 3128;
  } else if (scheme == "socks5" || scheme == "socks5h") {
    p.scheme = UpstreamProxy::Scheme::Socks5;
    default_port = 1080;
  } else {
    error = "--upstream-proxy: expected http://[USER:PASS@]HOST:PORT or socks5://[USER:PASS@]HOST:PORT";
    return std::nullopt;
  }
  std::string_view rest = url.substr(sep + 3);
  if (rest.ends_with("/")) rest.remove_suffix(1);
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    const auto colon = userinfo.find(':');
    auto user = percentDecode(userinfo.substr(0, colon));
    auto pass = percentDecode(colon == std::string_view::npos ? std::string_view{} : userinfo.substr(colon + 1));
    if (!user || !pass || user->empty()) {
      error = "--upstream-proxy " + scheme + "://...: bad user name or password (percent-encode '@', ':' and '%')";
      return std::nullopt;
    }
    // RFC 1929 2: each at most 255 bytes.
    if (p.scheme == UpstreamProxy::Scheme::Socks5 && (user->size() > 255 || pass->size() > 255)) {
      error = "--upstream-proxy: a SOCKS5 user name and password are 255 bytes at most (RFC 1929)";
      return std::nullopt;
    }
    p.user = std::move(*user);
    p.password = std::move(*pass);
    p.auth = true;
    p.authorization = "Basic " + base64(p.user + ":" + p.password);
    rest = rest.substr(at + 1);
  }
  std::string err;
  const auto hp = parseHostPort(rest, err, default_port);
  if (!hp) {
    error = "--upstream-proxy " + scheme + "://" + std::string(rest) + ": " + err;
    return std::nullopt;
  }
  p.host = hp->host;
  p.port = hp->port;
  p.url = scheme + "://" + hp->str();
  return p;
}

std::optional<std::vector<ProxyExclusion>> parseProxyExclusions(std::string_view list, std::string& error) {
  std::vector<ProxyExclusion> out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view entry = trim(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    if (entry.empty()) continue;
    ProxyExclusion x;
    if (entry == "*") {
      x.kind = ProxyExclusion::Kind::All;
      out.push_back(std::move(x));
      continue;
    }
    // An optional ":port": "[v6]:443", "v4:443", "name:443"; a bare IPv6 address has no port.
    std::string_view host = entry;
    std::string_view port;
    if (entry.starts_with('[')) {
      const auto close = entry.find(']');
      host = close == std::string_view::npos ? std::string_view{} : entry.substr(1, close - 1);
      if (close != std::string_view::npos && close + 1 < entry.size()) {
        if (entry[close + 1] != ':') host = {};
        port = entry.substr(close + 2);
      }
    } else if (const auto colon = entry.rfind(':'); colon != std::string_view::npos && entry.find(':') == colon &&
                                                    entry.find('/') == std::string_view::npos) {
      host = entry.substr(0, colon);
      port = entry.substr(colon + 1);
    }
    unsigned n = 0;
    if (!port.empty()) {
      const auto r = std::from_chars(port.data(), port.data() + port.size(), n);
      if (r.ec != std::errc() || r.ptr != port.data() + port.size() || n == 0 || n > 65535) host = {};
      x.port = static_cast<std::uint16_t>(n);
    }
    std::string err;
    if (host.find('/') != std::string_view::npos || parseIp(host)) {
      auto rule = parsePassthrough(host, err);
      if (rule && rule->kind == PassthroughRule::Kind::Network) {
        x.kind = ProxyExclusion::Kind::Network;
        x.network = std::move(*rule);
        out.push_back(std::move(x));
        continue;
      }
      host = {};
    }
    if (host.starts_with("*.")) host.remove_prefix(2);
    else if (host.starts_with('.')) host.remove_prefix(1);
    const bool name = !host.empty() && std::all_of(host.begin(), host.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '.' || c == '-' || c == '_';
    });
    if (!name) {
      error = "--upstream-proxy-exclude: '" + std::string(entry) +
              "' is not *, a host name, an address or CIDR (each with an optional :PORT)";
      return std::nullopt;
    }
    x.host = lower(host);
    out.push_back(std::move(x));
  }
  return out;
}

std::optional<UpstreamProxy> upstreamProxyOf(const ProxyConfig& cfg, std::string& error) {
  auto p = parseUpstreamProxy(cfg.upstream_proxy, error);
  if (!p) return std::nullopt;
  auto exclude = parseProxyExclusions(cfg.upstream_proxy_exclude, error);
  if (!exclude) return std::nullopt;
  p->exclude = std::move(*exclude);
  return p;
}

bool UpstreamProxy::usedFor(std::string_view target_host, std::uint16_t target_port) const {
  const std::string name = lower(target_host);
  PassthroughSubject subject;
  subject.address = parseIp(name);
  for (const auto& x : exclude) {
    if (x.port != 0 && x.port != target_port) continue;
    switch (x.kind) {
      case ProxyExclusion::Kind::All: return false;
      case ProxyExclusion::Kind::Network:
        if (matches(x.network, subject)) return false;
        break;
      case ProxyExclusion::Kind::Host:
        // The name itself, or a subdomain of it (a '.' right before the suffix), as curl does.
        if (name == x.host ||
            (name.size() > x.host.size() && name.ends_with(x.host) && name[name.size() - x.host.size() - 1] == '.'))
          return false;
        break;
    }
  }
  return true;
}

}  // namespace tlstrace::config
