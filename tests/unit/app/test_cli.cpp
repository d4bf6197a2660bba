#include <doctest/doctest.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>

#include "app/cli.h"
#include "config/toml.h"

using namespace tlstrace;

namespace {
struct Parsed {
  config::ProxyConfig cfg;
  app::CliState st;
};

Parsed parse(std::vector<std::string> args) {
  Parsed p;
  CLI::App app;
  app::addProxyCommand(app, p.cfg, p.st);
  args.insert(args.begin(), "proxy");
  args = app::expandConfigFiles(args);
  std::reverse(args.begin(), args.end());
  app.parse(args);  // CLI11 takes a reversed vector
  app::finishConfig(p.cfg, p.st);
  return p;
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
  auto p = parse({"-m", "reverse", "-u", "localhost:8443", "--client-tls-max", "1.2",
                  "--upstream-groups", "X25519", "--insecure", "-l", "[::1]:9000"});
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
  char path[] = "/tmp/tlstrace-cfg-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  {
    std::ofstream f(path);
    f << "# comment\nmode = \"reverse\"\nupstream = \"origin.test:443\"  # inline\n"
      << "idle-timeout = 30\ninsecure = true\nlog-secrets = false\n[ca]\nca-dir = \"/elsewhere\"\n";
  }
  auto p = parse({"--config", path, "--idle-timeout", "45"});
  ::unlink(path);
  CHECK(p.cfg.mode == config::Mode::Reverse);
  CHECK(p.cfg.upstream->host == "origin.test");
  CHECK(p.cfg.idle_timeout_s == 45);
  CHECK(p.cfg.insecure);
  CHECK_FALSE(p.cfg.log_secrets);
  CHECK(p.cfg.ca_dir != "/elsewhere");
}

TEST_CASE("malformed config files are refused with the line number") {
  std::string err;
  CHECK_FALSE(config::parseToml("mode = reverse\n", err));
  CHECK(err.find("line 1") != std::string::npos);
  CHECK_FALSE(config::parseToml("a = 1\n[x\n", err));
  CHECK(err.find("line 2") != std::string::npos);
  CHECK_FALSE(config::parseToml("k = \"open\n", err));
  CHECK_THROWS(app::expandConfigFiles({"proxy", "--config", "/nonexistent/x.toml"}));
}

TEST_CASE("the example config files in config/ parse and validate") {
  for (const char* name : {"explicit.toml", "reverse.toml"}) {
    CAPTURE(name);
    auto p = parse({"--config", std::string(TLSTRACE_SOURCE_DIR) + "/config/" + name});
    CHECK(p.cfg.validate().empty());
  }
}
