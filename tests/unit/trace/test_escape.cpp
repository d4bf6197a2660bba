// Peer-supplied strings in the outputs (escape.h): the text trace's escapes, the UTF-8 check
// against RFC 3629's table, and the JSON writer's U+FFFD + `_hex` scheme read back by `convert`.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "trace/escape.h"
#include "trace/event.h"
#include "trace/json.h"
#include "trace/text.h"

using namespace tlstrace::trace;
using namespace std::string_literals;

namespace {

// The reverse of escapeText, written from the rules in escape.h (not from its code): `\\`, `\n`,
// `\r`, `\t`, `\xHH`; anything else after a backslash is an error.
bool unescape(std::string_view s, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (++i >= s.size()) return false;
    switch (s[i]) {
      case '\\': out += '\\'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'x': {
        if (i + 2 >= s.size()) return false;
        const std::string hex(s.substr(i + 1, 2));
        if (hex.size() != 2 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) return false;
        out += static_cast<char>(std::stoi(hex, nullptr, 16));
        i += 2;
        break;
      }
      default: return false;
    }
  }
  return true;
}

// No byte a terminal acts on: nothing below 0x20, no DEL, and valid UTF-8.
bool terminalSafe(std::string_view s) {
  for (const char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == '\x7f') return false;
  return isValidUtf8(s);
}

}  // namespace

TEST_CASE("escapeText: the table") {
  struct Case {
    std::string in, want;
  };
  const std::vector<Case> cases = {
      {"", ""},
      {"example.com", "example.com"},
      {"a longer host name than sixteen bytes.example", "a longer host name than sixteen bytes.example"},
      {"h2", "h2"},
      {"back\\slash", "back\\\\slash"},
      {"evil\x1b[31mred", "evil\\x1b[31mred"},
      {"a\nb", "a\\nb"},
      {"a\r\nb", "a\\r\\nb"},
      {"tab\there", "tab\\there"},
      {"nul\0x"s, "nul\\x00x"},
      {"bel\x07", "bel\\x07"},
      {"del\x7f", "del\\x7f"},
      {"\x01\x1f", "\\x01\\x1f"},
      {"Z\xc3\xbcrich", "Z\xc3\xbcrich"},        // printable UTF-8 stays
      {"\xe2\x82\xac 5", "\xe2\x82\xac 5"},      // U+20AC
      {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},  // U+1F600
      {"\xc2\x9b"
       "31m",
       "\\xc2\\x9b31m"},           // U+009B, C1 CSI
      {"\xc2\x85", "\\xc2\\x85"},  // U+0085 NEL
      {"a\xe2\x80\xae"
       "cba",
       "a\\xe2\\x80\\xaecba"},                                          // U+202E RIGHT-TO-LEFT OVERRIDE
      {"\xe2\x81\xa6", "\\xe2\\x81\\xa6"},                              // U+2066 LEFT-TO-RIGHT ISOLATE
      {"\xe2\x80\xa8", "\\xe2\\x80\\xa8"},                              // U+2028 LINE SEPARATOR
      {"\xd8\x9c", "\\xd8\\x9c"},                                       // U+061C ARABIC LETTER MARK
      {"\xff", "\\xff"},                                                // never in UTF-8
      {"\xc3", "\\xc3"},                                                // truncated
      {"\xc3(", "\\xc3("},                                              // bad continuation
      {"\x80", "\\x80"},                                                // lone continuation
      {"\xc0\xaf", "\\xc0\\xaf"},                                       // overlong '/'
      {"\xed\xa0\x80", "\\xed\\xa0\\x80"},                              // UTF-16 surrogate D800
      {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"},                     // above U+10FFFF
      {"ok\xe2\x82", "ok\\xe2\\x82"},                                   // truncated at the end
      {std::string(20, 'a') + "\x1b", std::string(20, 'a') + "\\x1b"},  // past the 16-byte scan
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    const std::string got = escapeText(c.in);
    CHECK(got == c.want);
    CHECK(terminalSafe(got));
    std::string back;
    REQUIRE(unescape(got, back));
    CHECK(back == c.in);
  }
}

TEST_CASE("escapeText: every byte value, alone and inside a name, is safe and comes back") {
  for (int b = 0; b < 256; ++b) {
    for (const std::string& s : {std::string(1, static_cast<char>(b)),
                                 "host-" + std::string(1, static_cast<char>(b)) + "-0123456789abcdef.example"}) {
      const std::string got = escapeText(s);
      CAPTURE(b);
      CHECK(terminalSafe(got));
      CHECK(got.find('\n') == std::string::npos);
      std::string back;
      REQUIRE(unescape(got, back));
      CHECK(back == s);
      // Plain when, and only when, it is printable ASCII without a backslash.
      const bool plain = b >= 0x20 && b < 0x7f && b != '\\';
      CHECK((got == s) == plain);
    }
  }
}

TEST_CASE("isValidUtf8 follows RFC 3629's table") {
  struct Case {
    std::string s;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"", true},
      {"abc", true},
      {"\x7f", true},
      {"\xc2\x80", true},
      {"\xdf\xbf", true},
      {"\xe0\xa0\x80", true},
      {"\xef\xbf\xbd", true},
      {"\xed\x9f\xbf", true},
      {"\xee\x80\x80", true},
      {"\xf0\x90\x80\x80", true},
      {"\xf4\x8f\xbf\xbf", true},
      {"\x80", false},
      {"\xbf", false},
      {"\xc0\x80", false},
      {"\xc1\xbf", false},
      {"\xc2", false},
      {"\xc2\x7f", false},
      {"\xc2\xc0", false},
      {"\xe0\x9f\xbf", false},
      {"\xed\xa0\x80", false},
      {"\xed\xbf\xbf", false},
      {"\xe1\x80", false},
      {"\xf0\x8f\xbf\xbf", false},
      {"\xf4\x90\x80\x80", false},
      {"\xf5\x80\x80\x80", false},
      {"\xfe", false},
      {"\xff", false},
      {"\xf1\x80\x80", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.s);
    CHECK(isValidUtf8(c.s) == c.valid);
  }
}

TEST_CASE("JSON writer: invalid UTF-8 goes out as U+FFFD with the bytes in a _hex sibling") {
  struct Case {
    std::string in, json, hex;  // hex: "" when no sibling is expected
  };
  const std::vector<Case> cases = {
      {"ok", R"("ok")", ""},
      {"Z\xc3\xbcrich", "\"Z\xc3\xbcrich\"", ""},
      {"esc\x1b", R"("esc\u001b")", ""},      // valid UTF-8: JSON's own escapes suffice
      {"csi\xc2\x9b", R"("csi\u009b")", ""},  // C1: escaped, not raw (events files meet terminals)
      {"a\xe2\x80\xae"
       "b",
       R"("a\u202eb")", ""},                // RIGHT-TO-LEFT OVERRIDE
      {"\xe2\x80\xa8", R"("\u2028")", ""},  // LINE SEPARATOR
      {"a\xff"
       "b",
       R"("a\ufffdb")", "61ff62"},
      {"\xc3", R"("\ufffd")", "c3"},
      {"\xed\xa0\x80", R"("\ufffd\ufffd\ufffd")", "eda080"},
      {"\xc0\xaf\"", R"("\ufffd\ufffd\"")", "c0af22"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    std::string s;
    CHECK(appendJsonString(c.in, s) == !c.hex.empty());
    CHECK(s == c.json);
    std::string member;
    appendJsonStringMember("sni", c.in, member);
    CHECK(member == "\"sni\":" + c.json + (c.hex.empty() ? "" : ",\"sni_hex\":\"" + c.hex + "\""));
    boost::json::error_code ec;
    (void)boost::json::parse("{" + member + "}", ec);  // strict: rejects invalid UTF-8
    CHECK_FALSE(ec);
  }
}

TEST_CASE("JSON lines with a peer's invalid bytes: valid UTF-8, and convert reads the bytes back") {
  const std::string sni = "a\xff\x1b\n.example";
  const std::string bad_alpn = "h2\xc3";
  std::vector<Event> events;
  ev::TlsEstablished est;
  est.version = "TLSv1.3";
  est.cipher = {0x1301, "TLS_AES_128_GCM_SHA256"};
  est.sni.value = sni;
  est.alpn.value = bad_alpn;
  events.emplace_back(Clock::now(), 7, Leg::Client, est);
  ev::TlsMessage m;
  m.dir = "in";
  m.type = "ClientHello";
  m.body.set("sni", sni);
  Json alpn = Json::array();
  alpn.push("h2");
  alpn.push(bad_alpn);
  m.body.set("alpn", alpn);
  Json nested = Json::object();
  nested.set("names", Json(Json::Array{Json(sni)}));
  m.body.set("server_name", nested);
  events.emplace_back(Clock::now(), 7, Leg::Client, m);
  ev::ProxyRequest q{"CONNECT", "x\xfe:443"};
  events.emplace_back(Clock::now(), 7, Leg::None, q);

  for (const auto& e : events) {
    std::string line;
    appendJsonLine(e, line);
    CAPTURE(line);
    CHECK(isValidUtf8(line));
    boost::json::error_code ec;
    const auto v = boost::json::parse(line, ec);
    REQUIRE_FALSE(ec);
    // The same through toJson + dump (the tree writer).
    CHECK(toJson(e).dump() == line);
    // convert: the bytes come back, and the line is written again the same.
    auto j = Json::parse(line);
    REQUIRE(j);
    Event back;
    REQUIRE(fromJson(*j, back));
    std::string again;
    appendJsonLine(back, again);
    CHECK(again == line);
    CHECK(renderText(back) == renderText(e));
  }
  std::string line1;
  appendJsonLine(events[1], line1);
  const boost::json::value v1 = boost::json::parse(line1);
  const auto& o = v1.as_object();
  CHECK(o.at("body").as_object().at("sni_hex").as_string() == "61ff1b0a2e6578616d706c65");
  const auto& alpn_hex = o.at("body").as_object().at("alpn_hex").as_array();
  REQUIRE(alpn_hex.size() == 2);
  CHECK(alpn_hex[0].is_null());
  CHECK(alpn_hex[1].as_string() == "6832c3");
  CHECK(o.at("body").as_object().at("server_name").as_object().at("names_hex").as_array()[0].as_string() ==
        "61ff1b0a2e6578616d706c65");
}

TEST_CASE("text renderers: a peer's bytes reach no line raw, in any format") {
  const std::string evil = "evil\x1b[2J\r\n12:00:00.000000 #1 client  == forged\xff\xc2\x9b";
  ev::TlsMessage m;
  m.dir = "in";
  m.type = "ClientHello";
  m.body.set("sni", evil);
  Json ext = Json::object();
  Json type = Json::object();
  type.set("id", 0);
  type.set("name", "server_name");
  ext.set("type", type);
  ext.set("length", 10);
  ext.set("names", Json(Json::Array{Json(evil)}));
  Json alpn_ext = Json::object();
  Json alpn_type = Json::object();
  alpn_type.set("id", 16);
  alpn_type.set("name", "application_layer_protocol_negotiation");
  alpn_ext.set("type", alpn_type);
  alpn_ext.set("length", 10);
  alpn_ext.set("protocols", Json(Json::Array{Json(evil)}));
  m.body.set("extensions", Json(Json::Array{ext, alpn_ext}));
  Json cert = Json::object();
  cert.set("subject", "CN=" + evil);
  Json x509 = Json::object();
  x509.set("oid", "2.5.29.17");
  x509.set("name", "X509v3 Subject Alternative Name");
  x509.set("critical", false);
  x509.set("text", "DNS:" + evil + ", URI:" + evil);
  cert.set("x509_extensions", Json(Json::Array{x509}));
  Json cert_msg = Json::object();
  cert_msg.set("chain", Json(Json::Array{cert}));
  ev::TlsMessage c;
  c.dir = "in";
  c.type = "Certificate";
  c.body = Body::fromJson(cert_msg);
  ev::ConnOpen open{"127.0.0.1:1", "127.0.0.1:2", "explicit", evil};
  const Event events[] = {Event(Clock::now(), 1, Leg::Client, m), Event(Clock::now(), 1, Leg::Upstream, c),
                          Event(Clock::now(), 1, Leg::None, open)};
  for (const auto format : {TextFormat::Default, TextFormat::Jsse, TextFormat::Openssl}) {
    for (const auto& e : events) {
      const std::string text = renderText(e, format);
      CAPTURE(text);
      CHECK(isValidUtf8(text));
      for (const char ch : text) {
        const auto b = static_cast<unsigned char>(ch);
        CHECK((b >= 0x20 || b == '\n') == true);
        CHECK(b != 0x7f);
      }
      CHECK(text.find("\n12:00:00") == std::string::npos);  // the forged line is not a line
    }
  }
  // The default format shows the escaped value, from which the bytes come back.
  const std::string text = renderText(events[2]);
  const std::string shown = escapeText(evil);
  CHECK(text.find("target: " + shown + "\n") != std::string::npos);
  std::string back;
  REQUIRE(unescape(shown, back));
  CHECK(back == evil);
}

TEST_CASE("plainTextPrefix / plainJsonPrefix: the first byte to look at, at every length and position") {
  // The definition, byte by byte (escape.h): printable ASCII but a backslash, and for JSON but a
  // double quote. The scan goes 16 bytes at a time, re-reads the last 16 overlapping and takes
  // short strings by table: every length from 0 to 70, an odd byte at every position (or none).
  const auto reference = [](std::string_view s, bool json) {
    std::size_t i = 0;
    for (; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c < 0x20 || c > 0x7e || c == '\\' || (json && c == '"')) break;
    }
    return i;
  };
  const std::string odd_bytes = std::string("\\\"\x7f\x80\xff\x1f\n", 7) + std::string(1, '\0');
  std::uint32_t seed = 12345;
  const auto next = [&seed] { return seed = seed * 1664525u + 1013904223u; };
  for (std::size_t len = 0; len <= 70; ++len) {
    std::string plain(len, 'a');
    for (auto& c : plain) c = static_cast<char>(0x20 + next() % 0x5f);  // printable, may be \ or "
    for (std::size_t at = 0; at <= len; ++at) {
      for (const char odd : odd_bytes) {
        std::string s = plain;
        if (at < len) s[at] = odd;
        for (const bool json : {false, true}) {
          const std::size_t got = json ? plainJsonPrefix(s.data(), s.size()) : plainTextPrefix(s.data(), s.size());
          CHECK_MESSAGE(got == reference(s, json), "len " << len << " at " << at << " json " << json);
        }
      }
    }
  }
}
