#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "config/address.h"
#include "config/config.h"
#include "config/config_file.h"

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

TEST_CASE("a connect timeout the handshake timeout would cut short is reported") {
  ProxyConfig c;
  c.connect_timeout_s = c.handshake_timeout_s;  // equal: the connect timer still fires first
  CHECK(c.warnings().empty());
  c.connect_timeout_s = 30;
  c.handshake_timeout_s = 2.5;
  CHECK(c.validate().empty());  // usable: the handshake timeout bounds the connect
  const auto w = c.warnings();
  REQUIRE(w.size() == 1);
  CHECK(w[0] ==
        "--connect-timeout (30 s) is longer than --handshake-timeout (2.5 s), which also bounds the upstream "
        "connect: a connect gets at most 2.5 s");
}

TEST_CASE("address classes for the exposure rules, at the edges of each range (RFC 6890 registries)") {
  using C = AddressClass;
  const std::pair<const char*, C> table[] = {
      {"127.0.0.1", C::Loopback},
      {"127.255.255.255", C::Loopback},
      {"126.255.255.255", C::Other},
      {"128.0.0.0", C::Other},
      {"::1", C::Loopback},
      {"::2", C::Other},
      {"::ffff:127.0.0.1", C::Loopback},
      {"0.0.0.0", C::Unspecified},
      {"0.255.255.255", C::Unspecified},
      {"1.0.0.0", C::Other},
      {"::", C::Unspecified},
      {"::ffff:0.0.0.0", C::Unspecified},
      {"169.254.0.0", C::LinkLocal},
      {"169.254.169.254", C::LinkLocal},
      {"169.255.0.1", C::Other},
      {"169.253.255.255", C::Other},
      {"fe80::1", C::LinkLocal},
      {"febf:ffff::1", C::LinkLocal},
      {"fec0::1", C::Other},
      {"fe7f::1", C::Other},
      {"10.0.0.0", C::Private},
      {"10.255.255.255", C::Private},
      {"11.0.0.0", C::Other},
      {"172.16.0.0", C::Private},
      {"172.31.255.255", C::Private},
      {"172.15.255.255", C::Other},
      {"172.32.0.0", C::Other},
      {"192.168.0.1", C::Private},
      {"192.169.0.1", C::Other},
      {"192.167.255.255", C::Other},
      {"fc00::1", C::Private},
      {"fd00::1", C::Private},
      {"fdff:ffff::1", C::Private},
      {"fe00::1", C::Other},
      {"fbff::1", C::Other},
      {"::ffff:192.168.0.7", C::Private},
      {"100.64.0.0", C::SharedCgnat},
      {"100.127.255.255", C::SharedCgnat},
      {"100.63.255.255", C::Other},
      {"100.128.0.0", C::Other},
      {"8.8.8.8", C::Other},
      {"2001:db8::1", C::Other},
      {"::127.0.0.1", C::Other},
      {"::ffff:8.8.8.8", C::Other},
  };
  for (const auto& [text, want] : table) {
    CAPTURE(text);
    const auto ip = parseIp(text);
    REQUIRE(ip);
    CHECK(classify(*ip) == want);
  }
  for (const char* bad : {"not-an-ip", "", "[::1]", "127.0.0.1:80", "1.2.3", "fe80::1%lo"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseIp(bad));
  }
}

TEST_CASE("IPv4-mapped addresses are the IPv4 address they reach (RFC 4291 2.5.5.2)") {
  CHECK(*parseIp("::ffff:10.1.2.3") == *parseIp("10.1.2.3"));
  CHECK(parseIp("::ffff:10.1.2.3")->str() == "10.1.2.3");
  CHECK(parseIp("::10.1.2.3")->v6);  // IPv4-compatible (deprecated, RFC 4291 2.5.5.1) stays IPv6
  const std::uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  CHECK(ipFromBytes(mapped)->str() == "127.0.0.1");
  const std::uint8_t five[5] = {};
  CHECK_FALSE(ipFromBytes(five));
}

TEST_CASE("targets a non-loopback client may not reach: loopback, link-local, unspecified, own addresses") {
  const std::vector<IpAddress> own = {*parseIp("10.1.2.3"), *parseIp("fd00::1")};
  const std::pair<const char*, const char*> refused[] = {
      {"127.0.0.1", "127.0.0.1 is loopback"},
      {"127.8.9.10", "127.8.9.10 is loopback"},
      {"::1", "::1 is loopback"},
      {"::ffff:127.0.0.1", "127.0.0.1 is loopback"},
      {"0.0.0.0", "0.0.0.0 is unspecified"},
      {"::", ":: is unspecified"},
      {"169.254.169.254", "169.254.169.254 is link-local"},
      {"fe80::1", "fe80::1 is link-local"},
      {"10.1.2.3", "10.1.2.3 is the proxy's own address"},
      {"::ffff:10.1.2.3", "10.1.2.3 is the proxy's own address"},
      {"fd00::1", "fd00::1 is the proxy's own address"},
  };
  for (const auto& [text, why] : refused) {
    CAPTURE(text);
    const auto no = forbiddenTarget(*parseIp(text), own);
    REQUIRE(no);
    CHECK(*no == why);
  }
  // Other private, shared and public addresses are ordinary targets (a company's 10.x servers).
  for (const char* ok : {"10.1.2.4", "192.168.1.1", "100.64.1.1", "fd00::2", "8.8.8.8", "2001:db8::1"}) {
    CAPTURE(ok);
    CHECK_FALSE(forbiddenTarget(*parseIp(ok), own));
  }
}

TEST_CASE("a non-loopback --listen address needs --allow-remote") {
  for (const char* host : {"0.0.0.0", "::", "10.1.2.3", "fd00::1", "192.168.0.1"}) {
    CAPTURE(host);
    ProxyConfig c;
    c.listen.host = host;
    const auto errs = c.validate();
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].find("--allow-remote") != std::string::npos);
    c.allow_remote = true;
    CHECK(c.validate().empty());
  }
  for (const char* host : {"127.0.0.1", "127.0.0.2", "::1", "localhost"}) {  // a name is checked once resolved
    CAPTURE(host);
    ProxyConfig c;
    c.listen.host = host;
    CHECK(c.validate().empty());
  }
}

TEST_CASE("base64 for Basic proxy credentials (RFC 4648 test vectors)") {
  CHECK(base64("") == "");
  CHECK(base64("f") == "Zg==");
  CHECK(base64("fo") == "Zm8=");
  CHECK(base64("foo") == "Zm9v");
  CHECK(base64("foob") == "Zm9vYg==");
  CHECK(base64("fooba") == "Zm9vYmE=");
  CHECK(base64("foobar") == "Zm9vYmFy");
  CHECK(base64("alice:s3cret") == "YWxpY2U6czNjcmV0");
}

TEST_CASE("connections per io thread and the connection limit that fits a descriptor table") {
  struct Row {
    std::size_t max, threads, per_thread;
  };
  for (const Row& r : {Row{10000, 1, 10000}, Row{10000, 2, 5001}, Row{10001, 2, 5001}, Row{400, 2, 201}, Row{1, 2, 1},
                       Row{2, 2, 2}, Row{3, 2, 2}, Row{10, 4, 3}, Row{0, 2, 0}}) {
    CAPTURE(r.max);
    CAPTURE(r.threads);
    CHECK(connectionsPerThread(r.max, r.threads) == r.per_thread);
  }
  // The inverse is the largest limit whose share fits: one more would not.
  for (std::size_t threads = 1; threads <= 4; ++threads)
    for (std::size_t per = 1; per <= 300; ++per) {
      CAPTURE(threads);
      CAPTURE(per);
      const std::size_t fits = maxConnectionsFitting(per, threads);
      CHECK(connectionsPerThread(fits, threads) <= per);
      CHECK(connectionsPerThread(fits + 1, threads) > per);
    }
  CHECK(maxConnectionsFitting(68, 2) == 135);  // a hard limit of 200: (200 - 64) / 2 per table
  CHECK(maxConnectionsFitting(9968, 2) >= 10000);
}

TEST_CASE("the per-thread bound holds when closes happen between choosing a thread and accepting") {
  // The server hands the next accept to the least loaded thread as soon as one connection is in;
  // the next arrives later, after any number of closes. Play that out at random and check that no
  // thread ever holds more than connectionsPerThread() and the total never exceeds the limit.
  for (std::size_t threads = 2; threads <= 3; ++threads)
    for (std::size_t max : {std::size_t{4}, std::size_t{7}, std::size_t{50}}) {
      std::vector<std::size_t> live(threads, 0);
      std::size_t total = 0, next = 0, peak = 0;
      unsigned rng = 12345;
      auto rand = [&rng] { return rng = rng * 1103515245u + 12345u, (rng >> 16) & 0x7fff; };
      for (int step = 0; step < 20000; ++step) {
        if (rand() % 3 == 0) {  // a close on some thread
          const std::size_t t = rand() % threads;
          if (live[t] > 0) --live[t], --total;
          continue;
        }
        if (total >= max) continue;  // refused
        ++live[next];
        ++total;
        peak = std::max(peak, live[next]);
        std::size_t best = (next + 1) % threads;
        for (std::size_t k = 2; k <= threads; ++k)
          if (live[(next + k) % threads] < live[best]) best = (next + k) % threads;
        next = best;
      }
      CAPTURE(threads);
      CAPTURE(max);
      CHECK(peak <= connectionsPerThread(max, threads));
      CHECK(peak == connectionsPerThread(max, threads));  // and it is reached, so it is tight
    }
}

TEST_CASE("config files flatten to entries in file order, with where each key and value is") {
  std::string err;
  auto entries = parseConfigText(R"(# comment
top = 1
[proxy]  # a table
trace = ["tcp", "keys"]   # an array
client = { tls-min = "1.2", on = true }
upstream.groups = "X25519"
timeout = 2.5
empty = []
mixed = ["a", 1]
)",
                                 "f.toml", err);
  REQUIRE_MESSAGE(entries, err);
  REQUIRE(entries->size() == 8);
  const auto& e = *entries;
  CHECK(e[0].path == std::vector<std::string>{"top"});
  CHECK(e[0].type == ValueType::Integer);
  CHECK(e[0].values == std::vector<std::string>{"1"});
  CHECK(e[0].key_at == "f.toml:2:1");
  CHECK(e[1].path == std::vector<std::string>{"proxy", "trace"});
  CHECK(e[1].type == ValueType::Array);
  CHECK(e[1].element_type == ValueType::String);
  CHECK(e[1].values == std::vector<std::string>{"tcp", "keys"});
  CHECK(e[1].value_at == "f.toml:4:9");
  CHECK(e[2].path == std::vector<std::string>{"proxy", "client", "tls-min"});
  CHECK(e[2].values == std::vector<std::string>{"1.2"});
  CHECK(e[3].path == std::vector<std::string>{"proxy", "client", "on"});
  CHECK(e[3].values == std::vector<std::string>{"true"});
  CHECK(e[3].key_at == "f.toml:5:29");
  CHECK(e[4].path == std::vector<std::string>{"proxy", "upstream", "groups"});
  CHECK(e[5].type == ValueType::Float);
  CHECK(e[5].values == std::vector<std::string>{"2.5"});
  CHECK(e[6].values.empty());
  CHECK(e[6].element_type == ValueType::String);
  CHECK(e[7].element_type == ValueType::Other);
}

TEST_CASE("malformed TOML names file, line and column") {
  std::string err;
  CHECK_FALSE(parseConfigText("a = 1\nb = unquoted\n", "x.toml", err));
  CHECK(err.starts_with("x.toml:2:"));
  CHECK_FALSE(parseConfigText("a = 1\na = 2\n", "x.toml", err));  // duplicate keys
  CHECK(err.starts_with("x.toml:2:"));
  CHECK_FALSE(readConfigFile("/nonexistent/x.toml", err));
  CHECK(err.starts_with("/nonexistent/x.toml: cannot read"));
}

TEST_CASE("the nearest key for 'did you mean'") {
  CHECK(editDistance("", "") == 0);
  CHECK(editDistance("kitten", "sitting") == 3);
  CHECK(editDistance("listen-port", "listen") == 5);
  const std::vector<std::string> keys{"listen",       "mode",           "upstream",
                                      "idle-timeout", "client-tls-min", "upstream-tls-min"};
  CHECK(nearest("listen-port", keys) == "listen");
  CHECK(nearest("lisen", keys) == "listen");
  CHECK(nearest("idle_timeout", keys) == "idle-timeout");
  CHECK(nearest("client-tls-mn", keys) == "client-tls-min");
  CHECK(nearest("xyz", keys).empty());
  CHECK(nearest("anything", {}).empty());
}
