#include "sinks/convert.h"

#include <algorithm>
#include <utility>

#include "sinks/sinks.h"
#include "trace/escape.h"
#include "trace/event.h"

namespace tlstrace::sinks {

namespace {

bool isHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); });
}

// The offset of the first byte that is not well-formed UTF-8 (RFC 3629 4: no overlong form, no
// surrogate, nothing above U+10FFFF), or npos. An events file is UTF-8 (RFC 8259 8.1): the writer
// escapes a peer's other bytes (docs/events.md), so such a line was not written by tlstrace.
std::size_t invalidUtf8At(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t i = trace::plainJsonPrefix(s.data(), s.size()); i < s.size();) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const std::size_t len = trace::utf8SequenceLength(p + i, s.size() - i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

constexpr std::size_t kReportedMax = 20;  // bad lines named one by one; the rest are counted

}  // namespace

void forEachLine(std::FILE* in, const std::function<void(std::string_view, bool)>& each) {
  std::string line;
  char buf[65536];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) {
    std::string_view chunk(buf, n);
    for (std::size_t nl; (nl = chunk.find('\n')) != std::string_view::npos; chunk.remove_prefix(nl + 1)) {
      if (line.empty()) {
        each(chunk.substr(0, nl), false);
      } else {
        line.append(chunk.substr(0, nl));
        each(line, false);
        line.clear();
      }
    }
    line.append(chunk);
  }
  if (!line.empty()) each(line, true);
}

bool parseEventLine(std::string_view line, trace::Event& e, std::string& why) {
  if (const std::size_t at = invalidUtf8At(line); at != std::string_view::npos) {
    why = "not UTF-8 (byte " + std::to_string(at) + ")";
    return false;
  }
  std::string err;
  const auto j = trace::Json::parse(line, &err);
  if (!j) {
    why = "not JSON (" + err + ")";
    return false;
  }
  if (!trace::fromJson(*j, e, &err)) {
    why = "not an event: " + err;
    return false;
  }
  return true;
}

EventsConverter::EventsConverter(std::string file, To to, trace::TextFormat format)
    : file_(std::move(file)), to_(to), format_(format) {}

bool EventsConverter::fail(std::string why) {
  ++bad;
  error_ = file_ + ":" + std::to_string(lines) + ": " + why;
  return false;
}

bool EventsConverter::parse(std::string_view line, trace::Event& e) {
  ++lines;
  if (std::string why; !parseEventLine(line, e, why)) return fail(why);
  return true;
}

bool EventsConverter::feed(std::string_view line, std::string& out) {
  if (line.empty()) {
    ++lines;
    return true;
  }
  trace::Event e;
  if (!parse(line, e)) return false;
  if (to_ == To::Text) {
    trace::appendText(e, format_, out);
    return true;
  }
  const auto* s = e.as<trace::ev::TlsSecret>();
  if (!s) return true;
  if (!s->secret) {
    ++withheld;
    return true;
  }
  if (!isNssKeylogLabel(s->label)) return true;  // what the live key log would not hold either
  // The fields go into a line of their own format: only hex, so that no line can be forged.
  if (s->client_random.size() != 64 || !isHex(s->client_random))
    return fail("tls.secret: field 'client_random' is not 32 bytes of hex");
  if (s->secret->empty() || s->secret->size() % 2 != 0 || !isHex(*s->secret))
    return fail("tls.secret: field 'secret' is not hex");
  out += s->label;
  out += ' ';
  out += s->client_random;
  out += ' ';
  out += *s->secret;
  out += '\n';
  ++secrets;
  return true;
}

int EventsConverter::run(std::FILE* in, std::FILE* out, const Report& report) {
  std::string rendered;
  forEachLine(in, [&](std::string_view text, bool last) {
    rendered.clear();
    const std::size_t before = bad;
    if (!feed(text, rendered) && bad <= kReportedMax) report(true, error_);
    std::fwrite(rendered.data(), 1, rendered.size(), out);
    if (last && bad > before && bad <= kReportedMax)
      report(true, file_ + ": its last line has no newline: a cut-off file?");
  });
  return verdict(report);
}

int EventsConverter::read(std::FILE* in, const std::function<void(const trace::Event&)>& each, const Report& report) {
  forEachLine(in, [&](std::string_view text, bool last) {
    trace::Event e;
    const std::size_t before = bad;
    if (text.empty()) ++lines;
    else if (parse(text, e)) each(e);
    else if (bad <= kReportedMax) report(true, error_);
    if (last && bad > before && bad <= kReportedMax)
      report(true, file_ + ": its last line has no newline: a cut-off file?");
  });
  return verdict(report);
}

int EventsConverter::verdict(const Report& report) const {
  if (bad > kReportedMax) report(true, file_ + ": " + std::to_string(bad - kReportedMax) + " more lines not events");
  if (bad > 0)
    report(true, file_ + ": " + std::to_string(bad) + " of " + std::to_string(lines) +
                     " lines are not events (skipped; the others are converted)");
  // Nothing printed is an error (exit 1) that says why; some secrets withheld is only a warning.
  if (to_ == To::Keylog && secrets == 0) {
    if (withheld > 0)
      report(true, "no key log lines: the " + std::to_string(withheld) +
                       " tls.secret events carry no secret: record with --log-secrets (or use --keylog)");
    else
      report(true, "no key log lines: " + file_ +
                       " has no tls.secret events: record with --trace keys --log-secrets (or use --keylog)");
    return bad > 0 ? 2 : 1;
  }
  if (to_ == To::Keylog && withheld > 0)
    report(false, std::to_string(withheld) +
                      " tls.secret events carry no secret (recorded without --log-secrets): not in the key log");
  return bad > 0 ? 2 : 0;
}

}  // namespace tlstrace::sinks
