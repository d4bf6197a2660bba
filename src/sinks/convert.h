// `tlstrace convert`: a recorded events file (JSON Lines) re-rendered as the text trace or as an NSS
// key log. Every line is untrusted input (a file cut off, edited, or not ours at all): a line that
// is not an event of docs/events.md is an error naming the file, the line and the field, never a
// crash, and no byte of it reaches a key log line unchecked.
#pragma once
#include <cstddef>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include "trace/event.h"
#include "trace/text.h"

namespace tlstrace::trace {
struct Event;
}

namespace tlstrace::sinks {

// The one reader of recorded events files (`convert`, `check`, `report`): each line of `in`, without
// its newline, to `line(text, last)`; `last` is true for a final line that had no newline (a file
// cut off). fread, not fgets: a NUL byte is part of a line (and makes it invalid), not its end.
void forEachLine(std::FILE* in, const std::function<void(std::string_view, bool)>& line);

// One line as an event of docs/events.md: well-formed UTF-8, JSON, and every field of its kind.
// False with `why` otherwise.
bool parseEventLine(std::string_view line, trace::Event& e, std::string& why);

class EventsConverter {
 public:
  enum class To { Text, Keylog };
  // (is_error, message): each bad line, then the verdict, for stderr.
  using Report = std::function<void(bool, const std::string&)>;

  // `file`: the name errors give.
  EventsConverter(std::string file, To to, trace::TextFormat format);

  // One line without its newline: its rendering is appended to `out`; false when it is not an
  // event, with error() saying "FILE:LINE: why".
  bool feed(std::string_view line, std::string& out);
  [[nodiscard]] const std::string& error() const { return error_; }

  // The whole input, `out` written as it goes. Returns the exit status: 2 when a line was not an
  // event (docs/cli.md: an input error), 1 when `--to keylog` had nothing to print, else 0.
  int run(std::FILE* in, std::FILE* out, const Report& report);

  // One line parsed into an event, with the same checks as feed() (`tlstrace report` reads
  // events through here): false when it is not one, with error() saying why.
  bool parse(std::string_view line, trace::Event& e);
  // The whole input, each event handed to `each`, bad lines reported as run() does. Returns 2 when
  // a line was not an event, else 0.
  int read(std::FILE* in, const std::function<void(const trace::Event&)>& each, const Report& report);

  std::size_t lines = 0, bad = 0, secrets = 0, withheld = 0;

 private:
  bool fail(std::string why);
  int verdict(const Report& report) const;

  std::string file_;
  To to_;
  trace::TextFormat format_;
  std::string error_;
};

}  // namespace tlstrace::sinks
