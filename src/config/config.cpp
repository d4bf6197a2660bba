#include "config/config.h"

#include <charconv>

namespace tlstrace::config {

std::string HostPort::str() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<HostPort> parseHostPort(std::string_view s, std::string& error,
                                      std::uint16_t default_port, bool allow_port_zero) {
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
  if (r.ec != std::errc() || r.ptr != port_text.data() + port_text.size() || (port == 0 && !allow_port_zero) || port > 65535) {
    error = "bad port '" + std::string(port_text) + "'";
    return std::nullopt;
  }
  hp.port = static_cast<std::uint16_t>(port);
  return hp;
}

std::optional<Mode> parseMode(std::string_view s) {
  if (s == "explicit") return Mode::Explicit;
  if (s == "reverse") return Mode::Reverse;
  return std::nullopt;
}

std::string_view modeName(Mode m) { return m == Mode::Reverse ? "reverse" : "explicit"; }

std::vector<std::string> ProxyConfig::validate() const {
  std::vector<std::string> errs;
  if (mode == Mode::Reverse && !upstream) errs.push_back("--mode reverse needs --upstream HOST:PORT");
  if (mode == Mode::Explicit && upstream)
    errs.push_back("--upstream is only used with --mode reverse");
  if (ca_cert.empty() != ca_key.empty()) errs.push_back("--ca-cert and --ca-key go together");
  if (max_connections == 0) errs.push_back("--max-connections must be at least 1");
  if (handshake_timeout_s <= 0) errs.push_back("--handshake-timeout must be positive");
  if (idle_timeout_s <= 0) errs.push_back("--idle-timeout must be positive");
  if (connect_timeout_s <= 0) errs.push_back("--connect-timeout must be positive");
  if (cert_cache == 0) errs.push_back("--cert-cache must be at least 1");
  return errs;
}

}  // namespace tlstrace::config
