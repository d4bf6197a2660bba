#include "app/cli.h"

#include <CLI/CLI.hpp>
#include <fstream>
#include <sstream>

#include "config/toml.h"
#include "pki/ca.h"

namespace tlstrace::app {

namespace {
void legOptions(CLI::App* cmd, const std::string& leg, config::LegTls& t) {
  const std::string who = leg == "client" ? "to clients" : "to servers";
  cmd->add_option("--" + leg + "-tls-min", t.min_version, "lowest TLS version offered " + who + " (1.0..1.3)");
  cmd->add_option("--" + leg + "-tls-max", t.max_version, "highest TLS version offered " + who);
  cmd->add_option("--" + leg + "-ciphers", t.ciphers, "TLS <= 1.2 cipher list " + who + " (OpenSSL syntax)");
  cmd->add_option("--" + leg + "-ciphersuites", t.ciphersuites, "TLS 1.3 cipher suites " + who);
  cmd->add_option("--" + leg + "-groups", t.groups, "key-exchange groups " + who + " (e.g. X25519:P-256)");
}
}  // namespace

CLI::App* addProxyCommand(CLI::App& app, config::ProxyConfig& cfg, CliState& st) {
  CLI::App* p = app.add_subcommand("proxy", "run the intercepting proxy");
  // Expanded by expandConfigFiles() before parsing; declared here for --help.
  p->add_option("--config", st.config_file, "read options from a TOML file (the command line wins)");
  p->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  p->add_option("-l,--listen", st.listen, "HOST:PORT to accept clients on")->capture_default_str();
  p->add_option("-m,--mode", st.mode, "explicit (HTTP CONNECT proxy) or reverse (every client to --upstream)")
      ->capture_default_str()
      ->check(CLI::IsMember({"explicit", "reverse"}));
  p->add_option("-u,--upstream", st.upstream, "HOST:PORT every client goes to in reverse mode");
  p->add_option("--ca-dir", cfg.ca_dir, "directory of the interception CA (ca.pem, ca.key)");
  p->add_option("--ca-cert", cfg.ca_cert, "use this CA certificate (PEM) instead of --ca-dir");
  p->add_option("--ca-key", cfg.ca_key, "the key of --ca-cert (PEM, mode 0600)");
  p->add_flag("--insecure", cfg.insecure, "do not enforce upstream certificate verification (still traced)");
  p->add_option("--upstream-ca", cfg.upstream_ca, "trust anchors for the upstream leg (PEM)");
  p->add_option("--trace", cfg.trace, "categories: tcp,handshake,keyexchange,trust,keys,record,data,all")
      ->capture_default_str();
  p->add_option("--log", cfg.log_file, "human-readable trace to FILE (default stderr)");
  p->add_option("--format", cfg.format,
                "text trace shape: default, jsse (like javax.net.debug), openssl (like s_client -trace)")
      ->capture_default_str()
      ->check(CLI::IsMember({"default", "jsse", "openssl"}));
  p->add_option("--events", cfg.events_file, "JSON Lines events to FILE ('-' = stdout)");
  p->add_option("--keylog", cfg.keylog_file, "NSS key log of both legs (default $SSLKEYLOGFILE)");
  p->add_option("--pcap", cfg.pcap_file, "pcapng of both legs with the key log embedded (created 0600)");
  p->add_flag("--log-secrets", cfg.log_secrets, "put secrets into the trace and events too");
  p->add_flag("--mirror-client", cfg.mirror_client,
              "offer the server the client's own versions, cipher suites, groups, signature schemes and ALPN");
  legOptions(p, "client", cfg.client_tls);
  legOptions(p, "upstream", cfg.upstream_tls);
  p->add_option("--dhparam", cfg.dhparam, "DH parameters (PEM) for DHE towards clients (use with --leaf-key rsa)");
  p->add_option("--leaf-key", cfg.leaf_key,
                "key of forged certificates: ec (P-256) or rsa (2048, for RSA-only clients)")
      ->capture_default_str()
      ->check(CLI::IsMember({"ec", "rsa"}));
  p->add_option("--max-connections", cfg.max_connections, "concurrent connections")->capture_default_str();
  p->add_option("--handshake-timeout", cfg.handshake_timeout_s, "seconds")->capture_default_str();
  p->add_option("--idle-timeout", cfg.idle_timeout_s, "seconds")->capture_default_str();
  p->add_option("--connect-timeout", cfg.connect_timeout_s, "seconds for the upstream TCP connect")
      ->capture_default_str();
  p->add_option("--cert-cache", cfg.cert_cache, "forged certificates kept (LRU)")->capture_default_str();
  p->add_option("--threads", cfg.threads, "io threads (0 = one per core); each connection stays on one")
      ->capture_default_str();
  p->add_option("--proxy-auth", cfg.proxy_auth, "USER:PASSWORD required from explicit-mode clients (Basic)");
  p->add_flag("--allow-remote", cfg.allow_remote,
              "accept clients from outside loopback and private networks (refused by default)");
  return p;
}

CLI::App* addCaCommand(CLI::App& app, config::ProxyConfig& cfg, std::string& action) {
  CLI::App* c = app.add_subcommand("ca", "create, show or export the interception CA");
  c->add_option("action", action, "init | show | export")->required()->check(CLI::IsMember({"init", "show", "export"}));
  c->add_option("--ca-dir", cfg.ca_dir, "directory of the CA");
  c->add_option("--ca-cert", cfg.ca_cert, "an existing CA certificate (PEM)");
  c->add_option("--ca-key", cfg.ca_key, "its key (PEM)");
  return c;
}

std::vector<std::string> expandConfigFiles(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  std::string command;
  std::size_t command_at = 0;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (command.empty() && !a.empty() && a[0] != '-') {
      command = a;
      out.push_back(a);
      command_at = out.size();
      continue;
    }
    std::string file;
    if (a == "--config" && i + 1 < args.size()) file = args[++i];
    else if (a.rfind("--config=", 0) == 0) file = a.substr(9);
    else {
      out.push_back(a);
      continue;
    }
    std::ifstream f(file);
    if (!f) throw CLI::FileError::Missing(file);
    std::stringstream ss;
    ss << f.rdbuf();
    std::string err;
    auto entries = config::parseToml(ss.str(), err);
    if (!entries) throw CLI::ValidationError("--config", file + ": " + err);
    // File options go first so that the command line, parsed later, wins.
    auto extra = config::tomlToArgs(*entries, command);
    out.insert(out.begin() + static_cast<std::ptrdiff_t>(command_at), extra.begin(), extra.end());
    command_at += extra.size();
  }
  return out;
}

void finishConfig(config::ProxyConfig& cfg, const CliState& st) {
  std::string err;
  auto listen = config::parseHostPort(st.listen, err, 0, true);
  if (!listen) throw CLI::ValidationError("--listen", err);
  cfg.listen = *listen;
  cfg.mode = config::parseMode(st.mode).value_or(config::Mode::Explicit);
  if (!st.upstream.empty()) {
    auto up = config::parseHostPort(st.upstream, err);
    if (!up) throw CLI::ValidationError("--upstream", err);
    cfg.upstream = *up;
  }
  if (cfg.ca_dir.empty()) cfg.ca_dir = pki::defaultCaDir();
}

}  // namespace tlstrace::app
