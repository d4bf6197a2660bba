#include <doctest/doctest.h>

#include "config/config.h"

using namespace tlstrace::config;

TEST_CASE("host:port parsing") {
  struct Row {
    const char* in;
    std::uint16_t def;
    bool ok;
    const char* host;
    std::uint16_t port;
  };
  const Row rows[] = {
      {"example.com:443", 0, true, "example.com", 443},
      {"127.0.0.1:8080", 0, true, "127.0.0.1", 8080},
      {"[::1]:8443", 0, true, "::1", 8443},
      {"example.com", 80, true, "example.com", 80},
      {"example.com", 0, false, "", 0},
      {"example.com:0", 0, false, "", 0},
      {"example.com:65536", 0, false, "", 0},
      {"example.com:12ab", 0, false, "", 0},
      {":443", 0, false, "", 0},
      {"::1:443", 0, false, "", 0},
      {"[::1", 0, false, "", 0},
      {"a b:443", 0, false, "", 0},
      {"evil/path:443", 0, false, "", 0},
  };
  for (const auto& r : rows) {
    CAPTURE(r.in);
    std::string err;
    auto hp = parseHostPort(r.in, err, r.def);
    CHECK(hp.has_value() == r.ok);
    if (hp && r.ok) {
      CHECK(hp->host == r.host);
      CHECK(hp->port == r.port);
    }
    if (!r.ok) CHECK_FALSE(err.empty());
  }
  std::string err;
  CHECK(parseHostPort("[::1]:443", err)->str() == "[::1]:443");
}

TEST_CASE("validation names each problem") {
  ProxyConfig c;
  CHECK(c.validate().empty());
  c.mode = Mode::Reverse;
  auto errs = c.validate();
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].find("--upstream") != std::string::npos);
  c.upstream = HostPort{"localhost", 443};
  CHECK(c.validate().empty());
  c.ca_cert = "x.pem";
  c.idle_timeout_s = 0;
  CHECK(c.validate().size() == 2);
}
