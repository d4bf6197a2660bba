// The output-file policy (modes and owners as fstat reports them) and the events reader behind
// `convert` (each line untrusted). UTF-8 cases: RFC 3629 section 4's table and its examples.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "sinks/convert.h"
#include "sinks/files.h"

using namespace tlstrace;
using sinks::EventsConverter;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/tlstrace-files-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

unsigned modeOf(const std::string& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

void make(const std::string& p, mode_t m, const std::string& content = "old\n") {
  std::ofstream(p) << content;
  REQUIRE(::chmod(p.c_str(), m) == 0);
}

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

const std::string kSecret = R"({"ts":"2026-11-18T11:06:40.000001Z","conn":1,"leg":"client","event":"tls.secret",)";

}  // namespace

TEST_CASE("files that hold secrets are created 0600 whatever the umask, and narrowed when they exist") {
  TempDir tmp;
  const mode_t old_umask = ::umask(0);  // a umask that would leave a new file 0666
  std::string err;
  const std::string fresh = (tmp.path / "fresh").string();
  int fd = sinks::openOutputFile(fresh, "key log", 0, true, err);
  REQUIRE(fd >= 0);
  ::close(fd);
  CHECK(modeOf(fresh) == 0600);
  const std::string plain = (tmp.path / "plain").string();
  fd = sinks::openOutputFile(plain, "events file", 0, false, err);
  REQUIRE(fd >= 0);
  ::close(fd);
  CHECK(modeOf(plain) == 0666);  // no secrets: the umask decides, as fopen's would
  ::umask(old_umask);

  const std::string wide = (tmp.path / "wide").string();
  make(wide, 0644);
  fd = sinks::openOutputFile(wide, "capture", O_TRUNC, true, err);
  REQUIRE(fd >= 0);
  ::close(fd);
  CHECK(modeOf(wide) == 0600);
  CHECK(slurp(wide).empty());  // truncated once accepted
  make(wide, 0664);
  fd = sinks::openOutputFile(wide, "events file", 0, false, err);
  REQUIRE(fd >= 0);
  ::close(fd);
  CHECK(modeOf(wide) == 0664);  // left alone without secrets
  CHECK(slurp(wide) == "old\n");

  // A device is written as it is: /dev/null keeps its mode.
  const unsigned null_mode = modeOf("/dev/null");
  fd = sinks::openOutputFile("/dev/null", "key log", O_TRUNC, true, err);
  REQUIRE(fd >= 0);
  ::close(fd);
  CHECK(modeOf("/dev/null") == null_mode);

  fd = sinks::openOutputFile((tmp.path / "no" / "such").string(), "key log", 0, true, err);
  CHECK(fd == -1);
  CHECK(err.find("cannot open key log " + (tmp.path / "no" / "such").string() + ": No such file") == 0);
}

TEST_CASE("a secrets file of another user is refused before anything is written or truncated") {
  if (::geteuid() != 0) return;  // only root can give a file away
  TempDir tmp;
  const std::string theirs = (tmp.path / "theirs").string();
  make(theirs, 0600, "their capture\n");
  REQUIRE(::chown(theirs.c_str(), 65534, 65534) == 0);
  std::string err;
  CHECK(sinks::openOutputFile(theirs, "capture", O_TRUNC, true, err) == -1);
  CHECK(err.find("refusing to write capture " + theirs + ": it belongs to uid 65534") == 0);
  CHECK(slurp(theirs) == "their capture\n");
  CHECK_THROWS_AS((void)sinks::openOutputFileOrThrow(theirs, "key log", 0, true), std::runtime_error);
  const int fd = sinks::openOutputFile(theirs, "events file", 0, false, err);  // no secrets: written
  CHECK(fd >= 0);
  ::close(fd);
}

TEST_CASE("convert: UTF-8 as RFC 3629 section 4 defines it") {
  const auto line = [](std::string s) {
    return R"({"ts":"2026-11-18T11:06:40.000001Z","conn":1,"event":"x.y","s":")" + s + "\"}";
  };
  struct Case {
    const char* bytes;
    bool ok;
  } cases[] = {
      {"A\xe2\x89\xa2\xce\x91.", true},                // RFC 3629 7: "A<NOT IDENTICAL TO><ALPHA>."
      {"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4", true},  // RFC 3629 7: Korean
      {"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", true},  // RFC 3629 7: Japanese
      {"\xef\xbb\xbf\xf0\xa3\x8e\xb4", true},          // RFC 3629 7: BOM + U+233B4
      {"\xf4\x8f\xbf\xbf", true},                      // U+10FFFF, the last
      {"\xc0\xaf", false},                             // overlong '/' (RFC 3629 10)
      {"\xe0\x80\xaf", false},                         // overlong, 3 bytes
      {"\xed\xa0\x80", false},                         // a surrogate (U+D800)
      {"\xf4\x90\x80\x80", false},                     // above U+10FFFF
      {"\xf5\x80\x80\x80", false},                     // F5..FF never appear
      {"\xff", false},
      {"\x80", false},      // a continuation byte alone
      {"\xe2\x82", false},  // cut short
  };
  for (const auto& c : cases) {
    EventsConverter conv("f.jsonl", EventsConverter::To::Text, trace::TextFormat::Default);
    std::string out;
    CAPTURE(std::string(c.bytes));
    CHECK(conv.feed(line(c.bytes), out) == c.ok);
    if (!c.ok) CHECK(conv.error().find("f.jsonl:1: not UTF-8 (byte 64)") == 0);
  }
}

TEST_CASE("convert --to keylog: only NSS labels, and only hex reaches a key log line") {
  EventsConverter conv("k.jsonl", EventsConverter::To::Keylog, trace::TextFormat::Default);
  const std::string cr(64, 'a');
  std::string out;
  CHECK(conv.feed(kSecret + R"("label":"CLIENT_RANDOM","client_random":")" + cr + R"(","secret":"0f1e"})", out));
  CHECK(out == "CLIENT_RANDOM " + cr + " 0f1e\n");
  CHECK(conv.feed("", out));  // an empty line is nothing
  CHECK(
      conv.feed(kSecret + R"("label":"CLIENT_TRAFFIC_SECRET_1","client_random":")" + cr + R"(","secret":"00"})", out));
  CHECK(out == "CLIENT_RANDOM " + cr + " 0f1e\n");  // not an NSS label: left out, as the live key log does
  out.clear();
  CHECK_FALSE(conv.feed(kSecret + R"("label":"CLIENT_RANDOM","client_random":")" + cr + R"(","secret":"0f\nX"})", out));
  CHECK(conv.error() == "k.jsonl:4: tls.secret: field 'secret' is not hex");
  CHECK_FALSE(conv.feed(kSecret + R"("label":"CLIENT_RANDOM","client_random":"ab cd","secret":"00"})", out));
  CHECK(conv.error() == "k.jsonl:5: tls.secret: field 'client_random' is not 32 bytes of hex");
  CHECK_FALSE(conv.feed(kSecret + R"("client_random":")" + cr + R"(","secret":"00"})", out));
  CHECK(conv.error() == "k.jsonl:6: not an event: tls.secret: field 'label' is missing");
  CHECK(out.empty());
  CHECK(conv.bad == 3);
  CHECK(conv.secrets == 1);
}

TEST_CASE("convert: numbers must fit their field, and an error names the field") {
  EventsConverter conv("n.jsonl", EventsConverter::To::Text, trace::TextFormat::Default);
  const std::string rec =
      R"({"ts":"2026-11-18T11:06:40.000001Z","conn":1,"leg":"client","event":"tls.record","dir":"in",)";
  std::string out;
  CHECK(conv.feed(rec + R"("content_type":23,"version":"TLSv1.2","length":5})", out));
  const std::pair<std::string, std::string> bad[] = {
      {R"("content_type":256,"version":"TLSv1.2","length":5})", "field 'content_type' is out of range"},
      {R"("content_type":-1,"version":"TLSv1.2","length":5})", "field 'content_type' is out of range"},
      {R"("content_type":23,"version":"TLSv1.2","length":-5})", "field 'length' is out of range"},
      {R"("content_type":23,"version":"TLSv1.2","length":1e400})", "field 'length' is not an integer"},
      {R"("content_type":23.5,"version":"TLSv1.2","length":5})", "field 'content_type' is not an integer"},
      {R"("content_type":23,"version":12,"length":5})", "field 'version' is not a string"},
      {R"("content_type":23,"version":"TLSv1.2"})", "field 'length' is missing"},
  };
  for (const auto& [tail, why] : bad) {
    CAPTURE(tail);
    CHECK_FALSE(conv.feed(rec + tail, out));
    CHECK(conv.error().find(why) != std::string::npos);
  }
  const std::string close = R"({"ts":"2026-11-18T11:06:40.000001Z","conn":1,"event":"conn.close","duration_ms":)";
  const std::string rest = R"(,"bytes_client_to_server":0,"bytes_server_to_client":0,"outcome":"ok"})";
  CHECK(conv.feed(close + "1.5" + rest, out));
  CHECK_FALSE(conv.feed(close + "1e400" + rest, out));  // (Boost.JSON reads it as infinity)
  CHECK(conv.error().find("conn.close: field 'duration_ms' is not a finite number") != std::string::npos);
}
