#include "sinks/sinks.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "trace/text.h"

namespace tlstrace::sinks {

BufferedFile::BufferedFile(const std::string& path, std::FILE* fallback, const char* what, const char* output,
                           const char* unit, bool secrets)
    : out_([&] {
        OutputFile::Spec s;
        s.path = path;
        if (secrets) s.mode = 0600;
        s.fallback_fd = fallback == stdout ? STDOUT_FILENO : STDERR_FILENO;
        s.output = output;
        s.what = what;
        s.unit = unit;
        return s;
      }()) {}

BufferedFile::~BufferedFile() { flush(); }

void BufferedFile::flush() {
  if (!buf_.empty()) (void)out_.write(buf_, OutputFile::kCountLines);
  else (void)out_.write({}, 0);  // what a FIFO held goes out once its reader comes
  buf_.clear();
}

TextSink::TextSink(const std::string& path, trace::TextFormat format, bool secrets)
    : out_(path, stderr, "trace log", "trace", "lines", secrets), format_(format) {}

void TextSink::write(const trace::Event& e) {
  if (e.as<trace::ev::TraceDropped>() && out_.output().failed()) return;  // its own losses: counted apart
  std::string& buf = out_.buffer();
  const std::size_t at = buf.size();
  trace::appendText(e, format_, buf);
  if (buf.size() > at && buf.back() != '\n') buf.push_back('\n');
  out_.spillIfFull();
}

JsonLinesSink::JsonLinesSink(const std::string& path, bool secrets)
    : out_(path, stdout, "events file", "events", "events", secrets) {}

void JsonLinesSink::write(const trace::Event& e) {
  if (e.as<trace::ev::TraceDropped>() && out_.output().failed()) return;  // its own losses: counted apart
  std::string& buf = out_.buffer();
  trace::appendJsonLine(e, buf);
  buf.push_back('\n');
  out_.spillIfFull();
}

KeylogSink::KeylogSink(const std::string& path)
    : out_([&] {
        OutputFile::Spec s;
        s.path = path;
        s.output = "keylog";
        s.what = "key log";
        s.mode = 0600;
        s.blocking = false;
        return s;
      }()) {}

bool isNssKeylogLabel(std::string_view label) {
  static constexpr std::array<std::string_view, 8> kLabels = {"CLIENT_RANDOM",
                                                              "CLIENT_EARLY_TRAFFIC_SECRET",
                                                              "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                                                              "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                                                              "CLIENT_TRAFFIC_SECRET_0",
                                                              "SERVER_TRAFFIC_SECRET_0",
                                                              "EARLY_EXPORTER_SECRET",
                                                              "EXPORTER_SECRET"};
  return std::find(kLabels.begin(), kLabels.end(), label) != kLabels.end();
}

bool isNssKeylogLine(std::string_view line) {
  const auto sp = line.find(' ');
  return sp != std::string_view::npos && isNssKeylogLabel(line.substr(0, sp));
}

void KeylogSink::writeLine(std::string_view line) {
  if (!isNssKeylogLine(line)) return;
  std::string l(line);
  l.push_back('\n');
  (void)out_.write(l, 1);
}

}  // namespace tlstrace::sinks
