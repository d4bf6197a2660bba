// trace::Json over Boost.JSON: the parser's strictness, the writer's numbers, and the writer
// checked against boost::json on random values.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "trace/body.h"
#include "trace/json.h"

using tlstrace::trace::appendJsonString;
using tlstrace::trace::Body;
using tlstrace::trace::Json;

namespace {

boost::json::value boostParse(const std::string& text) {
  boost::json::error_code ec;
  auto v = boost::json::parse(text, ec);  // strict: the writer's text is UTF-8
  INFO(text);
  REQUIRE_FALSE(ec);
  return v;
}

// Equal values, doubles bit for bit (so -0.0 is not 0.0; within one ulp when `b` comes from
// boost::json::parse, which in 1.81 rounds some long doubles one ulp off) and integers whatever
// their kind.
bool same(const boost::json::value& a, const boost::json::value& b, bool ulp = false) {
  if (a.is_double() || b.is_double()) {
    if (!a.is_double() || !b.is_double()) return false;
    const double x = a.get_double(), y = b.get_double();
    if (!std::isfinite(x)) return b.is_null();
    return (x == y || (ulp && std::nextafter(x, y) == y)) && std::signbit(x) == std::signbit(y);
  }
  if (a.is_array() && b.is_array()) {
    const auto &p = a.get_array(), &q = b.get_array();
    if (p.size() != q.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i)
      if (!same(p[i], q[i], ulp)) return false;
    return true;
  }
  if (a.is_object() && b.is_object()) {
    const auto &p = a.get_object(), &q = b.get_object();
    if (p.size() != q.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i) {  // in order
      if (p.begin()[i].key() != q.begin()[i].key() || !same(p.begin()[i].value(), q.begin()[i].value(), ulp))
        return false;
    }
    return true;
  }
  return a == b;  // (int64 and uint64 of the same number compare equal)
}

class Gen {
 public:
  explicit Gen(unsigned seed) : rng_(seed) {}

  boost::json::value value(int depth) {
    switch (pick(depth < 3 ? 8 : 6)) {
      case 0: return nullptr;
      case 1: return pick(2) == 0;
      case 2: return integer();
      case 3: return real();
      case 4:
      case 5: return boost::json::value(str());
      case 6: {
        boost::json::array a;
        for (auto n = pick(5); n > 0; --n) a.push_back(value(depth + 1));
        return a;
      }
      default: {
        boost::json::object o;
        for (auto n = pick(5); n > 0; --n) o.insert_or_assign(str(), value(depth + 1));
        return o;
      }
    }
  }

  boost::json::value integer() {
    static constexpr std::int64_t kEdges[] = {0,
                                              1,
                                              -1,
                                              (1LL << 53) + 1,
                                              -(1LL << 53) - 1,
                                              std::numeric_limits<std::int64_t>::max(),
                                              std::numeric_limits<std::int64_t>::min()};
    switch (pick(4)) {
      case 0: return kEdges[pick(std::size(kEdges))];
      case 1: return std::numeric_limits<std::uint64_t>::max() - pick(3);
      case 2: return static_cast<std::int64_t>(rng_());  // all 64 bits
      default: return rng_() % 100000;
    }
  }

  double real() {
    static constexpr double kEdges[] = {1e-300,
                                        1e300,
                                        0.0004,
                                        -0.0,
                                        0.0,
                                        4.9e-324,
                                        2.2250738585072009e-308,
                                        std::numeric_limits<double>::max(),
                                        std::numeric_limits<double>::min(),
                                        std::numeric_limits<double>::lowest(),
                                        9007199254740993.0,
                                        0.1,
                                        12.085,
                                        1e21,
                                        123456789012.345678};
    switch (pick(4)) {
      case 0: return kEdges[pick(std::size(kEdges))];
      case 1: {  // any finite bit pattern: denormals, huge, tiny
        for (;;) {
          const std::uint64_t bits = rng_();
          double d;
          std::memcpy(&d, &bits, sizeof d);
          if (std::isfinite(d)) return d;
        }
      }
      case 2: return static_cast<double>(static_cast<std::int64_t>(rng_() % 10000000)) / 1000;  // a timing
      default: return std::ldexp(static_cast<double>(rng_() % 1000000), static_cast<int>(pick(120)) - 60);
    }
  }

  std::string str() {
    static const std::string kPieces[] = {"\"", "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x01", "\x1f", "\x7f",
                                          "\xc3\xa9", "\xe2\x82\xac",
                                          "\xf0\x9f\x98\x80",  // U+1F600, a surrogate pair in \u form
                                          // (invalid UTF-8, written as U+FFFD with a _hex sibling:
                                          // test_escape.cpp)
                                          "abc", "0123456789abcdef", std::string(1, '\0')};
    std::string s;
    for (auto n = pick(6); n > 0; --n) s += kPieces[pick(std::size(kPieces))];
    return s;
  }

  std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }

 private:
  std::mt19937_64 rng_;
};

// Whether our text and boost::json::serialize's are meant to be the same bytes: they differ on
// doubles (ours "12.085", boost's "1.2085E1") and on \b, \f, DEL (ours "\u0008", "\u000c",
// "\u007f"; boost's "\b", "\f", raw DEL).
bool sameFormat(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::double_: return false;
    case boost::json::kind::string: {
      for (char c : v.get_string())
        if (c == '\b' || c == '\f' || c == '\x7f') return false;
      return true;
    }
    case boost::json::kind::array: {
      for (const auto& x : v.get_array())
        if (!sameFormat(x)) return false;
      return true;
    }
    case boost::json::kind::object: {
      for (const auto& kv : v.get_object()) {
        for (char c : kv.key())
          if (c == '\b' || c == '\f' || c == '\x7f') return false;
        if (!sameFormat(kv.value())) return false;
      }
      return true;
    }
    default: return true;
  }
}

}  // namespace

TEST_CASE("JSON parser is strict: no leading zeros, no bare fraction or exponent dots") {
  for (const char* bad : {"01", "1.", "-0.e5", "[01]", "{\"a\":1.}", "-", "+1", ".5", "1e", "[1,]", "{\"a\":1,}",
                          "\"\\x\"", "\"a\nb\"", "nul", "1 2", "\"\\ud83d\""}) {
    CAPTURE(bad);
    std::string err;
    CHECK_FALSE(Json::parse(bad, &err).has_value());
    CHECK_FALSE(err.empty());
  }
  for (const char* good : {"0", "-0.0e5", "1.5", "1e5", "-0", "[]", "{}", "\"\""}) {
    CAPTURE(good);
    CHECK(Json::parse(good).has_value());
  }
}

TEST_CASE("JSON parser decodes a surrogate pair to one 4-byte UTF-8 character") {
  auto j = Json::parse(R"("\ud83d\ude00 \u00e9")");
  REQUIRE(j);
  CHECK(std::string(j->asString()) == "\xf0\x9f\x98\x80 \xc3\xa9");  // not CESU-8's 6 bytes
}

TEST_CASE("JSON writer: numbers keep their value") {
  CHECK(Json(0.0004).dump() == "0.0004");
  CHECK(Json(1e300).dump() == "1e+300");
  CHECK(Json(1e-300).dump() == "1e-300");
  CHECK(Json(std::numeric_limits<std::uint64_t>::max()).dump() == "18446744073709551615");
  CHECK(Json(std::numeric_limits<std::int64_t>::min()).dump() == "-9223372036854775808");
  // Timings keep their three decimals, as in docs/events.md.
  CHECK(Json(12.085).dump() == "12.085");
  CHECK(Json(12.5).dump() == "12.500");
  CHECK(Json(0.0).dump() == "0.000");
  CHECK(Json(-0.0).dump() == "-0.000");
  CHECK(Json(std::nan("")).dump() == "null");
  CHECK(Json(-std::numeric_limits<double>::infinity()).dump() == "null");
  // Unsigned values above INT64_MAX survive a round trip; below it they read back as before.
  const std::uint64_t big = std::numeric_limits<std::uint64_t>::max() - 5;
  Json o = Json::object();
  o.set("u", big);
  o.set("i", std::uint64_t{7});
  auto back = Json::parse(o.dump());
  REQUIRE(back);
  CHECK(back->find("u")->asUint() == big);
  CHECK(back->find("u")->isInt());
  CHECK(back->find("i")->asInt() == 7);
  CHECK(back->dump() == o.dump());
}

TEST_CASE("JSON objects keep insertion order; set() on an existing key replaces in place") {
  Json o = Json::object();
  for (const char* k : {"zeta", "alpha", "mid", "beta"}) o.set(k, k);
  o.set("alpha", 2);
  CHECK(o.dump() == R"({"zeta":"zeta","alpha":2,"mid":"mid","beta":"beta"})");
  std::string keys;
  for (const auto& [k, v] : o.asObject()) keys += std::string(k) + (v.isInt() ? "#" : ",");
  CHECK(keys == "zeta,alpha#mid,beta,");
  Json* m = o.find("mid");
  REQUIRE(m);
  m->set("x", 1);  // a value found can be changed in place
  CHECK(o.find("mid")->find("x")->asInt() == 1);
  CHECK(o.find("nope") == nullptr);
  // Many fields (past Boost.JSON's small-object size, where it switches to a hash index).
  Json big = Json::object();
  std::string want = "{";
  for (int i = 40; i > 0; --i) {
    big.set("k" + std::to_string(i), i);
    want += (i == 40 ? "\"k" : ",\"k") + std::to_string(i) + "\":" + std::to_string(i);
  }
  big.set("k17", "x");
  want.replace(want.find("\"k17\":17"), 8, "\"k17\":\"x\"");
  CHECK(big.dump() == want + "}");
}

TEST_CASE("JSON writer against boost::json on random values") {
  Gen gen(20261127);
  int compared_bytes = 0;
  for (int round = 0; round < 3000; ++round) {
    const boost::json::value v = gen.value(0);
    const Json ours(v);
    const std::string text = ours.dump();
    CAPTURE(text);
    const boost::json::value back = boostParse(text);
    CHECK(same(v, back, true));
    // Our parser reads it back exactly, to the same text.
    auto again = Json::parse(text);
    REQUIRE(again);
    CHECK(same(v, again->value()));
    CHECK(again->dump() == text);
    if (sameFormat(v)) {
      CHECK(text == boost::json::serialize(v));
      ++compared_bytes;
    }
  }
  CHECK(compared_bytes > 300);
  // Strings alone, through appendJsonString, byte for byte where the formats agree.
  for (int round = 0; round < 3000; ++round) {
    const std::string s = gen.str();
    std::string got;
    appendJsonString(s, got);
    const boost::json::value back = boostParse(got);
    REQUIRE(back.is_string());
    CHECK(std::string_view(back.get_string()) == s);
    if (sameFormat(boost::json::value(s))) CHECK(got == boost::json::serialize(boost::json::value(s)));
  }
}

// A tls.message body (body.h) is written by its own walker: the same bytes as the Json writer for
// the same value, and the same value after a round trip through a tree.
TEST_CASE("message bodies write what Json writes, on random values") {
  Gen gen(20261205);
  int containers = 0;
  for (int round = 0; round < 3000; ++round) {
    const Json j(gen.value(0));
    const std::string text = j.dump();
    CAPTURE(text);
    const Body b = Body::fromJson(j);
    CHECK(b.dump() == text);
    CHECK(b.tree().dump() == text);
    CHECK(Body::fromJson(b.tree()) == b);
    if (j.isObject() || j.isArray()) ++containers;
  }
  CHECK(containers > 500);
}

TEST_CASE("message bodies: set() appends or replaces in place, as Json::set") {
  Json j = Json::object();
  Body b = Body::object();
  const auto both = [&](std::string_view k, auto v) {
    j.set(k, Json(v));
    b.set(k, v);
  };
  both("a", 1);
  both("b", std::string("two"));
  both("c", true);
  both("a", std::string("one, longer than before"));  // replaced where it was
  both("b", 18446744073709551615ULL);                 // above INT64_MAX: uint64
  both("d", -9223372036854775807LL - 1);
  both("c", 0.0004);
  Body inner = Body::array();
  inner.push("x").push(3).pushCode(0x1301, "TLS_AES_128_GCM_SHA256");
  Json inner_json = Json::array();
  inner_json.push("x").push(3);
  Json code = Json::object();
  code.set("id", 0x1301).set("name", "TLS_AES_128_GCM_SHA256");
  inner_json.push(code);
  j.set("list", inner_json);
  b.set("list", inner);
  j.set("a", Json());
  b.set("a", Json());
  CHECK(b.dump() == j.dump());
  CHECK(b.root().count() == 5);
  CHECK(b.find("list")->asArray().size() == 3);
  CHECK(b.find("b")->asUint() == 18446744073709551615ULL);
  CHECK(!b.find("nope"));
}

TEST_CASE("message bodies: strings that are not UTF-8 get the writer's _hex siblings") {
  const std::string bad = "ab\xff\xfe";
  Json j = Json::object();
  j.set("sni", bad);
  Json list = Json::array();
  list.push("h2").push(bad);
  j.set("alpn", list);
  Json nested = Json::object();
  nested.set("name", bad);
  nested.set("name_hex", "given");  // a field of that name already there wins
  j.set("server", nested);
  const Body b = Body::fromJson(j);
  CHECK(b.dump() == j.dump());
  CHECK(b.dump().find("\"sni_hex\":\"6162fffe\"") != std::string::npos);
}
