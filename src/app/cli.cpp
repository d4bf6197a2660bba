#include "app/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <map>
#include <optional>

#include "app/ca_run.h"
#include "config/config_file.h"
#include "pki/ca.h"

namespace tlstrace::app {

namespace {
void legOptions(CLI::App* cmd, const std::string& leg, config::LegTls& t) {
  const std::string who = leg == "client" ? "to clients" : "to servers";
  cmd->add_option("--" + leg + "-tls-min", t.min_version, "lowest TLS version offered " + who + " (1.0..1.3)");
  cmd->add_option("--" + leg + "-tls-max", t.max_version, "highest TLS version offered " + who);
  // OpenSSL lists are ':'-separated; the delimiter also lets a config file give them as arrays.
  cmd->add_option("--" + leg + "-ciphers", t.ciphers, "TLS <= 1.2 cipher list " + who + " (OpenSSL syntax)")->join(':');
  cmd->add_option("--" + leg + "-ciphersuites", t.ciphersuites, "TLS 1.3 cipher suites " + who)->join(':');
  cmd->add_option("--" + leg + "-groups", t.groups, "key-exchange groups " + who + " (e.g. X25519:P-256)")->join(':');
}
}  // namespace

namespace {
// Where clients come from and where they go; the CA and the upstream trust.
void whereOptions(CLI::App* p, config::ProxyConfig& cfg, CliState& st) {
  p->add_option("-l,--listen", st.listen, "HOST:PORT (or a bare PORT on 127.0.0.1) to accept clients on")
      ->capture_default_str();
  p->add_option("-m,--mode", st.mode,
                "explicit (HTTP CONNECT), reverse (to --upstream), transparent (REDIRECT/TPROXY), socks5")
      ->capture_default_str()
      ->check(CLI::IsMember({"explicit", "reverse", "transparent", "socks5"}));
  p->add_option("-u,--upstream", st.upstream, "HOST:PORT every client goes to in reverse mode");
  p->add_option("--ca-dir", cfg.ca_dir, "directory of the interception CA (ca.pem, ca.key)");
  p->add_option("--ca-cert", cfg.ca_cert, "use this CA certificate (PEM) instead of --ca-dir");
  p->add_option("--ca-key", cfg.ca_key, "the key of --ca-cert (PEM, mode 0600)");
  p->add_flag("--insecure", cfg.insecure, "do not enforce upstream certificate verification (still traced)");
  p->add_option("--upstream-ca", cfg.upstream_ca, "trust anchors for the upstream leg (PEM)");
}

// What is traced and where it is written.
void outputOptions(CLI::App* p, config::ProxyConfig& cfg) {
  p->add_option("--trace", cfg.trace, "categories: tcp,handshake,keyexchange,trust,keys,record,data,all")
      ->capture_default_str()
      ->join(',');
  p->add_option("--log", cfg.log_file, "the full human-readable trace to FILE ('-' = stdout; default: none)");
  p->add_flag("-q,--quiet", cfg.quiet, "no connection lines or exit summary on stderr: warnings and errors only");
  p->add_flag("-v,--verbose", cfg.verbose, "the full trace on stderr as well (with the connection lines)");
  p->add_option("--format", cfg.format,
                "text trace shape: default, jsse (like javax.net.debug), openssl (like s_client -trace)")
      ->capture_default_str()
      ->check(CLI::IsMember({"default", "jsse", "openssl"}));
  p->add_option("--events", cfg.events_file, "JSON Lines events to FILE ('-' = stdout)");
  p->add_option("--keylog", cfg.keylog_file, "NSS key log of both legs (default $SSLKEYLOGFILE)");
  p->add_option("--pcap", cfg.pcap_file, "pcapng of both legs with the key log embedded (created 0600)");
  p->add_option("--on-output-error", cfg.on_output_error,
                "an output cannot be written: stop (stop accepting, close, exit 3) or continue (count the losses)")
      ->capture_default_str()
      ->check(CLI::IsMember({"stop", "continue"}));
  p->add_flag("--log-secrets", cfg.log_secrets, "put secrets into the trace and events too");
}

// What each leg offers.
void tlsOptions(CLI::App* p, config::ProxyConfig& cfg) {
  p->add_flag("--mirror-client", cfg.mirror_client,
              "offer the server the client's own versions, cipher suites, groups, signature schemes and ALPN");
  legOptions(p, "client", cfg.client_tls);
  legOptions(p, "upstream", cfg.upstream_tls);
  p->add_option("--dhparam", cfg.dhparam, "DH parameters (PEM) for DHE towards clients (use with --leaf-key rsa)");
  p->add_option("--leaf-key", cfg.leaf_key,
                "key of forged certificates: ec (P-256) or rsa (2048, for RSA-only clients)")
      ->capture_default_str()
      ->check(CLI::IsMember({"ec", "rsa"}));
}

// Limits, timeouts and the start-up handshake with a CI job.
void limitOptions(CLI::App* p, config::ProxyConfig& cfg) {
  p->add_option("--max-connections", cfg.max_connections, "concurrent connections")->capture_default_str();
  p->add_option("--handshake-timeout", cfg.handshake_timeout_s, "seconds")->capture_default_str();
  p->add_option("--idle-timeout", cfg.idle_timeout_s, "seconds")->capture_default_str();
  p->add_option("--connect-timeout", cfg.connect_timeout_s, "seconds for the upstream TCP connect")
      ->capture_default_str();
  p->add_option("--resolve-timeout", cfg.resolve_timeout_s, "seconds for the upstream name lookup (off the io threads)")
      ->capture_default_str();
  p->add_option("--cert-cache", cfg.cert_cache, "forged certificates kept (LRU)")->capture_default_str();
  p->add_option("--threads", cfg.threads, "io threads (0 = one per core); each connection stays on one")
      ->capture_default_str();
  p->add_option("--proxy-auth", cfg.proxy_auth, "USER:PASSWORD required from clients (HTTP Basic; SOCKS5: RFC 1929)");
  p->add_option("--ready-file", cfg.ready_file, "write HOST:PORT to FILE once listening (removed at exit)");
}

// CI verdicts: client audits and policies.
void checkOptions(CLI::App* p, config::ProxyConfig& cfg) {
  // Alone it means all of them (CLI11 takes the default string when no value follows).
  p->add_option("--audit-clients", cfg.audit_clients,
                "show each client broken certificates in turn (all, or a comma list of scenarios: docs/cli.md) "
                "and report the ones it accepted")
      ->expected(0, 1)
      ->default_str("all");
  p->add_option("--policy", cfg.policy_file, "CI policy (TOML [[rule]] tables): violations as events, exit 1 if any");
  p->add_option("--junit", cfg.junit_file, "with --policy: the verdicts as JUnit XML to FILE at exit");
  p->add_option("--sarif", cfg.sarif_file, "with --policy: the violations as SARIF 2.1.0 to FILE at exit");
}

// Exposure and the TCP half.
void networkOptions(CLI::App* p, config::ProxyConfig& cfg) {
  p->add_flag("--allow-remote", cfg.allow_remote,
              "listen beyond loopback and serve non-loopback clients (refused by default)");
  p->add_flag("--allow-private-targets", cfg.allow_private_targets,
              "let non-loopback clients reach loopback, link-local and the proxy's own addresses");
  p->add_option("--backlog", cfg.backlog, "listen(2) backlog (the kernel caps it at net.core.somaxconn)")
      ->capture_default_str();
  p->add_flag("--capture", cfg.capture,
              "capture both legs' real segments (needs CAP_NET_RAW): tcp.segment events; --pcap gets them");
}

// Client certificates on either leg.
void mtlsOptions(CLI::App* p, config::ProxyConfig& cfg) {
  p->add_option("--upstream-client-cert", cfg.upstream_client_cert,
                "client certificate (PEM, chain after the leaf) for servers that ask for one");
  p->add_option("--upstream-client-key", cfg.upstream_client_key, "its private key (PEM; default: in the cert file)");
  p->add_option("--upstream-client-cert-for", cfg.client_cert_rules,
                "HOSTGLOB=CERT[,KEY]: a client certificate for matching servers (repeatable; first match wins)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->delimiter(';');
  p->add_flag("--request-client-cert", cfg.request_client_cert,
              "ask clients for a certificate (not required) and trace what they send");
  p->add_option("--client-ca", cfg.client_ca, "with --request-client-cert: CAs (PEM) to verify client certificates");
}

// STARTTLS and passthrough.
void frontEndOptions(CLI::App* p, config::ProxyConfig& cfg) {
  p->add_option("--starttls", cfg.starttls,
                "STARTTLS first: auto (by port: 25/587/143/110/5432/3306/389), off, or a protocol")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "off", "smtp", "imap", "pop3", "postgres", "mysql", "ldap"}));
  p->add_option("--passthrough", cfg.passthrough,
                "relay matching connections untouched (host glob, address/CIDR or port; repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->delimiter(',');
  // Alone it means 2 (CLI11 takes the default string when no value follows).
  p->add_option("--auto-passthrough", cfg.auto_passthrough,
                "pass a host through for a client after it rejected the forged certificate N times")
      ->expected(0, 1)
      ->default_str("2");
}

// Kernel TCP states, the live page, and an upstream proxy.
void observeOptions(CLI::App* p, config::ProxyConfig& cfg, CliState& st) {
  p->add_flag("--tcp-states", cfg.tcp_states, "kernel TCP state transitions per leg as tcp.state events (eBPF)");
  p->add_option("--tcp-states-source", cfg.tcp_states_source,
                "auto: eBPF, else the captured segments (with --capture); or ebpf, capture, both")
      ->check(CLI::IsMember({"auto", "ebpf", "capture", "both"}))
      ->capture_default_str();
  p->add_option("--ui", st.ui, "serve the live report page on HOST:PORT (loopback unless --allow-remote)");
  p->add_option("--ui-keep", cfg.ui_keep, "connections the live page keeps (the newest)")->capture_default_str();
  p->add_option("--upstream-proxy", cfg.upstream_proxy,
                "reach servers through http://[USER:PASS@]HOST:PORT (CONNECT) or socks5://[USER:PASS@]HOST:PORT");
  p->add_option("--upstream-proxy-exclude", cfg.upstream_proxy_exclude,
                "targets reached direct: hosts (with subdomains), addresses, CIDRs or *, each with optional :PORT")
      ->join(',');
}
}  // namespace

CLI::App* addProxyCommand(CLI::App& app, config::ProxyConfig& cfg, CliState& st) {
  CLI::App* p = app.add_subcommand("proxy", "run the intercepting proxy");
  // Read by applyConfigFiles() once the command line is parsed.
  p->add_option("--config", st.config_files,
                "read options from a TOML file (repeatable; a later file wins, the command line over all)");
  p->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  whereOptions(p, cfg, st);
  outputOptions(p, cfg);
  tlsOptions(p, cfg);
  limitOptions(p, cfg);
  checkOptions(p, cfg);
  networkOptions(p, cfg);
  mtlsOptions(p, cfg);
  frontEndOptions(p, cfg);
  observeOptions(p, cfg, st);
  return p;
}

CLI::App* addCaCommand(CLI::App& app, config::ProxyConfig& cfg, CaOptions& opt) {
  CLI::App* c = app.add_subcommand("ca", "create, show, export or print how to install the interception CA");
  c->add_option("action", opt.action, "init | show | export | install")
      ->required()
      ->check(CLI::IsMember({"init", "show", "export", "install"}));
  c->add_option("--ca-dir", cfg.ca_dir, "directory of the CA");
  c->add_option("--ca-cert", cfg.ca_cert, "an existing CA certificate (PEM)");
  c->add_option("--ca-key", cfg.ca_key, "its key (PEM)");
  c->add_option("--format", opt.format, "export: pem, der or p12 (a Java-readable PKCS#12 truststore)")
      ->capture_default_str()
      ->check(CLI::IsMember({"pem", "der", "p12"}));
  c->add_option("-o,--output", opt.output, "export: write to FILE instead of stdout");
  c->add_option("--password", opt.password, "p12 export and the Java recipe: the store password")
      ->capture_default_str();
  c->add_option("--print", opt.print, "install: print the commands for system, java, nss, python or node")
      ->check(CLI::IsMember({"system", "java", "nss", "python", "node"}));
  c->add_option("--nssdb", opt.nssdb, "install nss: the NSS database directory (default ~/.pki/nssdb)");
  c->add_option("--keystore", opt.keystore, "install java: the truststore to create (default beside the CA)");
  return c;
}

namespace {

// What a TOML value must be to set an option, read off the option's CLI11 definition.
enum class Takes { Boolean, Integer, Unsigned, Number, String, List };

std::optional<Takes> takes(const CLI::Option& o) {
  if (o.get_expected_max() == 0) return Takes::Boolean;  // a flag
  const std::string full = o.get_type_name();
  const std::string type = full.substr(0, full.find(':'));  // validators append ":{a,b}"
  if (type == "INT") return Takes::Integer;
  if (type == "UINT") return Takes::Unsigned;
  if (type == "FLOAT") return Takes::Number;
  if (type == "TEXT") return o.get_delimiter() != '\0' ? Takes::List : Takes::String;
  return std::nullopt;
}

std::string_view describe(Takes t) {
  switch (t) {
    case Takes::Boolean: return "a boolean (true or false)";
    case Takes::Integer: return "an integer";
    case Takes::Unsigned: return "a non-negative integer";
    case Takes::Number: return "a number";
    case Takes::String: return "a string";
    case Takes::List: break;
  }
  return "a string or an array of strings";
}

bool accepts(Takes t, const config::FileEntry& e) {
  using config::ValueType;
  switch (t) {
    case Takes::Boolean: return e.type == ValueType::Boolean;
    case Takes::Integer: return e.type == ValueType::Integer;
    // CLI11 reads "-1" into an unsigned option as its largest value; a file is refused.
    case Takes::Unsigned: return e.type == ValueType::Integer && !e.values.front().starts_with('-');
    case Takes::Number: return e.type == ValueType::Integer || e.type == ValueType::Float;
    case Takes::String: return e.type == ValueType::String;
    case Takes::List: break;
  }
  return e.type == ValueType::String || (e.type == ValueType::Array && e.element_type == ValueType::String);
}

// A file may set the named options other than --help and --config.
bool settable(const CLI::App& cmd, const CLI::Option* o) {
  return o != cmd.get_help_ptr() && o != cmd.get_help_all_ptr() && !o->get_lnames().empty() &&
         o->get_lnames().front() != "config";
}

std::vector<std::string> keyNames(const CLI::App& cmd) {
  std::vector<std::string> out;
  for (const CLI::Option* o : cmd.get_options())
    if (settable(cmd, o)) out.push_back(o->get_lnames().front());
  return out;
}

std::string joined(std::vector<std::string>::const_iterator b, std::vector<std::string>::const_iterator e, char sep) {
  std::string out;
  for (auto i = b; i != e; ++i) out += (i == b ? "" : std::string(1, sep)) + *i;
  return out;
}

struct Setting {
  CLI::Option* opt;
  const config::FileEntry* entry;
};

// Which option of `cmd` an entry sets (nullptr for the tables of other commands, which are
// checked against those commands but not applied); throws for unknown keys and wrong types.
CLI::Option* resolve(CLI::App& cmd, CLI::App& root, const config::FileEntry& e) {
  std::vector<std::string> commands;
  // Nameless subcommands (CLI11 groups options that way) have no table.
  for (CLI::App* sc : root.get_subcommands([](CLI::App* a) { return !a->get_name().empty(); }))
    commands.push_back(sc->get_name());
  CLI::App* target = &cmd;
  auto first = e.path.begin();
  std::string table;
  if (e.path.size() >= 2 && std::find(commands.begin(), commands.end(), e.path.front()) != commands.end()) {
    table = e.path.front();
    target = root.get_subcommand(table);
    ++first;
  }
  const std::string key = joined(first, e.path.end(), '-');
  const std::string shown = joined(first, e.path.end(), '.');
  CLI::Option* opt = nullptr;
  for (CLI::Option* o : target->get_options())
    if (settable(*target, o) && o->check_lname(key)) opt = o;
  if (!opt) {
    if (table.empty() && e.path.size() >= 2) {
      if (auto cmd_name = config::nearest(e.path.front(), commands); !cmd_name.empty())
        throw CLI::ConfigError(e.key_at + ": unknown table [" + e.path.front() + "]; did you mean [" + cmd_name + "]?");
    }
    std::string msg = e.key_at + ": unknown key '" + shown + "'";
    if (!table.empty()) msg += " in [" + table + "]";
    if (auto near = config::nearest(key, keyNames(*target)); !near.empty()) msg += "; did you mean '" + near + "'?";
    throw CLI::ConfigError(msg);
  }
  const auto t = takes(*opt);
  if (!t) throw CLI::ConfigError(e.key_at + ": '" + shown + "' cannot be set from a config file");
  if (!accepts(*t, e))
    throw CLI::ConfigError(
        e.value_at + ": '" + shown + "' takes " + std::string(describe(*t)) + ", not " +
        (e.type == config::ValueType::Integer ? e.values.front() : std::string(config::describe(e.type))));
  return target == &cmd ? opt : nullptr;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> configKeys(const CLI::App& cmd) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const CLI::Option* o : cmd.get_options()) {
    if (!settable(cmd, o)) continue;
    const auto t = takes(*o);
    out.emplace_back(o->get_lnames().front(), t ? std::string(describe(*t)) : std::string());
  }
  return out;
}

void applyConfigFiles(CLI::App& cmd, const CliState& st) {
  CLI::App* root = &cmd;
  while (root->get_parent() != nullptr) root = root->get_parent();
  // Every key of every file is checked before any is applied, so a mistake is reported even where a
  // later file or the command line overrides that key.
  std::vector<std::vector<config::FileEntry>> files;
  std::vector<std::vector<Setting>> settings;
  for (const auto& file : st.config_files) {
    std::string err;
    auto entries = config::readConfigFile(file, err);
    if (!entries) throw CLI::ConfigError(err);
    files.push_back(std::move(*entries));
  }
  for (const auto& entries : files) {
    std::vector<Setting> s;
    std::map<const CLI::Option*, std::string> seen;  // `a.b` and `a-b` name the same option
    for (const auto& e : entries) {
      CLI::Option* opt = resolve(cmd, *root, e);
      if (!opt) continue;
      if (auto [it, fresh] = seen.emplace(opt, e.key_at); !fresh)
        throw CLI::ConfigError(e.key_at + ": '" + opt->get_lnames().front() + "' is already set at " + it->second);
      s.push_back({opt, &e});
    }
    settings.push_back(std::move(s));
  }
  // Later files first: an option is only set while nothing (command line, later file) has.
  for (auto f = settings.rbegin(); f != settings.rend(); ++f) {
    for (const Setting& s : *f) {
      if (s.opt->count() > 0) continue;
      try {
        if (s.entry->values.empty()) s.opt->add_result(std::string());  // `= []`: the empty list
        for (const auto& v : s.entry->values) s.opt->add_result(v);
        s.opt->run_callback();  // CLI11's own validators and conversions, as for the command line
      } catch (const CLI::ParseError& e) {
        throw CLI::ConfigError(s.entry->value_at + ": " + e.what());
      }
    }
  }
}

void finishConfig(config::ProxyConfig& cfg, const CliState& st) {
  std::string err;
  // A bare port ("-l 8080") listens on loopback, like the default.
  const bool bare_port =
      !st.listen.empty() && st.listen.size() <= 5 && st.listen.find_first_not_of("0123456789") == std::string::npos;
  auto listen = config::parseHostPort(bare_port ? "127.0.0.1:" + st.listen : st.listen, err, 0, true);
  if (!listen) throw CLI::ValidationError("--listen", err);
  cfg.listen = *listen;
  cfg.mode = config::parseMode(st.mode).value_or(config::Mode::Explicit);
  if (!st.upstream.empty()) {
    auto up = config::parseHostPort(st.upstream, err);
    if (!up) throw CLI::ValidationError("--upstream", err);
    cfg.upstream = *up;
  }
  if (cfg.ca_dir.empty()) cfg.ca_dir = pki::defaultCaDir();
  if (!st.ui.empty()) {
    auto ui = config::parseHostPort(st.ui, err, 0, true);
    if (!ui) throw CLI::ValidationError("--ui", err);
    cfg.ui = *ui;
  }
}

}  // namespace tlstrace::app
