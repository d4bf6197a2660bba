#include <doctest/doctest.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "app/ca_run.h"
#include "app/cli.h"

using namespace tlstrace;

namespace {
struct Parsed {
  config::ProxyConfig cfg;
  app::CliState st;
};

Parsed parse(std::vector<std::string> args) {
  Parsed p;
  CLI::App app;
  CLI::App* proxy = app::addProxyCommand(app, p.cfg, p.st);
  app::CaOptions ca_opt;
  app::addCaCommand(app, p.cfg, ca_opt);  // as in main: [ca] is a known table
  args.insert(args.begin(), "proxy");
  std::reverse(args.begin(), args.end());
  app.parse(args);  // CLI11 takes a reversed vector
  app::applyConfigFiles(*proxy, p.st);
  app::finishConfig(p.cfg, p.st);
  return p;
}

// A config file that removes itself.
struct TempToml {
  std::string path;
  explicit TempToml(const std::string& text) {
    char tmpl[] = "/tmp/tlstrace-cfg-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = tmpl;
    std::ofstream(path) << text;
  }
  ~TempToml() { ::unlink(path.c_str()); }
  TempToml(const TempToml&) = delete;
  TempToml& operator=(const TempToml&) = delete;
};

// The message parse() throws for this file, or "" when it loads.
std::string configError(const TempToml& f, std::vector<std::string> more = {}) {
  more.insert(more.begin(), {"--config", f.path});
  try {
    (void)parse(more);
  } catch (const CLI::Error& e) {
    return e.what();
  }
  return {};
}
}  // namespace

TEST_CASE("defaults follow cli.md") {
  auto p = parse({});
  CHECK(p.cfg.listen.str() == "127.0.0.1:8080");
  CHECK(p.cfg.mode == config::Mode::Explicit);
  CHECK(p.cfg.trace == "tcp,handshake,keyexchange,trust");
  CHECK(p.cfg.max_connections == 10000);
  CHECK(p.cfg.handshake_timeout_s == 10);
  CHECK(p.cfg.idle_timeout_s == 300);
  CHECK_FALSE(p.cfg.insecure);
  CHECK_FALSE(p.cfg.ca_dir.empty());
}

TEST_CASE("reverse mode and per-leg options") {
  auto p = parse({"-m", "reverse", "-u", "localhost:8443", "--client-tls-max", "1.2", "--upstream-groups", "X25519",
                  "--insecure", "-l", "[::1]:9000"});
  CHECK(p.cfg.mode == config::Mode::Reverse);
  REQUIRE(p.cfg.upstream);
  CHECK(p.cfg.upstream->port == 8443);
  CHECK(p.cfg.client_tls.max_version == "1.2");
  CHECK(p.cfg.upstream_tls.groups == "X25519");
  CHECK(p.cfg.insecure);
  CHECK(p.cfg.listen.host == "::1");
  CHECK(p.cfg.validate().empty());
}

TEST_CASE("bad values are refused") {
  CHECK_THROWS(parse({"-m", "transparent-ish"}));
  CHECK_THROWS(parse({"-l", "localhost"}));
  CHECK_THROWS(parse({"-m", "reverse", "-u", "nope"}));
  CHECK_THROWS(parse({"--max-connections", "many"}));
}

TEST_CASE("options come from a TOML config file; the command line wins") {
  TempToml f(
      "# comment\nmode = \"reverse\"\nupstream = \"origin.test:443\"  # inline\n"
      "idle-timeout = 30\ninsecure = true\nlog-secrets = false\n[ca]\nca-dir = \"/elsewhere\"\n");
  auto p = parse({"--config", f.path, "--idle-timeout", "45"});
  CHECK(p.cfg.mode == config::Mode::Reverse);
  CHECK(p.cfg.upstream->host == "origin.test");
  CHECK(p.cfg.idle_timeout_s == 45);
  CHECK(p.cfg.insecure);
  CHECK_FALSE(p.cfg.log_secrets);
  CHECK(p.cfg.ca_dir != "/elsewhere");  // [ca] is the ca command's
  // Also when the command line comes first, and for flags and list options.
  p = parse({"--trace", "keys", "--config", f.path});
  CHECK(p.cfg.trace == "keys");
  CHECK(p.cfg.idle_timeout_s == 30);
}

TEST_CASE("[proxy] tables, arrays, inline tables, dotted keys and comments") {
  TempToml f(R"(# top comment
[proxy]   # the proxy command
listen = "127.0.0.1:9999"
trace = ["tcp", "handshake",  # arrays may span lines
         "keys"]
client-groups = ["X25519", "P-256"]
upstream-ciphersuites = "TLS_AES_128_GCM_SHA256"
client = { tls-min = "1.2", ciphers = ["ECDHE+AESGCM", "ECDHE+CHACHA20"] }
upstream.tls-max = "1.3"
handshake-timeout = 2.5
connect-timeout = 3
max-connections = 1_000
)");
  auto p = parse({"--config", f.path});
  CHECK(p.cfg.listen.port == 9999);
  CHECK(p.cfg.trace == "tcp,handshake,keys");
  CHECK(p.cfg.client_tls.groups == "X25519:P-256");
  CHECK(p.cfg.upstream_tls.ciphersuites == "TLS_AES_128_GCM_SHA256");
  CHECK(p.cfg.client_tls.min_version == "1.2");
  CHECK(p.cfg.client_tls.ciphers == "ECDHE+AESGCM:ECDHE+CHACHA20");
  CHECK(p.cfg.upstream_tls.max_version == "1.3");
  CHECK(p.cfg.handshake_timeout_s == 2.5);
  CHECK(p.cfg.connect_timeout_s == 3);
  CHECK(p.cfg.max_connections == 1000);
  // A [proxy] table given inline is the same table.
  TempToml g("proxy = { mode = \"reverse\", upstream = \"o.test:443\" }\n");
  CHECK(parse({"--config", g.path}).cfg.upstream->host == "o.test");
  // Lists still take one ':'- or ','-separated string on the command line.
  p = parse({"--client-groups", "X25519:P-384", "--trace", "tcp,keys"});
  CHECK(p.cfg.client_tls.groups == "X25519:P-384");
  CHECK(p.cfg.trace == "tcp,keys");
}

TEST_CASE("a later config file wins over an earlier one, the command line over both") {
  TempToml a("[proxy]\nidle-timeout = 1\nconnect-timeout = 1\nthreads = 1\n");
  TempToml b("[proxy]\nidle-timeout = 2\nconnect-timeout = 2\n");
  auto p = parse({"--config", a.path, "--config", b.path, "--idle-timeout", "3"});
  CHECK(p.cfg.idle_timeout_s == 3);
  CHECK(p.cfg.connect_timeout_s == 2);
  CHECK(p.cfg.threads == 1);
}

TEST_CASE("an unknown key names the file, line, column and the nearest valid key") {
  TempToml f("[proxy]\nlisten = \"127.0.0.1:1\"\n  listen-port = 8080\n");
  auto err = configError(f);
  CHECK(err == f.path + ":3:3: unknown key 'listen-port' in [proxy]; did you mean 'listen'?");
  TempToml top("idle_timeout = 5\n");  // top-level keys are the proxy's too
  CHECK(configError(top) == top.path + ":1:1: unknown key 'idle_timeout'; did you mean 'idle-timeout'?");
  TempToml nested("[proxy.client]\ntls-mn = \"1.2\"\n");
  CHECK(configError(nested) ==
        nested.path + ":2:1: unknown key 'client.tls-mn' in [proxy]; did you mean 'client-tls-min'?");
  TempToml table("[proxxy]\nlisten = \"127.0.0.1:1\"\n");
  CHECK(configError(table) == table.path + ":2:1: unknown table [proxxy]; did you mean [proxy]?");
  TempToml nothing_near("[proxy]\nwibble = 1\n");
  CHECK(configError(nothing_near) == nothing_near.path + ":2:1: unknown key 'wibble' in [proxy]");
  TempToml other_cmd("[ca]\nca-dri = \"x\"\n");  // other commands' tables are checked too
  CHECK(configError(other_cmd) == other_cmd.path + ":2:1: unknown key 'ca-dri' in [ca]; did you mean 'ca-dir'?");
  TempToml recursive("config = \"other.toml\"\n");
  CHECK(configError(recursive).find(":1:1: unknown key 'config'") != std::string::npos);
}

TEST_CASE("a value of the wrong type names the file, line, key and expected type") {
  struct Row {
    const char* toml;
    const char* message;
  };
  for (const Row& r : {
           Row{"[proxy]\nmax-connections = \"many\"\n",
               ":2:19: 'max-connections' takes a non-negative integer, not a string"},
           Row{"[proxy]\nthreads = -1\n", ":2:11: 'threads' takes a non-negative integer, not -1"},
           Row{"[proxy]\ninsecure = \"yes\"\n", ":2:12: 'insecure' takes a boolean (true or false), not a string"},
           Row{"[proxy]\nidle-timeout = true\n", ":2:16: 'idle-timeout' takes a number, not a boolean"},
           Row{"[proxy]\nthreads = 1.5\n", ":2:11: 'threads' takes a non-negative integer, not a float"},
           Row{"[proxy]\nclient-tls-max = 1.2\n", ":2:18: 'client-tls-max' takes a string, not a float"},
           Row{"[proxy]\nlisten = [\"a:1\"]\n", ":2:10: 'listen' takes a string, not an array"},
           Row{"[proxy]\nclient-groups = [1, 2]\n",
               ":2:17: 'client-groups' takes a string or an array of strings, not an array"},
           Row{"[proxy]\nlog = 1979-05-27\n", ":2:7: 'log' takes a string, not a date or time"},
       }) {
    CAPTURE(r.toml);
    TempToml f(r.toml);
    CHECK(configError(f) == f.path + r.message);
  }
  // Values of the right type still go through the option's own checks, with the place.
  TempToml bad_mode("[proxy]\nmode = \"sideways\"\n");
  const auto err = configError(bad_mode);
  CHECK(err.starts_with(bad_mode.path + ":2:8: "));
  CHECK(err.find("sideways") != std::string::npos);
  TempToml twice("[proxy]\nclient-tls-min = \"1.2\"\nclient.tls-min = \"1.3\"\n");
  CHECK(configError(twice) == twice.path + ":3:8: 'client-tls-min' is already set at " + twice.path + ":2:1");
}

TEST_CASE("malformed config files are refused with the line number") {
  TempToml unquoted("mode = reverse\n");
  CHECK(configError(unquoted).starts_with(unquoted.path + ":1:"));
  TempToml header("listen = \"127.0.0.1:1\"\n[x\n");
  CHECK(configError(header).starts_with(header.path + ":2:"));
  TempToml open("k = \"open\n");
  CHECK(configError(open).starts_with(open.path + ":1:"));
  CHECK_THROWS_AS(parse({"--config", "/nonexistent/x.toml"}), CLI::ConfigError);
}

TEST_CASE("every proxy option can be set from a config file") {
  CLI::App app;
  config::ProxyConfig cfg;
  app::CliState st;
  CLI::App* proxy = app::addProxyCommand(app, cfg, st);
  const auto keys = app::configKeys(*proxy);
  CHECK(keys.size() > 30);
  for (const auto& [key, type] : keys) {
    CAPTURE(key);
    CHECK_FALSE(type.empty());  // a new option type needs a TOML mapping in cli.cpp
  }
}

TEST_CASE("every example config file in config/ loads and validates") {
  std::vector<std::filesystem::path> files;
  // (policy-*.toml are policies, for --policy: tests/unit/config/test_policy.cpp reads them.)
  for (const auto& e : std::filesystem::directory_iterator(std::string(TLSTRACE_SOURCE_DIR) + "/config"))
    if (e.path().extension() == ".toml" && e.path().filename().string().rfind("policy-", 0) != 0)
      files.push_back(e.path());
  CHECK(files.size() >= 2);
  for (const auto& path : files) {
    CAPTURE(path);
    auto p = parse({"--config", path.string()});
    CHECK(p.cfg.validate().empty());
  }
}

TEST_CASE("--backlog: listen(2)'s backlog, from the command line or the config key, 1 to 65535") {
  CHECK(parse({}).cfg.backlog == 4096);
  CHECK(parse({"--backlog", "16"}).cfg.backlog == 16);
  TempToml f("backlog = 3\n");
  CHECK(parse({"--config", f.path}).cfg.backlog == 3);
  config::ProxyConfig c;
  c.backlog = 0;
  const auto errs = c.validate();
  CHECK(std::count(errs.begin(), errs.end(), "--backlog must be from 1 to 65535") == 1);
}

TEST_CASE("--mode socks5: --proxy-auth is its RFC 1929 username and password; no --upstream") {
  auto p = parse({"-m", "socks5", "--proxy-auth", "alice:s3cret"});
  CHECK(p.cfg.mode == config::Mode::Socks5);
  CHECK(p.cfg.validate().empty());
  TempToml f("mode = \"socks5\"\nproxy-auth = \"alice:s3cret\"\n");
  CHECK(parse({"--config", f.path}).cfg.mode == config::Mode::Socks5);
  const auto up = parse({"-m", "socks5", "-u", "localhost:443"}).cfg.validate();
  CHECK(std::count(up.begin(), up.end(), "--upstream is only used with --mode reverse") == 1);
  const auto rev = parse({"-m", "reverse", "-u", "localhost:443", "--proxy-auth", "a:b"}).cfg.validate();
  CHECK(std::count(rev.begin(), rev.end(), "--proxy-auth is for --mode explicit or socks5") == 1);
  CHECK(config::modeName(config::Mode::Socks5) == "socks5");
}
