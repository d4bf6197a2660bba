#include "sinks/sinks.h"

#include <fcntl.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "trace/text.h"

namespace tlstrace::sinks {

TextSink::TextSink(const std::string& path, trace::TextFormat format) : format_(format) {
  if (path.empty()) {
    log_ = std::make_shared<spdlog::logger>("trace", std::make_shared<spdlog::sinks::stderr_sink_st>());
  } else {
    log_ = std::make_shared<spdlog::logger>(
        "trace", std::make_shared<spdlog::sinks::basic_file_sink_st>(path, false));
  }
  log_->set_pattern("%v");
  log_->set_level(spdlog::level::info);
  // Flushed by the tracer at the end of each burst of work, not per event (one write per burst).
  log_->flush_on(spdlog::level::off);
}

TextSink::~TextSink() { flush(); }

void TextSink::write(const trace::Event& e) {
  std::string text = trace::renderText(e, format_);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  log_->info(text);
}

void TextSink::flush() { log_->flush(); }

JsonLinesSink::JsonLinesSink(const std::string& path) {
  if (path == "-") {
    f_ = stdout;
    return;
  }
  f_ = std::fopen(path.c_str(), "a");
  if (!f_) throw std::runtime_error("cannot open events file " + path + ": " + std::strerror(errno));
  owned_ = true;
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
}

JsonLinesSink::~JsonLinesSink() {
  flush();
  if (owned_ && f_) std::fclose(f_);
}

void JsonLinesSink::write(const trace::Event& e) {
  line_.clear();
  trace::appendJsonLine(e, line_);
  line_.push_back('\n');
  // Whole lines into the stdio buffer; the tracer flushes at the end of each burst of work, so a
  // reader (CI, tail -f) sees complete lines as they happen, at one write per burst.
  std::fwrite(line_.data(), 1, line_.size(), f_);
}

void JsonLinesSink::flush() {
  if (f_) std::fflush(f_);
}

int openPrivateAppend(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  return fd;
}

KeylogSink::KeylogSink(const std::string& path) : fd_(openPrivateAppend(path)) {}

KeylogSink::~KeylogSink() {
  if (fd_ >= 0) ::close(fd_);
}

void KeylogSink::writeLine(std::string_view line) {
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
