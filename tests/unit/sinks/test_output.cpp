// OutputFile against what the kernel does to a file or a FIFO: a write cut short by the file size
// limit (EFBIG) leaves whole lines only and counts the rest; EPIPE is counted, not fatal; a FIFO
// nobody reads neither blocks the opener nor the writer; a reopen after a rename starts a new file.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "sinks/output.h"

using namespace tlstrace::sinks;

namespace {
std::string tempDir() {
  char tmpl[] = "/tmp/tlstrace-output-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  return tmpl;
}
std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
OutputFile::Spec spec(const std::string& path, bool blocking = true) {
  OutputFile::Spec s;
  s.path = path;
  s.output = "events";
  s.what = "events file";
  s.unit = "events";
  s.blocking = blocking;
  return s;
}
}  // namespace

TEST_CASE("output: a write cut short by the file size limit keeps whole lines and counts the rest") {
  const std::string dir = tempDir(), path = dir + "/events.jsonl";
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit before{};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &before) == 0);
  {
    OutputFile out(spec(path));
    const std::string line(39, 'a');
    std::string three = line + "\n" + line + "\n" + line + "\n";  // 120 bytes, 3 lines
    rlimit small = before;
    small.rlim_cur = 100;  // the kernel writes 100 bytes, then refuses (EFBIG)
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    CHECK_FALSE(out.write(three, 3));
    CHECK_FALSE(out.write(line + "\n", 1));  // failed: counted, not appended to a torn line
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &before) == 0);
    CHECK(out.failed());
    CHECK(out.lost() == 2);
    CHECK(out.firstError() == std::strerror(EFBIG));
    CHECK(slurp(path) == line + "\n" + line + "\n");  // the torn third line was cut off again
    // SIGHUP after the operator made room: the output works again, appended after whole lines.
    out.requestReopen();
    CHECK(out.write(line + "\n", 1));
    CHECK(slurp(path) == line + "\n" + line + "\n" + line + "\n");
  }
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("output: a reader that went away is EPIPE, counted once the pipe fails") {
  std::signal(SIGPIPE, SIG_IGN);
  const std::string dir = tempDir(), fifo = dir + "/p";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const int rd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  REQUIRE(rd >= 0);
  OutputFile out(spec(fifo));
  CHECK(out.write("one\n", 1));
  char buf[16];
  CHECK(::read(rd, buf, sizeof buf) == 4);
  ::close(rd);
  CHECK_FALSE(out.write("two\n", 1));
  CHECK_FALSE(out.write("three\n", 1));
  CHECK(out.lost() == 2);
  CHECK(out.firstError() == std::strerror(EPIPE));
  ::unlink(fifo.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("output: a FIFO without a reader opens at once, holds, then drops and counts; a late reader gets it all") {
  const std::string dir = tempDir(), fifo = dir + "/p";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  OutputFile out(spec(fifo, false));  // would block in open(2) without O_NONBLOCK
  const std::string line = std::string(1023, 'x') + "\n";
  const std::size_t fit = OutputFile::kHoldMax / line.size();
  for (std::size_t i = 0; i < fit + 10; ++i) out.write(line, 1);
  CHECK(out.lost() == 10);
  CHECK_FALSE(out.failed());
  const int rd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  REQUIRE(rd >= 0);
  // The reader drains while the writer (non-blocking) pushes what it held, a pipe-full at a time.
  std::string got;
  char buf[65536];
  for (int round = 0; round < 1000 && got.size() < fit * line.size(); ++round) {
    (void)out.write({}, 0);
    for (ssize_t n; (n = ::read(rd, buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
  }
  CHECK(got.size() == fit * line.size());
  CHECK(got.find_first_not_of("x\n") == std::string::npos);
  ::close(rd);
  ::unlink(fifo.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("output: reopen after a rename: the old file keeps what was written, the new one gets the rest") {
  const std::string dir = tempDir(), path = dir + "/events.jsonl";
  OutputFile out(spec(path));
  CHECK(out.write("a\n", 1));
  REQUIRE(::rename(path.c_str(), (path + ".1").c_str()) == 0);
  out.requestReopen();
  struct stat st {};
  CHECK(::stat(path.c_str(), &st) == 0);  // the new file appears at once
  CHECK(out.write("b\n", 1));
  CHECK(slurp(path + ".1") == "a\n");
  CHECK(slurp(path) == "b\n");
  CHECK(out.lost() == 0);
  ::unlink(path.c_str());
  ::unlink((path + ".1").c_str());
  ::rmdir(dir.c_str());
}
