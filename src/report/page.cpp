#include "report/page.h"

#include "report/page_assets.h"
#include "trace/escape.h"

namespace tlstrace::report {

namespace {

// Text in an HTML element: the five characters HTML gives meaning to, escaped.
std::string htmlText(std::string_view s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// The template's {{name}} markers filled in one pass over the template: an inserted value (the
// data, a title) is never scanned again, so a string in it that looks like a marker stays text.
std::string fill(std::string_view tpl, std::string_view title, PageMode mode, const std::string& data) {
  std::string out;
  out.reserve(tpl.size() + kPageCss.size() + kPageJs.size() + data.size());
  std::size_t at = 0;
  for (std::size_t open; (open = tpl.find("{{", at)) != std::string_view::npos;) {
    const std::size_t close = tpl.find("}}", open);
    if (close == std::string_view::npos) break;
    out.append(tpl.substr(at, open - at));
    const std::string_view name = tpl.substr(open + 2, close - open - 2);
    if (name == "title") out += htmlText(title);
    else if (name == "mode") out += mode == PageMode::Live ? "live" : "file";
    // The live page may talk to the proxy that served it (its /events stream); a file, to nothing.
    else if (name == "connect") out += mode == PageMode::Live ? "'self'" : "'none'";
    else if (name == "css") out += kPageCss;
    else if (name == "js") out += kPageJs;
    else if (name == "data") out += data;
    at = close + 2;
  }
  out.append(tpl.substr(at));
  return out;
}

}  // namespace

std::string scriptSafeJson(const trace::Json& data) {
  // (the JSON writer keeps every string valid UTF-8 with U+2028/U+2029 escaped: docs/events.md)
  const std::string text = data.dump();
  std::string out;
  out.reserve(text.size() + text.size() / 64);
  for (const char c : text) {
    if (c == '<') out += "\\u003c";
    else out += c;
  }
  return out;
}

std::string renderPage(const trace::Json& data, PageMode mode, std::string_view title) {
  return fill(kPageHtml, trace::escapeText(title), mode, scriptSafeJson(data));
}

}  // namespace tlstrace::report
