#include "config/config.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <thread>

#include "config/address.h"
#include "config/passthrough.h"
#include "config/upstream_proxy.h"

namespace tlstrace::config {

std::string HostPort::str() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<HostPort> parseHostPort(std::string_view s, std::string& error, std::uint16_t default_port,
                                      bool allow_port_zero) {
  HostPort hp;
  std::string_view port_text;
  if (s.starts_with("[")) {
    const auto close = s.find(']');
    if (close == std::string_view::npos) {
      error = "unterminated '[' in '" + std::string(s) + "'";
      return std::nullopt;
    }
    hp.host = std::string(s.substr(1, close - 1));
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        error = "expected ':' after ']' in '" + std::string(s) + "'";
        return std::nullopt;
      }
      port_text = rest.substr(1);
    }
  } else {
    const auto colon = s.rfind(':');
    if (colon != std::string_view::npos && s.find(':') != colon) {
      error = "IPv6 addresses need brackets: '[" + std::string(s) + "]:port'";
      return std::nullopt;
    }
    hp.host = std::string(s.substr(0, colon));
    if (colon != std::string_view::npos) port_text = s.substr(colon + 1);
  }
  if (hp.host.empty()) {
    error = "missing host in '" + std::string(s) + "'";
    return std::nullopt;
  }
  for (char c : hp.host) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == '/' || c == '@' || c == '?' || c == '#') {
      error = "invalid character in host '" + hp.host + "'";
      return std::nullopt;
    }
  }
  if (port_text.empty()) {
    if (default_port == 0) {
      error = "missing port in '" + std::string(s) + "'";
      return std::nullopt;
    }
    hp.port = default_port;
    return hp;
  }
  unsigned port = 0;
  auto r = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (r.ec != std::errc() || r.ptr != port_text.data() + port_text.size() || (port == 0 && !allow_port_zero) ||
      port > 65535) {
    error = "bad port '" + std::string(port_text) + "'";
    return std::nullopt;
  }
  hp.port = static_cast<std::uint16_t>(port);
  return hp;
}

std::optional<Mode> parseMode(std::string_view s) {
  if (s == "explicit") return Mode::Explicit;
  if (s == "reverse") return Mode::Reverse;
  if (s == "transparent") return Mode::Transparent;
  if (s == "socks5") return Mode::Socks5;
  return std::nullopt;
}

std::string_view modeName(Mode m) {
  switch (m) {
    case Mode::Reverse: return "reverse";
    case Mode::Transparent: return "transparent";
    case Mode::Socks5: return "socks5";
    case Mode::Explicit: break;
  }
  return "explicit";
}

std::string seconds(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%g s", s);
  return b;
}

std::vector<std::string> ProxyConfig::warnings() const {
  std::vector<std::string> w;
  // The handshake timeout runs from the client's accept and so bounds the upstream connect too: a
  // longer connect timeout is never reached. Said at start, not refused: `--handshake-timeout 2`
  // alone (against the default connect timeout) is a fair request.
  if (connect_timeout_s > handshake_timeout_s)
    w.push_back("--connect-timeout (" + seconds(connect_timeout_s) + ") is longer than --handshake-timeout (" +
                seconds(handshake_timeout_s) + "), which also bounds the upstream connect: a connect gets at most " +
                seconds(handshake_timeout_s));
  return w;
}

std::optional<ClientCertRule> parseClientCertRule(std::string_view s, std::string& error) {
  const auto eq = s.find('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == s.size()) {
    error = "--upstream-client-cert-for '" + std::string(s) + "': expected HOSTGLOB=CERT[,KEY]";
    return std::nullopt;
  }
  ClientCertRule r;
  r.host = std::string(s.substr(0, eq));
  const std::string_view files = s.substr(eq + 1);
  const auto comma = files.find(',');
  r.cert = std::string(files.substr(0, comma));
  if (comma != std::string_view::npos) r.key = std::string(files.substr(comma + 1));
  return r;
}

std::vector<std::string> ProxyConfig::validate() const {
  std::vector<std::string> errs;
  if (upstream_client_key.size() && upstream_client_cert.empty())
    errs.push_back("--upstream-client-key needs --upstream-client-cert");
  for (const auto& rule : client_cert_rules) {
    std::string e;
    if (!parseClientCertRule(rule, e)) errs.push_back(e);
  }
  if (!client_ca.empty() && !request_client_cert) errs.push_back("--client-ca is used with --request-client-cert");
  if (mode == Mode::Reverse && !upstream) errs.push_back("--mode reverse needs --upstream HOST:PORT");
  if (mode != Mode::Reverse && upstream) errs.push_back("--upstream is only used with --mode reverse");
  if (ca_cert.empty() != ca_key.empty()) errs.push_back("--ca-cert and --ca-key go together");
  if (max_connections == 0) errs.push_back("--max-connections must be at least 1");
  if (handshake_timeout_s <= 0) errs.push_back("--handshake-timeout must be positive");
  if (idle_timeout_s <= 0) errs.push_back("--idle-timeout must be positive");
  if (connect_timeout_s <= 0) errs.push_back("--connect-timeout must be positive");
  if (resolve_timeout_s <= 0) errs.push_back("--resolve-timeout must be positive");
  if (quiet && verbose) errs.push_back("-q/--quiet and -v/--verbose exclude each other");
  if (cert_cache == 0) errs.push_back("--cert-cache must be at least 1");
  if (backlog == 0 || backlog > 65535) errs.push_back("--backlog must be from 1 to 65535");
  if (!proxy_auth.empty() && proxy_auth.find(':') == std::string::npos)
    errs.push_back("--proxy-auth takes USER:PASSWORD");
  if (!proxy_auth.empty() && mode != Mode::Explicit && mode != Mode::Socks5)
    errs.push_back("--proxy-auth is for --mode explicit or socks5");
  for (const auto& pattern : passthrough) {
    std::string err;
    if (!parsePassthrough(pattern, err)) errs.push_back(err);
  }
  // A name is checked once resolved (net/server.cpp); an address literal here, before anything starts.
  if (const auto ip = parseIp(listen.host); ip && !allow_remote && classify(*ip) != AddressClass::Loopback)
    errs.push_back(listenNeedsAllowRemote(listen.host));
  if (ui && ui_keep == 0) errs.push_back("--ui-keep must be at least 1");
  if (std::string e; !upstream_proxy.empty() && !upstreamProxyOf(*this, e)) errs.push_back(e);
  if (const auto ip = ui ? parseIp(ui->host) : std::nullopt;
      ip && !allow_remote && classify(*ip) != AddressClass::Loopback)
    errs.push_back("--ui " + ui->host +
                   " is not a loopback address: add --allow-remote to serve the live page beyond it");
  return errs;
}

std::string listenNeedsAllowRemote(const std::string& host) {
  return "--listen " + host +
         " is not a loopback address: anyone who can reach it could relay through the proxy; add --allow-remote "
         "to mean it (and --proxy-auth USER:PASSWORD to require credentials)";
}

std::size_t ioThreads(const ProxyConfig& cfg) {
  if (cfg.threads != 0) return cfg.threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

std::size_t connectionsPerThread(std::size_t max_connections, std::size_t threads) {
  if (threads <= 1) return max_connections;
  return std::min(max_connections, max_connections / threads + 1);
}

std::size_t maxConnectionsFitting(std::size_t per_thread, std::size_t threads) {
  if (threads <= 1) return per_thread;
  return per_thread * threads - 1;  // (T*f - 1) / T + 1 = f, while T*f / T + 1 = f + 1
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out.push_back(kAlphabet[(v >> k) & 63]);
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

}  // namespace tlstrace::config
