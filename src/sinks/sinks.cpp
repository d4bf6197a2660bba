#include "sinks/sinks.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "sinks/files.h"
#include "trace/text.h"

namespace tlstrace::sinks {

BufferedFile::BufferedFile(const std::string& path, std::FILE* fallback, const char* what, bool secrets) {
  if (path.empty() || path == "-") {
    f_ = path.empty() ? fallback : stdout;
  } else {
    const int fd = openOutputFileOrThrow(path, what, 0, secrets);
    f_ = ::fdopen(fd, "a");
    if (!f_) {
      ::close(fd);
      throw std::runtime_error(std::string("cannot open ") + what + " " + path + ": " + std::strerror(errno));
    }
    owned_ = true;
  }
}

BufferedFile::~BufferedFile() {
  flush();
  if (owned_) std::fclose(f_);
}

void BufferedFile::flush() {
  if (!buf_.empty()) std::fwrite(buf_.data(), 1, buf_.size(), f_);
  buf_.clear();
  std::fflush(f_);
}

TextSink::TextSink(const std::string& path, trace::TextFormat format, bool secrets)
    : out_(path, stderr, "trace log", secrets), format_(format) {}

void TextSink::write(const trace::Event& e) {
  std::string& buf = out_.buffer();
  const std::size_t at = buf.size();
  trace::appendText(e, format_, buf);
  if (buf.size() > at && buf.back() != '\n') buf.push_back('\n');
  out_.spillIfFull();
}

JsonLinesSink::JsonLinesSink(const std::string& path, bool secrets) : out_(path, stdout, "events file", secrets) {}

void JsonLinesSink::write(const trace::Event& e) {
  std::string& buf = out_.buffer();
  trace::appendJsonLine(e, buf);
  buf.push_back('\n');
  out_.spillIfFull();
}

KeylogSink::KeylogSink(const std::string& path) : fd_(openOutputFileOrThrow(path, "key log", 0, true)) {}

KeylogSink::~KeylogSink() {
  if (fd_ >= 0) ::close(fd_);
}

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
  std::lock_guard<std::mutex> lock(mu_);
  std::size_t off = 0;
  while (off < l.size()) {
    ssize_t n = ::write(fd_, l.data() + off, l.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

}  // namespace tlstrace::sinks
