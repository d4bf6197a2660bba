#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include "../test_util.h"
#include "trace/decoder.h"
#include "trace/event.h"
#include "trace/json.h"
#include "trace/raw_writer.h"
#include "trace/text.h"

using namespace tlstrace::trace;
using tlstrace::testing::firstHandshakeMessage;
using tlstrace::testing::fixture;

TEST_CASE("JSON dump and parse round-trip, with escapes") {
  Json j = Json::object();
  j.set("s", "a\"b\\c\n\x01");
  j.set("i", 42);
  j.set("neg", -7);
  j.set("b", true);
  j.set("n", nullptr);
  j.set("a", Json(Json::Array{Json(1), Json("x")}));
  const std::string text = j.dump();
  CHECK(text == R"({"s":"a\"b\\c\n\u0001","i":42,"neg":-7,"b":true,"n":null,"a":[1,"x"]})");
  std::string err;
  auto back = Json::parse(text, &err);
  REQUIRE(back);
  CHECK(back->dump() == text);
  // Raw DEL and UTF-8 pass through the parser's plain-run copy; escapes around them decode.
  auto raw = Json::parse(
      "\"ab\x7f"
      "\xc3\xa9"
      "cdefghijklmnopq\\u0041\\n\"");
  REQUIRE(raw);
  CHECK(raw->asString() ==
        "ab\x7f"
        "\xc3\xa9"
        "cdefghijklmnopqA\n");
}

TEST_CASE("JSON string escaping: every special byte at every offset of long and short strings") {
  // Reference: byte by byte, as RFC 8259 section 7 asks.
  const auto reference = [](const std::string& in) {
    std::string out = "\"";
    for (unsigned char c : in) {
      if (c == '"') out += "\\\"";
      else if (c == '\\') out += "\\\\";
      else if (c == '\n') out += "\\n";
      else if (c == '\r') out += "\\r";
      else if (c == '\t') out += "\\t";
      else if (c >= 0x80) out += "\\ufffd";  // a lone byte above 0x7f is not UTF-8 (RFC 8259 8.1)
      else if (c < 0x20 || c == 0x7f) {
        char b[8];
        std::snprintf(b, sizeof b, "\\u%04x", c);
        out += b;
      } else out.push_back(static_cast<char>(c));
    }
    return out + "\"";
  };
  for (int special : {0x00, 0x01, 0x09, 0x0a, 0x1f, 0x22, 0x5c, 0x7f, 0x20, 0x80, 0xff}) {
    for (std::size_t len : {1u, 7u, 8u, 9u, 16u, 17u, 40u}) {
      for (std::size_t at = 0; at < len; ++at) {
        std::string s(len, 'a');
        s[at] = static_cast<char>(special);
        std::string got;
        appendJsonString(s, got);
        CAPTURE(special);
        CAPTURE(len);
        CAPTURE(at);
        CHECK(got == reference(s));
      }
    }
  }
}

TEST_CASE("JSON dump of large nested values matches a piecewise rendering, appended after existing text") {
  // Containers are written through a cursor that grows the output ahead of the writes; this
  // builds ~40 KB (many growth steps) and compares with the same text assembled field by field.
  Json root = Json::object();
  std::string want = "{";
  for (int i = 0; i < 300; ++i) {
    std::string key = "k" + std::to_string(i);
    std::string val(static_cast<std::size_t>(i % 70), 'v');
    if (!val.empty()) val[static_cast<std::size_t>(i) % val.size()] = static_cast<char>(i % 3 == 0 ? '"' : 0x05);
    Json arr = Json::array();
    arr.push(i);
    arr.push(-i * 1000003LL);
    arr.push(i * 0.5);
    arr.push(i % 2 == 0);
    arr.push(nullptr);
    arr.push(val);
    root.set(key, arr);
    std::string item;
    appendJsonString(key, item);
    item += ":[" + std::to_string(i) + "," + std::to_string(-i * 1000003LL) + ",";
    char d[32];
    std::snprintf(d, sizeof d, "%.3f", i * 0.5);
    item += d;
    item += i % 2 == 0 ? ",true,null," : ",false,null,";
    appendJsonString(val, item);
    want += (i ? "," : "") + item + "]";
  }
  want += "}";
  std::string out = "prefix ";
  root.dumpTo(out);
  CHECK(out == "prefix " + want);
  CHECK(Json(1e300).dump() == "1e+300");  // too long for the fixed form: the shortest one
  CHECK(Json(std::numeric_limits<double>::infinity()).dump() == "null");
  CHECK(Json(std::numeric_limits<std::int64_t>::min()).dump() == "-9223372036854775808");
}

TEST_CASE("JSON parser rejects malformed text") {
  for (const char* bad : {"{", "[1,", "{\"a\" 1}", "tru", "\"x", "{} x", "[01x]"}) {
    CAPTURE(bad);
    CHECK_FALSE(Json::parse(bad).has_value());
  }
  std::string deep(200, '[');
  CHECK_FALSE(Json::parse(deep).has_value());
}

TEST_CASE("events serialise with the common fields first and parse back") {
  Event e;
  e.ts = Clock::time_point(std::chrono::microseconds(1795000000123456LL));
  e.conn = 3;
  e.leg = Leg::Upstream;
  e.payload = ev::TcpClose{"peer", "fin", 10, 20, 1.5, false, true, {}};
  const std::string line = toJson(e).dump();
  std::string direct;
  appendJsonLine(e, direct);
  CHECK(direct == line);
  CHECK(e.name() == "tcp.close");
  CHECK(e.category() == kTcp);
  CHECK(line.rfind(R"({"ts":"2026-11-18T)", 0) == 0);
  CHECK(line.find(
            R"(.123456Z","conn":3,"leg":"upstream","event":"tcp.close","by":"peer","how":"fin",)"
            R"("bytes_in":10,"bytes_out":20,"duration_ms":1.500,"close_notify_in":false,"close_notify_out":true})") !=
        std::string::npos);
  Event back;
  REQUIRE(fromJson(*Json::parse(line), back));
  CHECK(back.ts == e.ts);
  CHECK(back.leg == Leg::Upstream);
  REQUIRE(back.as<ev::TcpClose>());
  CHECK(back.as<ev::TcpClose>()->bytes_out == 20);
  CHECK(back.as<ev::TcpClose>()->close_notify_in == false);
  CHECK(toJson(back).dump() == line);
  // A kind this version does not know is kept as it was; a known one with a field of the wrong
  // type is refused.
  Event other;
  REQUIRE(fromJson(*Json::parse(R"({"ts":"2026-11-18T11:06:40.000001Z","conn":1,"event":"x.new","a":[1]})"), other));
  CHECK(other.name() == "x.new");
  direct.clear();
  appendJsonLine(other, direct);
  CHECK(direct == R"({"ts":"2026-11-18T11:06:40.000001Z","conn":1,"event":"x.new","a":[1]})");
  CHECK_FALSE(
      fromJson(*Json::parse(R"({"ts":"2026-11-18T11:06:40.000001Z","conn":1,"event":"tcp.close","by":1})"), other));
}

TEST_CASE("optional fields are left out, nullable ones written as null, in the documented order") {
  Event e(Clock::time_point(std::chrono::microseconds(1795000000000001LL)), 1, Leg::Client,
          ev::TlsError{"r", "handshake", "c", {}, "ClientHello", {}, {}, "bad_certificate", {}, {}, {}, "h"});
  std::string line;
  appendJsonLine(e, line);
  CHECK(line.find(R"("event":"tls.error","reason":"r","stage":"handshake","cause":"c","message":"ClientHello",)"
                  R"("alert_received":"bad_certificate","hint":"h"})") != std::string::npos);
  ev::TlsEstablished est;
  est.version = "TLSv1.3";
  est.cipher = {4865, "TLS_AES_128_GCM_SHA256"};
  est.alpn.value = "h2";
  CHECK(fieldsObject(est).dump() ==
        R"({"version":"TLSv1.3","cipher":{"id":4865,"name":"TLS_AES_128_GCM_SHA256"},"group":null,"alpn":"h2",)"
        R"("sni":null,"resumed":false,"handshake_ms":0.000})");
}

TEST_CASE("timestamps: microseconds zero-padded, the cached second follows the clock") {
  using std::chrono::microseconds;
  const auto at = [](long long us) { return formatTimestamp(Clock::time_point(microseconds(us))); };
  CHECK(at(1795000000000007LL) == "2026-11-18T11:06:40.000007Z");
  CHECK(at(1795000000999999LL) == "2026-11-18T11:06:40.999999Z");
  CHECK(at(1795000001000000LL) == "2026-11-18T11:06:41.000000Z");  // next second
  CHECK(at(1795000000500000LL) == "2026-11-18T11:06:40.500000Z");  // and back
  CHECK(at(0) == "1970-01-01T00:00:00.000000Z");
  // The last stamp is reused only for the same microsecond.
  CHECK(at(1795000000123456LL) == "2026-11-18T11:06:40.123456Z");
  CHECK(at(1795000000123456LL) == "2026-11-18T11:06:40.123456Z");
  CHECK(at(1795000000123457LL) == "2026-11-18T11:06:40.123457Z");
  CHECK(at(1795000001123457LL) == "2026-11-18T11:06:41.123457Z");
  CHECK(at(-1) == "1969-12-31T23:59:59.999999Z");
  CHECK(at(-1000000) == "1969-12-31T23:59:59.000000Z");
}

TEST_CASE("trace categories parse") {
  unsigned c = 0;
  std::string bad;
  CHECK(parseCategories("tcp,handshake", c, bad));
  CHECK(c == (kTcp | kHandshake));
  CHECK(parseCategories("all", c, bad));
  CHECK(c == kAll);
  CHECK_FALSE(parseCategories("tcp,bogus", c, bad));
  CHECK(bad == "bogus");
  Tracer t(kTcp);
  CHECK(t.enabled(kCore));
  CHECK_FALSE(t.enabled(kKeys));
}

namespace {
// Records what the writer thread hands it; optionally slow, to make the queue fill up.
struct RecordingSink : Sink {
  std::mutex mu;
  std::vector<std::pair<std::uint64_t, std::string>> seen;  // conn, event name
  int flushes = 0;
  std::chrono::microseconds delay{0};
  void write(const Event& e) override {
    if (delay.count()) std::this_thread::sleep_for(delay);
    std::lock_guard<std::mutex> lock(mu);
    seen.emplace_back(e.conn, std::string(e.name()));
  }
  void flush() override {
    std::lock_guard<std::mutex> lock(mu);
    ++flushes;
  }
};

// An event known only by its name (its category follows from the name).
Event named(std::uint64_t conn, const char* name) {
  Event e;
  e.conn = conn;
  e.payload = ev::Other{name, Json::object()};
  return e;
}
}  // namespace

TEST_CASE("tracer: writer thread keeps order, filters categories, flush waits for the sinks") {
  auto sink = std::make_shared<RecordingSink>();
  Tracer t(kTcp);
  t.addSink(sink);
  std::vector<Event> batch;
  batch.push_back(named(1, "conn.open"));
  batch.push_back(named(1, "tls.message"));  // handshake category: off
  batch.push_back(named(1, "tcp.connect"));
  t.submit(batch);
  CHECK(batch.empty());
  t.emit(named(1, "conn.close"));
  t.flush();
  std::lock_guard<std::mutex> lock(sink->mu);
  REQUIRE(sink->seen.size() == 3);
  CHECK(sink->seen[0].second == "conn.open");
  CHECK(sink->seen[1].second == "tcp.connect");
  CHECK(sink->seen[2].second == "conn.close");
  CHECK(sink->flushes >= 1);
  CHECK(t.stats().events == 3);
  CHECK(t.stats().waits == 0);
}

TEST_CASE("tracer: written batches come back to the producing thread with their storage, and only those") {
  auto sink = std::make_shared<RecordingSink>();
  Tracer t(kAll);
  t.addSink(sink);
  std::vector<std::vector<Event>> held;  // whatever this thread kept from earlier tracers
  for (int i = 0; i < 16; ++i) held.push_back(t.newBatch());
  std::vector<Event> a = t.newBatch();  // a new one now
  REQUIRE(a.capacity() >= 8);
  const Event* storage = a.data();
  a.push_back(named(1, "conn.open"));
  a.push_back(named(1, "tls.message"));
  t.submit(a);
  CHECK(a.capacity() == 0);  // the queue took the storage: the producer holds none while idle
  t.flush();                 // written, emptied, kept by the tracer
  std::vector<Event> b = t.newBatch();
  CHECK(b.data() != storage);  // not back yet: it returns through the next submit()
  b.push_back(named(1, "conn.close"));
  t.submit(b);
  const std::vector<Event> c = t.newBatch();
  CHECK(c.data() == storage);
  CHECK(c.empty());
  t.flush();
  std::lock_guard<std::mutex> lock(sink->mu);
  REQUIRE(sink->seen.size() == 3);
  CHECK(sink->seen[2].second == "conn.close");
}

TEST_CASE("tracer: without flush() the writer still writes and flushes each pass within moments") {
  auto sink = std::make_shared<RecordingSink>();
  Tracer t(kAll);
  t.addSink(sink);
  for (int round = 1; round <= 3; ++round) {  // an idle writer is woken again each time
    t.emit(named(static_cast<std::uint64_t>(round), "conn.open"));
    bool seen = false;
    for (int i = 0; i < 400 && !seen; ++i) {  // bounded: 2 s, the writer gathers for 5 ms
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      std::lock_guard<std::mutex> lock(sink->mu);
      seen = sink->seen.size() == static_cast<std::size_t>(round) && sink->flushes >= round;
    }
    CHECK(seen);
  }
}

TEST_CASE("tracer: onIdle comes once the writer has nothing queued, at most every kIdleEvery") {
  auto sink = std::make_shared<RecordingSink>();
  Tracer t(kAll);
  t.addSink(sink);
  std::atomic<int> calls{0};
  std::atomic<std::size_t> written_at_last_call{0};  // what the sink had when onIdle last came
  t.onIdle([&] {
    std::lock_guard<std::mutex> lock(sink->mu);
    written_at_last_call = sink->seen.size();
    ++calls;
  });
  const auto start = std::chrono::steady_clock::now();
  constexpr int kPasses = 200;
  for (int i = 0; i < kPasses; ++i) {  // a pass each (flush() waits for it), back to back
    t.emit(named(1, "conn.open"));
    t.flush();
  }
  const auto passes_took = std::chrono::steady_clock::now() - start;
  // Not one call per pass: one at most per kIdleEvery of the time the passes took, plus the one
  // that was due at their end.
  CHECK(calls.load() <= 2 + static_cast<int>(passes_took / Tracer::kIdleEvery));
  CHECK(calls.load() < kPasses);
  // The call due after the last pass comes by itself, although nothing more is queued.
  for (int i = 0; i < 200 && written_at_last_call.load() < std::size_t{kPasses}; ++i)  // bounded: 2 s
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(written_at_last_call.load() == std::size_t{kPasses});
  const int settled = calls.load();
  std::this_thread::sleep_for(Tracer::kIdleEvery * 3);
  CHECK(calls.load() == settled);  // an idle writer does not call again and again
}

TEST_CASE("tracer: a slow sink slows the producers, counts the waits and loses nothing") {
  auto sink = std::make_shared<RecordingSink>();
  sink->delay = std::chrono::microseconds(200);
  constexpr int kThreads = 4, kPerThread = 200;
  std::atomic<int> reports{0};
  {
    Tracer t(kAll, 8);  // a tiny queue: producers must wait for the writer
    t.addSink(sink);
    t.onBackpressure([&](const Tracer::Stats& st) {
      CHECK(st.waits >= 1);
      ++reports;
    });
    std::vector<std::thread> producers;
    for (int p = 0; p < kThreads; ++p)
      producers.emplace_back([&t, p] {
        for (int i = 0; i < kPerThread; ++i) t.emit(named(static_cast<std::uint64_t>(p * 100000 + i), "conn.open"));
      });
    for (auto& th : producers) th.join();
    CHECK(t.stats().waits > 0);
    CHECK(t.stats().wait_micros > 0);
  }  // the destructor writes out what is still queued
  CHECK(reports.load() >= 1);
  std::lock_guard<std::mutex> lock(sink->mu);
  REQUIRE(sink->seen.size() == kThreads * kPerThread);
  // Every event once, and per producer in the order emitted.
  std::map<std::uint64_t, std::vector<std::uint64_t>> per_producer;
  for (const auto& [conn, name] : sink->seen) per_producer[conn / 100000].push_back(conn % 100000);
  for (int p = 0; p < kThreads; ++p) {
    const auto& v = per_producer[static_cast<std::uint64_t>(p)];
    REQUIRE(v.size() == static_cast<std::size_t>(kPerThread));
    for (int i = 0; i < kPerThread; ++i) CHECK(v[static_cast<std::size_t>(i)] == static_cast<std::uint64_t>(i));
  }
}

TEST_CASE("ClientHello body has the schema's fields") {
  auto msg = firstHandshakeMessage(fixture("ch_curl.hex"));
  LegDecoder leg;
  auto d = leg.describe(msg, true);
  CHECK(d.type == "ClientHello");
  CHECK(d.length == msg.size() - 4);
  const Json body = d.body.tree();
  CHECK(body.find("random")->asString().size() == 64);
  CHECK(body.find("sni")->asString() == "localhost");
  CHECK(body.find("alpn")->asArray().at(0).asString() == "h2");
  CHECK(body.find("supported_versions")->asArray().at(0).asString() == "TLSv1.3");
  const auto& suites = body.find("cipher_suites")->asArray();
  REQUIRE_FALSE(suites.empty());
  CHECK(suites[0].find("name")->asString() == "TLS_AES_256_GCM_SHA384");
  CHECK(body.find("key_share")->asArray().at(0).find("group")->asString() == "x25519");
}

TEST_CASE("ServerHello body names the selected version and key share") {
  auto msg = firstHandshakeMessage(fixture("sh_openssl_tls13.hex"));
  LegDecoder leg;
  auto d = leg.describe(msg, false);
  CHECK(d.type == "ServerHello");
  const Json body = d.body.tree();
  CHECK(body.find("selected_version")->asString() == "TLSv1.3");
  CHECK(body.find("key_share")->find("group")->asString() == "x25519");
  CHECK(body.find("key_share")->find("public")->asString().size() == 64);
}

TEST_CASE("malformed messages carry error and raw, never throw") {
  auto msg = firstHandshakeMessage(fixture("ch_curl.hex"));
  for (std::size_t n = 0; n < msg.size(); n += 7) {
    std::vector<std::uint8_t> cut(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(n));
    LegDecoder leg;
    auto d = leg.describe(cut, true);
    CHECK(d.body.find("error").has_value());
    CHECK(d.body.find("raw").has_value());
  }
}

TEST_CASE("text rendering prefixes every line with time, connection and leg") {
  auto msg = firstHandshakeMessage(fixture("ch_python.hex"));
  LegDecoder leg;
  auto d = leg.describe(msg, true);
  Event e;
  e.ts = Clock::now();
  e.conn = 12;
  e.leg = Leg::Client;
  e.payload = ev::TlsMessage{"in", d.type, d.length, d.body, {}};
  const std::string text = renderText(e);
  CHECK(text.find("<- ClientHello (") != std::string::npos);
  CHECK(text.find("names=[python.test]") != std::string::npos);  // in server_name, shown once
  CHECK(text.find("sni: python.test") == std::string::npos);
  std::size_t lines = 0, pos = 0;
  while ((pos = text.find('\n', pos)) != std::string::npos) {
    ++lines;
    ++pos;
  }
  CHECK(lines > 10);
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    CHECK(text.substr(start, end - start).find(" #12 client ") == 15);
    start = end + 1;
  }
}

TEST_CASE("tls.record and data events: the JSON line is the tree form, and convert reads back the same text") {
  struct Row {
    bool data;
    bool in;
    std::uint8_t content_type;
    std::uint16_t version;
    std::size_t payload;  // data: bytes in the chunk
    Leg leg;
  };
  const Row rows[] = {
      {false, false, 23, 0x0303, 0, Leg::Client},
      {false, true, 22, 0x0301, 0, Leg::Upstream},
      {false, true, 99, 0x0304, 0, Leg::None},  // unknown content type
      {false, false, 21, 0x0302, 0, Leg::Client},
      {true, true, 0, 0, 0, Leg::Client},
      {true, true, 0, 0, 45, Leg::Upstream},
      {true, false, 0, 0, 16384, Leg::None},  // hex of the first 64 bytes only
  };
  for (const auto& r : rows) {
    Event e;
    e.ts = Clock::time_point(std::chrono::microseconds(1795772345000042LL));
    e.conn = 123456789012ULL;
    e.leg = r.leg;
    if (r.data) {
      std::vector<std::uint8_t> chunk(r.payload);
      for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<std::uint8_t>(i * 37);
      const auto d = ev::Data::of(r.in, chunk);
      CHECK(d.bytes == r.payload);
      CHECK(d.head.view().size() == std::min<std::size_t>(r.payload, HeadBytes::kMax));
      e.payload = d;
    } else {
      e.payload = ev::TlsRecord{r.in, r.content_type, r.version, 16401};
    }
    std::string line;
    appendJsonLine(e, line);
    CAPTURE(line);
    CHECK(line == toJson(e).dump());
    // And back: what `convert` reads from the line renders the same text again, in every format.
    Event parsed;
    REQUIRE(fromJson(*Json::parse(line), parsed));
    for (auto fmt : {TextFormat::Default, TextFormat::Jsse, TextFormat::Openssl})
      CHECK(renderText(parsed, fmt) == renderText(e, fmt));
  }
  // The text line itself, as a packet list shows it.
  Event rec(Clock::time_point(std::chrono::microseconds(1795772345000042LL)), 7, Leg::Client,
            ev::TlsRecord{true, 23, 0x0303, 517});
  CHECK(renderText(rec).substr(15) == " #7 client   <- record application_data(23) TLSv1.2, 517 bytes\n");
}

TEST_CASE("the raw line writer never writes past the room it asked for") {
  std::string out = "x";
  {
    RawWriter w(out, 8);
    w.add("abcd");
    w.add("efghij");                    // does not fit: dropped whole
    w.number(12345678901234567890ULL);  // needs 20: dropped
    w.add('!');
    const std::uint8_t b[] = {0xde, 0xad};
    w.hex(b);  // needs 4, 3 left: dropped
    w.add("zz");
    w.add("zz");  // 1 left: dropped
    w.add('.');
    w.add('.');  // full: dropped
  }
  CHECK(out == "xabcd!zz.");
  {
    RawWriter w(out, 64);
    const std::uint8_t b[] = {0xde, 0xad};
    w.hex(b);
    w.number(0);
  }
  CHECK(out == "xabcd!zz.dead0");
  std::string t;
  char* end =
      writeTimestamp(Clock::time_point(std::chrono::microseconds(1795772345000042LL)), t.assign(32, ' ').data());
  CHECK(std::string(t.data(), end) == "2026-11-27T09:39:05.000042Z");
}

TEST_CASE("tracer: a stalled sink does not freeze the producers: after kStallAfter they drop and count") {
  // A sink stuck in a write (a FIFO nobody reads) until released.
  struct StuckSink : Sink {
    std::mutex mu;
    std::condition_variable cv;
    bool released = false;
    std::atomic<int> written{0};
    std::atomic<int> dropped_reports{0};
    void write(const Event& e) override {
      if (e.as<ev::TraceDropped>()) {
        ++dropped_reports;
        return;
      }
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [this] { return released; });
      ++written;
    }
  };
  auto sink = std::make_shared<StuckSink>();
  constexpr int kEvents = 200;
  {
    Tracer t(kAll, 4);
    t.addSink(sink);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kEvents; ++i) t.emit(named(static_cast<std::uint64_t>(i + 1), "conn.open"));
    const auto took = std::chrono::steady_clock::now() - t0;
    // One wait of kStallAfter for the writer, then drops without waiting: not 200 waits.
    CHECK(took < Tracer::kStallAfter * 3);
    const auto st = t.stats();
    CHECK(st.dropped > 0);
    CHECK(st.dropped < kEvents);
    {
      std::lock_guard<std::mutex> lock(sink->mu);
      sink->released = true;
    }
    sink->cv.notify_all();
    t.flush();
    // Every event is either written or counted as dropped, and the drops were reported.
    CHECK(static_cast<std::uint64_t>(sink->written.load()) + t.stats().dropped == kEvents);
    CHECK(sink->dropped_reports.load() >= 1);
  }
}

TEST_CASE("tracer: flushFor gives up on a stuck sink and says how much is still queued") {
  struct SlowSink : Sink {
    void write(const Event&) override { std::this_thread::sleep_for(std::chrono::milliseconds(300)); }
  };
  Tracer t(kAll, 64);
  t.addSink(std::make_shared<SlowSink>());
  for (int i = 0; i < 5; ++i) t.emit(named(1, "conn.open"));
  CHECK_FALSE(t.flushFor(std::chrono::milliseconds(100)));
  CHECK(t.flushFor(std::chrono::seconds(5)));
  CHECK(t.stats().queued == 0);
}

TEST_CASE("trace.dropped: the JSON line as docs/events.md writes it, read back the same, and one text line") {
  Event e(
      Clock::time_point{} + std::chrono::seconds(1764859000), 0, Leg::None,
      ev::TraceDropped{"keylog", std::string("/dev/full"), "lines", 10, 12, std::string("No space left on device")});
  std::string line;
  appendJsonLine(e, line);
  CHECK(line.find(R"("conn":0,"event":"trace.dropped","output":"keylog","path":"/dev/full","unit":"lines","lost":10,)"
                  R"("total":12,"error":"No space left on device"})") != std::string::npos);
  auto j = Json::parse(line);
  REQUIRE(j);
  Event back;
  REQUIRE(fromJson(*j, back));
  const auto* d = back.as<ev::TraceDropped>();
  REQUIRE(d);
  CHECK(d->total == 12);
  const std::string text = renderText(e);
  CHECK(text.ends_with(
      " #0 -        == trace.dropped: keylog /dev/full: 10 lines lost (12 in all): No space left on device\n"));
  CHECK(std::count(text.begin(), text.end(), '\n') == 1);
}
