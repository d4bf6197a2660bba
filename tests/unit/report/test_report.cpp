// The report page's data (src/report/), built from real recorded events: tests/data/report/*.jsonl
// are events files written by tlstrace (tools/event_matrix.py record --keep-raw: TLS 1.3 with a
// HelloRetryRequest, an untrusted upstream, TLS 1.2 resumption, everything traced with
// --log-secrets). Expected values are read from the raw JSON lines of the same file, not typed in.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "report/live.h"
#include "report/model.h"
#include "report/page.h"
#include "sinks/convert.h"

using namespace tlstrace;
using trace::Json;

namespace {

std::string path(const std::string& name) {
  return std::string(TLSTRACE_SOURCE_DIR) + "/tests/data/report/" + name + ".jsonl";
}

std::vector<Json> rawLines(const std::string& name) {
  std::ifstream in(path(name));
  REQUIRE(in.good());
  std::vector<Json> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(*Json::parse(line));
  return out;
}

// Each event of a recording, through the reader `tlstrace report` uses.
void forEachEvent(const std::string& name, const std::function<void(const trace::Event&)>& f) {
  std::FILE* file = std::fopen(path(name).c_str(), "rb");
  REQUIRE(file);
  sinks::EventsConverter reader(name, sinks::EventsConverter::To::Text, trace::TextFormat::Default);
  const int rc = reader.read(file, f, [](bool, const std::string& msg) { FAIL(msg); });
  std::fclose(file);
  CHECK(rc == 0);
}

report::Model load(const std::vector<std::string>& names, std::size_t keep = 0) {
  report::Model m(keep);
  for (std::size_t i = 0; i < names.size(); ++i)
    forEachEvent(names[i], [&](const trace::Event& e) { m.add(e, static_cast<std::uint32_t>(i)); });
  return m;
}

// The page's own resolution of {"@": n} (report.js resolver), for checking the pool.
Json resolve(const Json& v, const Json& pool, std::size_t limit) {
  if (v.isArray()) {
    Json out = Json::array();
    for (const Json& x : v.asArray()) out.push(resolve(x, pool, limit));
    return out;
  }
  if (v.isObject()) {
    if (v.asObject().size() == 1 && v.find("@")) {
      const auto i = static_cast<std::size_t>(v.find("@")->asUint());
      REQUIRE(i < limit);  // an entry only refers to entries before it
      return resolve(pool.asArray()[i], pool, i);
    }
    Json out = Json::object();
    for (const auto& [k, x] : v.asObject()) out.set(k, resolve(x, pool, limit));
    return out;
  }
  return v;
}

const Json* fieldOf(const Json& line, std::string_view k) { return line.find(k); }
std::string s(const Json* v) { return v ? std::string(v->asString()) : std::string(); }

}  // namespace

TEST_CASE("report: one connection per conn id, each leg's row from its own tls.established and tls.key_exchange") {
  for (const std::string name : {"tls13_hrr", "fail_untrusted_upstream", "tls12_resumption", "trace_all_tls13"}) {
    CAPTURE(name);
    const auto raw = rawLines(name);
    const report::Model m = load({name});
    std::set<std::uint64_t> ids;
    for (const Json& l : raw)
      if (l.find("conn")->asUint() != 0) ids.insert(l.find("conn")->asUint());
    CHECK(m.size() == ids.size());
    for (const Json& l : raw) {
      const std::uint64_t id = l.find("conn")->asUint();
      if (id == 0) continue;
      const report::Connection* c = m.find(id);
      REQUIRE(c);
      const std::string ev = s(fieldOf(l, "event"));
      const report::LegFacts& leg = s(fieldOf(l, "leg")) == "upstream" ? c->upstream_leg : c->client_leg;
      if (ev == "tls.established") {
        CHECK(leg.version == s(fieldOf(l, "version")));
        CHECK(leg.cipher == s(l.find("cipher")->find("name")));
        CHECK(leg.established);
        CHECK(leg.resumed == l.find("resumed")->asBool());
      } else if (ev == "tls.key_exchange") {
        CHECK(leg.kex == s(fieldOf(l, "kex")));
        CHECK(leg.rating == s(fieldOf(l, "rating")));
      } else if (ev == "tls.error") {
        CHECK(leg.error == s(fieldOf(l, "cause")));
      } else if (ev == "conn.close") {
        CHECK(c->outcome == s(fieldOf(l, "outcome")));
        CHECK(c->up == l.find("bytes_client_to_server")->asInt());
        CHECK(c->down == l.find("bytes_server_to_client")->asInt());
      } else if (ev == "tls.message" && s(fieldOf(l, "type")) == "HelloRetryRequest") {
        CHECK(leg.hrr);
      }
    }
  }
}

TEST_CASE(
    "report: every handshake message, alert and error is kept in order; secrets, keys, records and data are not") {
  const auto raw = rawLines("trace_all_tls13");
  const report::Model m = load({"trace_all_tls13"});
  std::map<std::uint64_t, std::vector<std::string>> want;  // per connection: the kept events' names in order
  std::vector<std::string> secrets;
  for (const Json& l : raw) {
    const std::string ev = s(fieldOf(l, "event"));
    if (ev == "tls.secret" && l.find("secret")) secrets.push_back(s(l.find("secret")));
    if (ev == "tls.keys") secrets.push_back(s(l.find("key")));
    if (ev == "tls.secret" || ev == "tls.keys" || ev == "tls.record" || ev == "data") continue;
    want[l.find("conn")->asUint()].push_back(ev + "/" + s(fieldOf(l, "type")));
  }
  REQUIRE(secrets.size() >= 6);  // the recording does carry secrets (--log-secrets)
  const Json data = m.toJson();
  const Json& pool = *data.find("pool");
  for (const Json& c : data.find("conns")->asArray()) {
    std::vector<std::string> got;
    for (const Json& ev : c.find("e")->asArray()) {
      const Json f = resolve(ev.asArray()[3], pool, pool.asArray().size());
      got.push_back(std::string(ev.asArray()[2].asString()) + "/" + s(f.find("type")));
    }
    CHECK(got == want[c.find("id")->asUint()]);
  }
  const std::string page = report::renderPage(data, report::PageMode::File, "t");
  for (const auto& secret : secrets) {
    CAPTURE(secret);
    CHECK(page.find(secret.substr(0, report::kHexKept)) == std::string::npos);
  }
}

TEST_CASE("report: the pool gives back each event's fields exactly, long hex cut to its start") {
  const auto raw = rawLines("tls12_resumption");
  const report::Model m = load({"tls12_resumption"});
  const Json data = m.toJson();
  const Json& pool = *data.find("pool");
  // Repeated subtrees are stored once: two connections to one server share their certificate chain.
  std::size_t raw_bytes = 0;
  for (const Json& l : raw) raw_bytes += l.dump().size();
  CHECK(static_cast<double>(data.dump().size()) < 0.6 * static_cast<double>(raw_bytes));
  std::size_t i = 0;
  std::vector<Json> kept;
  for (const Json& l : raw) {
    const std::string ev = s(fieldOf(l, "event"));
    if (ev == "tls.secret" || ev == "tls.keys" || ev == "tls.record" || ev == "data") continue;
    Json fields = Json::object();
    for (const auto& [k, v] : l.asObject())
      if (k != "ts" && k != "conn" && k != "leg" && k != "event") fields.set(k, v);
    kept.push_back(report::compact(fields));
  }
  for (const Json& c : data.find("conns")->asArray())
    for (const Json& ev : c.find("e")->asArray()) {
      REQUIRE(i < kept.size());
      CHECK(resolve(ev.asArray()[3], pool, pool.asArray().size()).dump() == kept[i].dump());
      ++i;
    }
  CHECK(i == kept.size());
  // compact(): a ServerHello random (32 bytes, 64 hex digits) stays whole; a longer value is cut.
  const std::string random(64, 'a'), longer(130, 'b');
  CHECK(report::compact(Json(random)).asString() == random);
  CHECK(report::compact(Json(longer)).asString() == std::string(32, 'b') + "\u2026 (65 bytes)");
  CHECK(report::compact(Json(std::string(130, 'x'))).asString() == std::string(130, 'x'));  // not hex
}

TEST_CASE("report: a hostile string cannot leave the data block or be taken for a template marker") {
  report::Model m;
  const std::string evil = "</script><script>alert(1)</script><!--{{js}}{{data}}";
  m.add(trace::Event(trace::Clock::now(), 1, trace::Leg::None,
                     trace::ev::ConnOpen{.client = evil, .listen = "127.0.0.1:1", .mode = "explicit", .target = evil}));
  const std::string page = report::renderPage(m.toJson(), report::PageMode::File, evil);
  // The template's own two script elements and nothing else.
  std::size_t closes = 0;
  for (std::size_t at = 0; (at = page.find("</script", at)) != std::string::npos; ++at) ++closes;
  CHECK(closes == 2);
  CHECK(page.find("<!--") == std::string::npos);
  CHECK(page.find("<script>alert") == std::string::npos);
  // The data block parses back to the same string.
  const auto open = page.find("<script type=\"application/json\" id=\"data\" data-encoding=\"json\">");
  REQUIRE(open != std::string::npos);
  const auto start = page.find('>', open) + 1;
  const auto data = Json::parse(std::string_view(page).substr(start, page.find("</script>", start) - start));
  REQUIRE(data);
  CHECK(data->find("conns")->asArray()[0].find("cl")->asString() == evil);
  // Title: text in an element.
  CHECK(page.find("<title>&lt;/script&gt;") != std::string::npos);
  // A file: no connection to anything (the page's Content-Security-Policy).
  CHECK(page.find("connect-src 'none'") != std::string::npos);
  CHECK(report::renderPage(m.toJson(), report::PageMode::Live, "x").find("connect-src 'self'") != std::string::npos);
}

TEST_CASE("report: large data is embedded compressed, the same JSON once inflated") {
  if (!report::canCompress()) return;  // (a build without zlib embeds JSON, checked above)
  const report::Model m = load({"tls13_hrr", "tls12_resumption"});
  const report::DataBlock plain = report::dataBlock(m.toJson());
  CHECK(plain.encoding == "json");  // small: kept readable
  const report::DataBlock z = report::dataBlock(m.toJson(), 0);
  CHECK(z.encoding == "deflate-base64");
  CHECK(z.text.size() < plain.text.size() / 3);
  CHECK(z.text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") ==
        std::string::npos);
}

TEST_CASE("report: keep N holds the newest N connections; late events of an evicted one are ignored") {
  const auto raw = rawLines("tls12_resumption");  // two connections, 1 and 2
  const report::Model m = load({"tls12_resumption"}, 1);
  CHECK(m.size() == 1);
  CHECK(m.find(2) != nullptr);
  CHECK(m.find(1) == nullptr);
  CHECK(m.evicted() == 1);
  // Two files: the same ids are two connections each.
  const report::Model both = load({"tls13_hrr", "fail_untrusted_upstream"});
  CHECK(both.find(1, 0) != nullptr);
  CHECK(both.find(1, 1) != nullptr);
  CHECK(both.find(1, 1)->upstream_leg.error == "upstream_certificate_untrusted");
}

namespace {

bool leftOut(const std::string& ev) {  // what the page does not draw (model.cpp dropped())
  return ev == "tls.secret" || ev == "tls.keys" || ev == "tls.record" || ev == "data";
}

Json without(const Json& o, std::string_view key) {
  Json out = Json::object();
  for (const auto& [k, v] : o.asObject())
    if (k != key) out.set(k, v);
  return out;
}

}  // namespace

TEST_CASE("live: the stream carries a row for each connection whose drawn events changed, with their number") {
  const auto raw = rawLines("trace_all_tls13");  // with records, data and secrets (left out)
  report::LiveSink live(0);
  std::map<std::uint64_t, std::size_t> drawn;  // per connection: its drawn events so far, from the raw lines
  std::size_t i = 0, updates = 0, quiet = 0;
  forEachEvent("trace_all_tls13", [&](const trace::Event& e) {
    REQUIRE(i < raw.size());
    const Json& line = raw[i++];
    const std::string ev = s(fieldOf(line, "event"));
    const std::uint64_t id = line.find("conn")->asUint();
    live.write(e);
    const std::string update = live.takeUpdates();
    if (id == 0 || leftOut(ev)) {  // no row changed: nothing to send
      CHECK(update.empty());
      ++quiet;
      return;
    }
    ++drawn[id];
    REQUIRE(!update.empty());
    ++updates;
    const auto u = Json::parse(update);
    REQUIRE(u);
    const auto& conns = u->find("conns")->asArray();
    REQUIRE(conns.size() == 1);
    CHECK(conns[0].find("id")->asUint() == id);
    CHECK(conns[0].find("e") == nullptr);  // rows only: the events come with GET /conn/ID
    CHECK(conns[0].find("n")->asUint() == drawn[id]);
  });
  CHECK(i == raw.size());
  CHECK(quiet > 0);  // the recording does have records and data
  CHECK(updates > 10);
  CHECK(live.takeUpdates().empty());  // nothing changed since
  // The rows are the static report's rows; a connection whole is the static report's connection.
  const report::Model m = load({"trace_all_tls13"});
  const Json full = m.toJson();
  const auto snap = live.snapshot();
  REQUIRE(snap.find("conns")->asArray().size() == full.find("conns")->asArray().size());
  std::size_t rows = 0, wholes = 0;
  for (std::size_t k = 0; k < full.find("conns")->asArray().size(); ++k) {
    const Json& want = full.find("conns")->asArray()[k];
    const Json& row = snap.find("conns")->asArray()[k];
    CHECK(without(row, "n").dump() == without(want, "e").dump());
    CHECK(row.find("n")->asUint() == want.find("e")->asArray().size());
    const std::uint64_t id = want.find("id")->asUint();
    const auto detail = Json::parse(live.detail(id));
    REQUIRE(detail);
    const Json& c = detail->find("conns")->asArray()[0];
    const Json& pool = *detail->find("pool");
    const Json& fpool = *full.find("pool");
    CHECK(without(c, "e").dump() == without(want, "e").dump());
    REQUIRE(c.find("e")->asArray().size() == want.find("e")->asArray().size());
    for (std::size_t j = 0; j < want.find("e")->asArray().size(); ++j) {
      const auto& a = c.find("e")->asArray()[j].asArray();
      const auto& b = want.find("e")->asArray()[j].asArray();
      CHECK(a[2].asString() == b[2].asString());
      CHECK(resolve(a[3], pool, pool.asArray().size()).dump() == resolve(b[3], fpool, fpool.asArray().size()).dump());
    }
    rows += row.dump().size();
    wholes += live.detail(id).size();
  }
  // Rows are small beside the connections whole: what each update costs to make and send.
  CHECK(rows * 5 < wholes);
  CHECK(live.detail(999999).empty());
}

TEST_CASE("live: without a browser nothing is serialised; evicted connections are gone from rows and details") {
  report::LiveSink live(1);  // keep one: the second connection evicts the first
  forEachEvent("tls12_resumption", [&](const trace::Event& e) { live.write(e); });
  CHECK(live.takeUpdates(false).empty());  // changes forgotten, not made into text
  CHECK(live.takeUpdates().empty());
  const auto snap = live.snapshot();
  REQUIRE(snap.find("conns")->asArray().size() == 1);
  CHECK(snap.find("conns")->asArray()[0].find("id")->asUint() == 2);
  CHECK(snap.find("below")->asUint() == 1);  // the page drops row 1 too
  CHECK(live.detail(1).empty());
  CHECK(!live.detail(2).empty());
}
