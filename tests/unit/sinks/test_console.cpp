// The console's connection lines and exit summary, rendered from real recorded events:
// tests/data/console/*.jsonl are events files written by tlstrace (tools/event_matrix.py record
// --keep-raw, and runs against openssl s_server / s_client, curl and Python ssl; exposure_*: curl
// from 10.1.2.3 in a network namespace, as tests/integration/exposure_ns.py runs it), with the
// tls.message and tls.record lines left out (the renderer does not read them). Expected values are
// read from the other events of the same file (conn.open, tls.established, conn.close), not typed in.
#include <doctest/doctest.h>

#include <fstream>
#include <string>
#include <vector>

#include "sinks/console.h"
#include "trace/event.h"

using namespace tlstrace;
using trace::Json;

namespace {

struct Recording {
  std::vector<trace::Event> events;
  std::vector<Json> raw;  // the same, as JSON, to read expected values from
};

Recording load(const std::string& name) {
  std::ifstream in(std::string(TLSTRACE_SOURCE_DIR) + "/tests/data/console/" + name + ".jsonl");
  REQUIRE(in.good());
  Recording r;
  std::string line;
  while (std::getline(in, line)) {
    auto j = Json::parse(line);
    REQUIRE(j);
    trace::Event e;
    REQUIRE(trace::fromJson(*j, e));
    r.events.push_back(std::move(e));
    r.raw.push_back(std::move(*j));
  }
  return r;
}

struct Rendered {
  std::vector<std::string> lines;
  sinks::ConsoleTotals totals;
};

Rendered render(const Recording& r, const std::string& ca = "/ca/dir/ca.pem") {
  sinks::ConnectionLines lines(ca);
  std::string out;
  for (const auto& e : r.events) lines.add(e, out);
  Rendered res;
  for (std::size_t at = 0, nl; (nl = out.find('\n', at)) != std::string::npos; at = nl + 1)
    res.lines.push_back(out.substr(at, nl - at));
  res.totals = lines.totals();
  return res;
}

// The first event of a kind (and leg) in the recording, as JSON.
const Json& first(const Recording& r, std::string_view event, std::string_view leg = "", std::uint64_t conn = 0) {
  for (const auto& j : r.raw)
    if (j.find("event")->asString() == event && (leg.empty() || (j.find("leg") && j.find("leg")->asString() == leg)) &&
        (conn == 0 || j.find("conn")->asUint() == conn))
      return j;
  FAIL("no ", std::string(event), " in the recording");
  static Json none;
  return none;
}

std::string s(const Json& j, std::string_view k) { return std::string(j.find(k)->asString()); }

bool has(const std::string& line, const std::string& part) { return line.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a TLS 1.3 connection: both legs, the kex rating, the verdict, bytes and time in one line") {
  const auto rec = load("tls13");
  const auto r = render(rec);
  REQUIRE(r.lines.size() == 1);
  const std::string& l = r.lines[0];
  const Json& open = first(rec, "conn.open");
  const Json& up = first(rec, "tls.established", "upstream");
  const Json& cl = first(rec, "tls.established", "client");
  const Json& close = first(rec, "conn.close");
  CHECK(l.starts_with(s(close, "ts").substr(11, 12) + " #1 " + s(open, "client") + " -> " + s(open, "target")));
  CHECK(has(l, " sni " + s(cl, "sni") + " "));
  CHECK(has(l, "| client " + s(cl, "version") + " " + s(*cl.find("cipher"), "name") + " " + s(cl, "group") + " |"));
  CHECK(has(l, "| upstream " + s(up, "version") + " " + s(*up.find("cipher"), "name") + " " + s(up, "group") + " |"));
  CHECK(has(l, "| kex " + s(first(rec, "tls.key_exchange", "upstream"), "rating") + " |"));
  CHECK(has(l, "| cert verified | ok | "));
  CHECK(has(l, "| " + std::to_string(close.find("bytes_client_to_server")->asUint()) + " B up, " +
                   std::to_string(close.find("bytes_server_to_client")->asUint()) + " B down | "));
  CHECK(l.ends_with(" ms"));
  CHECK(r.totals.connections == 1);
  CHECK(r.totals.ok == 1);
  CHECK(r.totals.failed == 0);
  CHECK(r.totals.weak == 0);
}

TEST_CASE("explicit mode: the CONNECT target; a plain relay has no TLS part; a 407 is a failure") {
  const auto curl = render(load("explicit_curl_connect"));
  REQUIRE(curl.lines.size() == 1);
  CHECK(has(curl.lines[0], "-> " + s(first(load("explicit_curl_connect"), "proxy.request"), "target") + " sni "));
  const auto plain = render(load("explicit_connect_plaintext"));
  REQUIRE(plain.lines.size() == 1);
  CHECK(!has(plain.lines[0], "client "));
  CHECK(has(plain.lines[0], " | ok | 19 B up, 19 B down | "));
  const auto auth = render(load("explicit_proxy_auth"));
  REQUIRE(auth.lines.size() == 2);
  CHECK(has(auth.lines[0], "#1 "));
  CHECK(has(auth.lines[0], "| FAILED proxy_auth_required | "));
  CHECK(has(auth.lines[1], "#2 "));
  CHECK(has(auth.lines[1], "| ok | "));
  CHECK(auth.totals.failures.at("proxy_auth_required") == 1);
}

TEST_CASE("exposure refusals: one line each, at accept (no conn.close) or for a refused target (403)") {
  const auto rec = load("exposure_client_refused");  // a 10.1.2.3 client of a loopback-only proxy
  const auto client = render(rec);
  REQUIRE(client.lines.size() == 1);
  CHECK(has(client.lines[0], s(first(rec, "conn.refused"), "client") + " -> ? | FAILED refused | "));
  CHECK(has(client.lines[0], s(first(rec, "conn.refused"), "reason")));
  const auto trec = load("exposure_target_refused");  // CONNECT and absolute-form to localhost:9
  const auto target = render(trec);
  REQUIRE(target.lines.size() == 2);  // conn.refused inside a connection waits for its conn.close
  for (std::uint64_t conn : {1, 2}) {
    const std::string& line = target.lines[conn - 1];
    CHECK(has(line, "#" + std::to_string(conn) + " " + s(first(trec, "conn.open", "", conn), "client") + " -> " +
                        s(first(trec, "proxy.request", "client", conn), "target") + " | FAILED refused | "));
    CHECK(has(line, s(first(trec, "conn.refused", "", conn), "reason")));
  }
  CHECK(target.totals.failures.at("refused") == 2);
}

TEST_CASE("an unreachable upstream, in both modes, is upstream_unreachable with the connect error") {
  for (const char* name : {"fail_explicit_upstream_refused", "fail_reverse_upstream_refused"}) {
    CAPTURE(name);
    const auto rec = load(name);
    const auto r = render(rec);
    REQUIRE(r.lines.size() == 1);
    CHECK(has(r.lines[0], "| FAILED upstream_unreachable | 0 B up, 0 B down | "));
    CHECK(has(r.lines[0], s(first(rec, "tcp.connect", "upstream"), "error")));
    CHECK(!has(r.lines[0], "hint: the proxy could not complete the upstream leg"));  // points elsewhere
    CHECK(r.totals.failures.at("upstream_unreachable") == 1);
  }
}

TEST_CASE("a client rejecting the forged certificate: one line naming the CA file to trust") {
  const auto rec = load("fail_client_rejects_certificate");
  const auto r = render(rec, "/home/dev/.tlstrace/ca.pem");
  REQUIRE(r.lines.size() == 1);
  const std::string& l = r.lines[0];
  CHECK(has(l, "| FAILED client_rejected_certificate | "));
  CHECK(has(l, "(alert " + s(first(rec, "tls.error", "client"), "alert_received") + ")"));
  CHECK(has(l, "trust the CA /home/dev/.tlstrace/ca.pem (curl --cacert /home/dev/.tlstrace/ca.pem;"));
  CHECK(has(l, "| client not established | upstream TLSv1.3 "));
  CHECK(r.totals.failed == 1);
}

TEST_CASE("the root cause of a two-leg failure is the upstream leg's, with its hint") {
  const auto rec = load("fail_untrusted_upstream");
  const auto r = render(rec);
  REQUIRE(r.lines.size() == 1);
  const Json& err = first(rec, "tls.error", "upstream");
  CHECK(has(r.lines[0], "| FAILED " + s(err, "cause") + " | "));
  CHECK(has(r.lines[0], "| hint: " + s(err, "hint")));
  // The upstream verdict is shown although neither handshake finished: it is the reason.
  CHECK(has(r.lines[0], " | cert UNTRUSTED (" + s(first(rec, "tls.trust", "upstream"), "error") + ") | FAILED "));
  const auto vm = render(load("fail_version_mismatch"));
  REQUIRE(vm.lines.size() == 1);
  CHECK(has(vm.lines[0], "| FAILED version_mismatch | "));
  const auto garbage = render(load("fail_reverse_garbage"));
  REQUIRE(garbage.lines.size() == 1);
  CHECK(has(garbage.lines[0], "| FAILED not_tls | "));
}

TEST_CASE("a 1024-bit DH upstream: the key size, WEAK with its reason, and the count in the summary") {
  const auto rec = load("weak_dh1024_upstream");
  const auto r = render(rec);
  REQUIRE(r.lines.size() == 1);
  const Json& k = first(rec, "tls.key_exchange", "upstream");
  CHECK(has(r.lines[0], "| upstream TLSv1.2 TLS_DHE_RSA_WITH_AES_128_GCM_SHA256 DHE " +
                            std::to_string(k.find("bits")->asInt()) + "-bit | "));
  CHECK(has(r.lines[0], "upstream WEAK (" + std::string((*k.find("reasons")->asArray().begin()).asString()) + ")"));
  CHECK(has(r.lines[0], "| cert UNTRUSTED (self-signed certificate) | ok | "));  // --insecure relays it
  CHECK(r.totals.weak == 1);
  const std::string sum = sinks::renderExitSummary(r.totals, {{"events", "/tmp/x.jsonl"}});
  CHECK(sum ==
        "1 connection: 1 ok, 0 failed\n"
        "weak key exchanges: 1\n"
        "  #1 " +
            s(first(rec, "conn.open"), "target") + ": kex client strong, upstream WEAK (" +
            std::string((*k.find("reasons")->asArray().begin()).asString()) +
            ")\n"
            "events: /tmp/x.jsonl\n");
}

TEST_CASE("the exit summary counts connections and failures by cause") {
  const auto rec = load("reverse_ok_rejected_down");
  const auto r = render(rec);
  std::size_t closes = 0;
  for (const auto& j : rec.raw) closes += j.find("event")->asString() == "conn.close";
  REQUIRE(r.lines.size() == closes);
  CHECK(sinks::renderExitSummary(r.totals, {{"CA certificate", "/c/ca.pem"}, {"trace", "t.txt"}}) ==
        "4 connections: 1 ok, 3 failed\n"
        "failures: client_rejected_certificate 2, upstream_unreachable 1\n"
        "weak key exchanges: 0\n"
        "CA certificate: /c/ca.pem\n"
        "trace: t.txt\n");
}

TEST_CASE("SOCKS5 mode: the CONNECT target; a refusal in SOCKS's own words is a failure by its cause") {
  const auto rec = load("socks5_auth");  // curl --socks5-hostname --proxy-user, then a wrong password
  const auto r = render(rec);
  REQUIRE(r.lines.size() == 2);
  CHECK(has(r.lines[0], "#1 " + s(first(rec, "conn.open", "", 1), "client") + " -> " +
                            s(first(rec, "proxy.request", "client", 1), "target") + " sni "));
  CHECK(has(r.lines[0], " | ok | "));
  const Json& refused = first(rec, "conn.refused");
  CHECK(has(r.lines[1], "#2 " + s(refused, "client") + " -> ? | FAILED " + s(refused, "cause") + " | "));
  CHECK(has(r.lines[1], s(refused, "reason")));
  CHECK(r.totals.failures.at(s(refused, "cause")) == 1);
}
