// The proxy's configuration as plain values, with validation. Filled by the CLI (app/), read by
// every other layer; no parsing library leaks in here.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tlstrace::config {

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
  [[nodiscard]] std::string str() const;  // brackets IPv6 literals
  bool operator==(const HostPort&) const = default;
};

// "host:port", "[::1]:443". With `default_port` non-zero a missing port takes it.
// `allow_port_zero` is for listen addresses, where 0 asks the system to pick a port.
[[nodiscard]] std::optional<HostPort> parseHostPort(std::string_view s, std::string& error,
                                                    std::uint16_t default_port = 0, bool allow_port_zero = false);

enum class Mode { Explicit, Reverse, Transparent, Socks5 };
[[nodiscard]] std::optional<Mode> parseMode(std::string_view s);
[[nodiscard]] std::string_view modeName(Mode m);

struct LegTls {
  std::string min_version;
  std::string max_version;
  std::string ciphers;
  std::string ciphersuites;
  std::string groups;
};

struct ProxyConfig {
  HostPort listen{"127.0.0.1", 8080};
  Mode mode = Mode::Explicit;
  std::optional<HostPort> upstream;
  std::string ca_dir;
  std::string ca_cert;
  std::string ca_key;
  bool insecure = false;
  std::string upstream_ca;
  std::string trace = "tcp,handshake,keyexchange,trust";
  std::string log_file;     // the full text trace; "" = none, "-" = stdout
  bool quiet = false;       // -q: no connection lines, no exit summary, only warnings and errors
  bool verbose = false;     // -v: the full text trace on stderr too
  std::string events_file;  // "" = none, "-" = stdout
  std::string keylog_file;  // "" = $SSLKEYLOGFILE or none
  std::string pcap_file;
  // An output that cannot be written (EPIPE, ENOSPC, EIO, ...): stop (stop accepting, close
  // gracefully, exit 3) or continue (keep proxying, count what is lost; exit 3 as well).
  std::string on_output_error = "stop";
  bool log_secrets = false;
  bool mirror_client = false;  // offer upstream what the client offered
  std::string proxy_auth;      // "user:pass": explicit mode requires Proxy-Authorization: Basic
  bool allow_remote = false;   // listen beyond loopback and serve non-loopback clients
  // Non-loopback clients may reach loopback, link-local and the proxy's own addresses.
  bool allow_private_targets = false;
  bool tcp_states = false;                 // --tcp-states: kernel TCP state transitions (eBPF), when the kernel allows
  std::string tcp_states_source = "auto";  // auto (eBPF, else --capture's segments), ebpf, capture, both
  LegTls client_tls;
  LegTls upstream_tls;
  std::string dhparam;
  std::string leaf_key = "ec";  // forged leaf key: ec (P-256) or rsa (2048)
  std::size_t max_connections = 10000;
  double handshake_timeout_s = 10;
  double idle_timeout_s = 300;
  double connect_timeout_s = 10;
  double resolve_timeout_s = 5;  // upstream name lookup, on the resolver pool (before the connect timeout)
  double shutdown_grace_s = 2;
  std::size_t cert_cache = 1024;
  std::size_t threads = 0;         // io threads; 0 = one per core
  std::string format = "default";  // text trace shape: default, jsse, openssl
  std::string policy_file;         // --policy: CI rules checked live (config/policy.h)
  std::string junit_file, sarif_file;
  std::string ready_file;
  std::vector<std::string> passthrough;  // --passthrough patterns (config/passthrough.h)
  unsigned auto_passthrough = 0;         // --auto-passthrough N: rejections before a host passes; 0 off
  std::string audit_clients;  // --audit-clients: "" off, "all" or a comma list of scenarios  // written with the
                              // listening address once the proxy accepts
  // Mutual TLS. Upstream: the certificate presented when a server sends CertificateRequest
  // (RFC 8446 4.3.2, RFC 5246 7.4.4); `client_certs` first, by host glob, then the default one.
  std::string upstream_client_cert, upstream_client_key;
  std::vector<std::string> client_cert_rules;  // "GLOB=CERT[,KEY]" (--upstream-client-cert-for)
  // Client leg: ask clients for a certificate and trace what they send (verdict against client_ca).
  bool request_client_cert = false;
  std::string client_ca;

  std::size_t backlog = 4096;  // --backlog: listen(2)'s; the kernel caps it at net.core.somaxconn
  bool capture = false;        // --capture: the legs' real segments (libpcap, CAP_NET_RAW) as tcp.segment
  // STARTTLS before TLS (session/starttls.h): "auto" by the target's port, "off", or a protocol.
  std::string starttls = "auto";
  std::optional<HostPort> ui;  // --ui: the live report page (loopback unless --allow-remote)
  std::size_t ui_keep = 1000;  // connections the live page keeps
  // Every upstream connection through this proxy (config/upstream_proxy.h), but for the targets of
  // the NO_PROXY-style exclusion list; "": direct.
  std::string upstream_proxy;
  std::string upstream_proxy_exclude;

  // Every problem found, one sentence each; empty when the configuration is usable.
  [[nodiscard]] std::vector<std::string> validate() const;
  // What is usable but probably not meant, one sentence each (said at start).
  [[nodiscard]] std::vector<std::string> warnings() const;
};

// One --upstream-client-cert-for rule: the certificate for the servers whose name matches `host`.
struct ClientCertRule {
  std::string host;  // glob (config::globMatch) against the SNI, else the target host
  std::string cert;  // PEM: the leaf first, then its chain
  std::string key;   // PEM; empty: the key is in `cert`
};
// "GLOB=CERT[,KEY]"; nullopt with `error` when malformed.
[[nodiscard]] std::optional<ClientCertRule> parseClientCertRule(std::string_view s, std::string& error);

// The refusal of a non-loopback --listen without --allow-remote (validate(), and net/ for a name).
[[nodiscard]] std::string listenNeedsAllowRemote(const std::string& host);

// A configuration problem found only once starting (a --listen name that resolves beyond
// loopback): the command exits 2, as for validate()'s problems.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The io threads a configuration runs (--threads 0: one per core).
[[nodiscard]] std::size_t ioThreads(const ProxyConfig& cfg);

// Where each io thread keeps its connections' sockets in a descriptor table of its own, the
// open-file limit applies per thread (with one shared table, pass threads = 1). New connections
// go to the least loaded thread, decided before the next connection arrives; by then the others
// may have closed some, so one thread can hold one more than an even share: at most
// min(max, max / threads + 1) of `max_connections`.
[[nodiscard]] std::size_t connectionsPerThread(std::size_t max_connections, std::size_t threads);
// The largest --max-connections whose per-thread share is at most `per_thread` (>= 1).
[[nodiscard]] std::size_t maxConnectionsFitting(std::size_t per_thread, std::size_t threads);

// RFC 4648 section 4 base64 (for the Basic credentials of --proxy-auth, RFC 7617).
[[nodiscard]] std::string base64(std::string_view in);

// A duration for a message: "3 s", "0.5 s" (not std::to_string's "3.000000").
std::string seconds(double s);

}  // namespace tlstrace::config
