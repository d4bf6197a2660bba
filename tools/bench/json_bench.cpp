// Micro-benchmark of the JSON hot path: a tls.message event carrying a decoded ClientHello (the
// largest event of a handshake) built, written as a JSON line, and parsed back. Built against the
// tree it sits in (tools/bench/json_bench.sh builds it for two commits to compare). With
// -DWITH_BOOST_SERIALIZE it also times boost::json::serialize on the same value, the alternative
// to our writer.
//
//   json_bench FIXTURE.hex [iterations]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "trace/decoder.h"
#include "trace/event.h"
#include "trace/json.h"
#ifdef WITH_BOOST_SERIALIZE
#include <boost/json/serialize.hpp>
#endif

using namespace tlstrace;

namespace {

std::vector<std::uint8_t> handshakeMessage(const char* path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::vector<std::uint8_t> stream;
  int hi = -1;
  for (char c : ss.str()) {
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) continue;
    if (hi < 0) hi = v;
    else stream.push_back(static_cast<std::uint8_t>(hi << 4 | v)), hi = -1;
  }
  std::vector<std::uint8_t> body;  // records reassembled: the first handshake message
  for (std::size_t off = 0; off + 5 <= stream.size() && stream[off] == 22;) {
    const std::size_t len = std::size_t{stream[off + 3]} << 8 | stream[off + 4];
    body.insert(body.end(), stream.begin() + static_cast<long>(off + 5),
                stream.begin() + static_cast<long>(std::min(stream.size(), off + 5 + len)));
    off += 5 + len;
  }
  if (body.size() >= 4) body.resize(std::min(body.size(), 4 + (std::size_t{body[1]} << 16 | body[2] << 8 | body[3])));
  return body;
}

trace::Event event(const std::vector<std::uint8_t>& msg) {
  trace::LegDecoder leg;
  auto d = leg.describe(msg, true);
  trace::Event e(std::string_view("tls.message"));
  e.ts = trace::Clock::time_point(std::chrono::microseconds(1795000000123456LL));
  e.conn = 1;
  e.leg = trace::Leg::Client;
  e.fields.set("dir", "in");
  e.fields.set("type", d.type);
  e.fields.set("length", d.length);
  e.fields.set("body", std::move(d.body));
  return e;
}

template <class F>
double nsPerOp(long n, F&& f) {  // median of 5 runs
  std::vector<double> runs;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < n; ++i) f();
    const auto t1 = std::chrono::steady_clock::now();
    runs.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(n));
  }
  std::sort(runs.begin(), runs.end());
  return runs[2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: json_bench FIXTURE.hex [iterations]\n");
    return 2;
  }
  const long n = argc > 2 ? std::stol(argv[2]) : 20000;
  const auto msg = handshakeMessage(argv[1]);
  const trace::Event e = event(msg);
  std::string line;
  trace::appendJsonLine(e, line);
  std::printf("line: %zu bytes\n", line.size());
  std::size_t sink = 0;
  std::string out;
  out.reserve(1 << 16);
  std::printf("write  (appendJsonLine): %8.0f ns\n", nsPerOp(n, [&] {
                out.clear();
                trace::appendJsonLine(e, out);
                sink += out.size();
              }));
#ifdef WITH_BOOST_SERIALIZE
  std::printf("write  (boost serialize): %7.0f ns\n", nsPerOp(n, [&] {
                const std::string s = boost::json::serialize(e.fields.value());
                sink += s.size();
              }));
#endif
  std::printf("build  (decode + event): %8.0f ns\n", nsPerOp(n / 4, [&] {
                const trace::Event x = event(msg);
                sink += x.name.size();
              }));
  std::printf("copy   (event fields):   %8.0f ns\n", nsPerOp(n, [&] {
                const trace::Json x = e.fields;
                sink += x.isObject();
              }));
  std::printf("parse  (Json::parse):    %8.0f ns\n", nsPerOp(n / 4, [&] {
                auto j = trace::Json::parse(line);
                sink += j.has_value();
              }));
  return sink == 0;
}
