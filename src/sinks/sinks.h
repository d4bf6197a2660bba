// Trace sinks: the human-readable text trace, JSON Lines, and the NSS key log.
#pragma once
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "sinks/output.h"
#include "trace/event.h"
#include "trace/text.h"

namespace tlstrace::sinks {

// A trace file (or a standard stream) written in large chunks of whole lines: the tracer's writer
// thread flushes it whenever it catches up, so readers see whole lines at one write per burst.
// Write errors, reopening and loss counting: OutputFile.
class BufferedFile {
 public:
  // `path` "-" = stdout, "" = `fallback` (stderr for the text trace). `output`, `unit`: as
  // trace.dropped names them.
  // `secrets`: created 0600 and another user's file refused (openOutputFile).
  BufferedFile(const std::string& path, std::FILE* fallback, const char* what, const char* output = "console",
               const char* unit = "lines", bool secrets = false);
  ~BufferedFile();
  BufferedFile(const BufferedFile&) = delete;
  BufferedFile& operator=(const BufferedFile&) = delete;
  // Sinks render into buffer() in place, then call spillIfFull().
  [[nodiscard]] std::string& buffer() { return buf_; }
  void spillIfFull() {
    if (buf_.size() >= kChunk) flush();
  }
  void flush();
  [[nodiscard]] OutputFile& output() { return out_; }

 private:
  static constexpr std::size_t kChunk = 256 * 1024;
  OutputFile out_;
  std::string buf_;
};

// Text trace to a file or stderr; every line carries time, connection id and leg.
class TextSink : public trace::Sink {
 public:
  // "" = stderr. `secrets` (--log-secrets): the file is private (openOutputFile).
  explicit TextSink(const std::string& path, trace::TextFormat format = trace::TextFormat::Default,
                    bool secrets = false);
  void write(const trace::Event& e) override;
  void flush() override { out_.flush(); }
  [[nodiscard]] OutputFile& output() { return out_.output(); }

 private:
  BufferedFile out_;
  trace::TextFormat format_;
};

// JSON Lines: one object per line, written whole so that no line is ever torn.
class JsonLinesSink : public trace::Sink {
 public:
  explicit JsonLinesSink(const std::string& path, bool secrets = false);  // "-" = stdout
  void write(const trace::Event& e) override;
  void flush() override { out_.flush(); }
  [[nodiscard]] OutputFile& output() { return out_.output(); }

 private:
  BufferedFile out_;
};

// True for the labels a key log may carry: NSS's CLIENT_RANDOM and the TLS 1.3 secrets up to
// *_TRAFFIC_SECRET_0. OpenSSL's CLIENT/SERVER_TRAFFIC_SECRET_N after a KeyUpdate is not among them:
// Wireshark rejects the line ("unrecognized line") and derives each generation from *_0 itself; the
// events carry the generations (tls.secret, tls.keys epochs).
[[nodiscard]] bool isNssKeylogLabel(std::string_view label);
// A whole key log line ("LABEL client_random secret") with one of those labels.
[[nodiscard]] bool isNssKeylogLine(std::string_view line);

// NSS key log (https://firefox-source-docs.mozilla.org/security/nss/legacy/key_log_format/):
// created 0600, appended, one write(2) per line so a live Wireshark sees each secret at once.
// Lines with other labels are dropped (isNssKeylogLine). Written by the io threads: never waits
// for a FIFO's reader (its lines are held, then dropped and counted).
class KeylogSink {
 public:
  explicit KeylogSink(const std::string& path);
  void writeLine(std::string_view line);
  [[nodiscard]] OutputFile& output() { return out_; }

 private:
  OutputFile out_;
};

}  // namespace tlstrace::sinks
