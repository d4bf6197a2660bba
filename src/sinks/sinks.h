// Trace sinks: the human-readable text trace (spdlog), JSON Lines, and the NSS key log.
#pragma once
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "trace/event.h"
#include "trace/text.h"

namespace spdlog {
class logger;
}

namespace tlstrace::sinks {

// Text trace to a file or stderr; every line carries time, connection id and leg.
class TextSink : public trace::Sink {
 public:
  explicit TextSink(const std::string& path, trace::TextFormat format = trace::TextFormat::Default);  // "" = stderr
  ~TextSink() override;
  void write(const trace::Event& e) override;
  void flush() override;

 private:
  std::shared_ptr<spdlog::logger> log_;
  trace::TextFormat format_;
};

// JSON Lines: one object per line, written whole so that no line is ever torn.
class JsonLinesSink : public trace::Sink {
 public:
  explicit JsonLinesSink(const std::string& path);  // "-" = stdout
  ~JsonLinesSink() override;
  void write(const trace::Event& e) override;
  void flush() override;

 private:
  std::FILE* f_ = nullptr;
  bool owned_ = false;
  std::string line_;
};

// NSS key log (https://firefox-source-docs.mozilla.org/security/nss/legacy/key_log_format/):
// created 0600, appended, one write(2) per line so a live Wireshark sees each secret at once.
class KeylogSink {
 public:
  explicit KeylogSink(const std::string& path);
  ~KeylogSink();
  KeylogSink(const KeylogSink&) = delete;
  KeylogSink& operator=(const KeylogSink&) = delete;
  void writeLine(std::string_view line);

 private:
  int fd_ = -1;
  std::mutex mu_;
};

// Opens a file for secrets: created 0600 (never widened), appended. Throws on failure.
[[nodiscard]] int openPrivateAppend(const std::string& path);

}  // namespace tlstrace::sinks
