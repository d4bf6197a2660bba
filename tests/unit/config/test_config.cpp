#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

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

TEST_CASE("a connect timeout the handshake timeout would cut short is refused") {
  ProxyConfig c;
  c.connect_timeout_s = c.handshake_timeout_s;  // equal: the connect timer still fires first
  CHECK(c.validate().empty());
  c.connect_timeout_s = 30;
  c.handshake_timeout_s = 2.5;
  const auto errs = c.validate();
  REQUIRE(errs.size() == 1);
  CHECK(errs[0] ==
        "--connect-timeout (30 s) is longer than --handshake-timeout (2.5 s), which also bounds the upstream "
        "connect: lower it or raise --handshake-timeout");
}

TEST_CASE("only loopback and private clients are local (the --allow-remote default)") {
  for (const char* ip : {"127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                         "169.254.3.4", "100.64.0.1", "::1", "fd00::1", "fe80::1", "::ffff:192.168.0.7"}) {
    CAPTURE(ip);
    CHECK(isLocalAddress(ip));
  }
  for (const char* ip :
       {"8.8.8.8", "172.32.0.1", "192.169.0.1", "100.128.0.1", "2001:db8::1", "::ffff:8.8.8.8", "not-an-ip", ""}) {
    CAPTURE(ip);
    CHECK_FALSE(isLocalAddress(ip));
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
