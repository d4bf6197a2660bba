// --upstream-proxy and --upstream-proxy-exclude: every upstream connection goes through another
// proxy (HTTP CONNECT or SOCKS5), except to the targets the exclusion list sends direct.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/address.h"
#include "config/passthrough.h"

namespace tlstrace::config {

// One NO_PROXY-style entry (as curl reads NO_PROXY): "*" (everything), a host name that matches
// itself and its subdomains (a leading "." or "*." is the same), an address or CIDR; ":port" limits
// an entry to that port.
struct ProxyExclusion {
  enum class Kind { All, Host, Network } kind = Kind::Host;
  std::string host;         // Host: lower case, no leading dot
  PassthroughRule network;  // Network: an address/CIDR rule (config/passthrough.h)
  std::uint16_t port = 0;   // 0: any port
};

struct UpstreamProxy {
  enum class Scheme { Http, Socks5 };
  Scheme scheme = Scheme::Http;
  std::string host;  // name or address (IPv6 without brackets)
  std::uint16_t port = 0;
  std::string user, password;  // RFC 1929 (SOCKS5) or Basic (HTTP), when auth
  bool auth = false;
  std::string authorization;  // HTTP: "Basic <base64(user:password)>" (RFC 7617) when auth
  std::string url;            // scheme://host:port, never the credentials: what events and lines show
  std::vector<ProxyExclusion> exclude;

  // Whether a connection to host:port goes through the proxy (false: excluded, direct).
  [[nodiscard]] bool usedFor(std::string_view target_host, std::uint16_t target_port) const;
};

// "http://[user:pass@]host:port" or "socks5://[user:pass@]host:port" (also "socks5h://": names are
// always sent to the proxy to resolve). The port defaults to 3128 (http) and 1080 (socks5);
// user and password may be percent-encoded (RFC 3986 2.1). nullopt with `error` (which never
// repeats the password) when malformed.
[[nodiscard]] std::optional<UpstreamProxy> parseUpstreamProxy(std::string_view url, std::string& error);

// A comma-separated list (spaces allowed); nullopt with `error` naming the bad entry.
[[nodiscard]] std::optional<std::vector<ProxyExclusion>> parseProxyExclusions(std::string_view list,
                                                                              std::string& error);

struct ProxyConfig;
// The configuration's --upstream-proxy with its --upstream-proxy-exclude list (when set).
[[nodiscard]] std::optional<UpstreamProxy> upstreamProxyOf(const ProxyConfig& cfg, std::string& error);

}  // namespace tlstrace::config
