#include "report/page.h"

#ifdef TLSTRACE_ZLIB
#include <zlib.h>
#endif

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

// RFC 4648 4 base64, with padding.
std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const unsigned v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    for (int k = 18; k >= 0; k -= 6) out += kAlphabet[(v >> k) & 63];
  }
  if (const std::size_t rest = in.size() - i; rest > 0) {
    const unsigned v = (p[i] << 16) | (rest == 2 ? p[i + 1] << 8 : 0);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// zlib format (RFC 1950), what DecompressionStream("deflate") reads; empty when not built with zlib.
std::string deflate(std::string_view in) {
#ifdef TLSTRACE_ZLIB
  uLongf size = compressBound(static_cast<uLong>(in.size()));
  std::string out(size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(out.data()), &size, reinterpret_cast<const Bytef*>(in.data()),
                static_cast<uLong>(in.size()), 6) != Z_OK)
    return {};
  out.resize(size);
  return out;
#else
  (void)in;
  return {};
#endif
}

// The template's {{name}} markers filled in one pass over the template: an inserted value (the
// data, a title) is never scanned again, so a string in it that looks like a marker stays text.
std::string fill(std::string_view tpl, std::string_view title, PageMode mode, const DataBlock& data) {
  std::string out;
  out.reserve(tpl.size() + kPageCss.size() + kPageJs.size() + data.text.size());
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
    else if (name == "encoding") out += data.encoding;
    else if (name == "data") out += data.text;
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

bool canCompress() {
#ifdef TLSTRACE_ZLIB
  return true;
#else
  return false;
#endif
}

DataBlock dataBlock(const trace::Json& data, std::size_t compress_above) {
  std::string json = scriptSafeJson(data);
  if (json.size() > compress_above) {
    if (std::string z = deflate(json); !z.empty()) return {"deflate-base64", base64(z)};
  }
  return {"json", std::move(json)};
}

std::string renderPage(const trace::Json& data, PageMode mode, std::string_view title) {
  return fill(kPageHtml, trace::escapeText(title), mode, dataBlock(data));
}

}  // namespace tlstrace::report
