#include "trace/text.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "trace/escape.h"
#include "trace/raw_writer.h"
#include "trace/text_internal.h"
#include "wire/registry.h"

namespace tlstrace::trace {

using namespace std::string_view_literals;  // literal appends without strlen
using namespace text_detail;

namespace {

constexpr std::size_t kInlineWidth = 96;

// A flat value as the text trace shows it: strings bare (escaped: a peer's bytes may be anything),
// {id, name} pairs as "name (0xid)".
template <class J>  // Json, or a value of a tls.message body (BodyNode): the same text
void appendScalar(const J& j, std::string& out) {
  if (j.isString()) {
    appendEscapedText(j.asString(), out);
  } else if (isCodeName(j)) {  // fields in that order: read them in place
    const auto& o = j.asObject();
    appendEscapedText(o[1].second.asString(), out);
    static constexpr char kDigits[] = "0123456789abcdef";
    const std::int64_t v = o[0].second.asInt();
    const char tail[] = {' ',
                         '(',
                         '0',
                         'x',
                         kDigits[(v >> 12) & 0xf],
                         kDigits[(v >> 8) & 0xf],
                         kDigits[(v >> 4) & 0xf],
                         kDigits[v & 0xf],
                         ')'};
    out.append(tail, sizeof tail);  // one append: there are hundreds of these per connection
  } else {
    j.dumpTo(out);
  }
}

// "[i]" for array items, built piecewise: `"[" + std::to_string(i)` trips a GCC 12 -Wrestrict
// false positive (GCC bug 105329) at -O3.
std::string indexLabel(std::size_t i) {
  std::string s(1, '[');
  s += std::to_string(i);
  s += ']';
  return s;
}

template <class J>
bool isFlat(const J& j) {
  return !(j.isArray() || j.isObject()) || isCodeName(j);
}

template <class J>
bool appendInline(const J& j, int depth, std::string& out);

// At most `limit` or a lower bound of appendInline()'s width for `j`, whichever is smaller, without
// rendering: escaping only lengthens, a code is at least its name and " (0x....)", a number or
// literal one character, a nested list or object its brackets. Most values too wide for one line
// are known so without being rendered only to be cut back (every nested value is tried).
template <class J>
std::size_t inlineWidthAtLeast(const J& j, std::size_t limit) {
  if (j.isString()) return j.asString().size();
  if (isCodeName(j)) return j.asObject()[1].second.asString().size() + 9;
  if (!j.isArray() && !j.isObject()) return 1;
  std::size_t w = 2;  // the brackets
  const auto item = [&](std::size_t key, const auto& v) {
    w += (w > 2 ? 2 : 0) + key + (isFlat(v) ? inlineWidthAtLeast(v, limit) : 2);
    return w > limit;
  };
  if (j.isArray()) {
    for (const auto& x : j.asArray())
      if (item(0, x)) break;
  } else {
    for (const auto& [k, v] : j.asObject())
      if (item(k.size() + 1, v)) break;  // "k="
  }
  return std::min(w, limit + 1);
}

// One-line form of an array of flat items, or of a small object whose values are flat (or flat
// arrays), appended to `out`; false (with `out` partly written: the caller cuts it back) when it
// does not fit in kInlineWidth. Written in place: this is tried for every nested value.
template <class J>
bool appendInline(const J& j, int depth, std::string& out) {
  const std::size_t start = out.size();
  if (j.isArray()) {
    out += '[';
    bool first = true;
    for (const auto& x : j.asArray()) {
      const std::size_t before = out.size() - start;  // the width so far, without the separator
      if (!first) out += ", "sv;
      const std::size_t item_at = out.size();
      if (isFlat(x)) appendScalar(x, out);
      else if (depth != 0 || !x.isObject() || !appendInline(x, depth + 1, out)) return false;
      const std::size_t item = out.size() - item_at;
      if (item == 0 || before + item > kInlineWidth) return false;  // give up early
      first = false;
    }
    out += ']';
  } else if (j.isObject()) {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : j.asObject()) {
      const std::size_t before = out.size() - start;
      if (!first) out += ", "sv;
      appendEscapedText(k, out);
      out += '=';
      const std::size_t item_at = out.size();
      if (isFlat(v)) appendScalar(v, out);
      else if (depth != 0 || !v.isArray() || !appendInline(v, depth + 1, out)) return false;
      const std::size_t item = out.size() - item_at;
      if (item == 0 || before + k.size() + item > kInlineWidth) return false;
      first = false;
    }
    out += '}';
  } else {
    appendScalar(j, out);
  }
  return out.size() - start <= kInlineWidth;
}

// A long list of flat items, wrapped at kInlineWidth with aligned continuation lines.
template <class J>
bool wrapFlatList(const std::string& prefix, const std::string& head, const J& v, std::string& out) {
  for (const auto& x : v.asArray())
    if (!isFlat(x)) return false;
  const std::string cont(head.size(), ' ');
  std::string line = head;
  bool first = true;
  std::string item;
  for (const auto& x : v.asArray()) {
    item.clear();
    appendScalar(x, item);
    item += ',';
    if (!first && line.size() + 1 + item.size() > kInlineWidth + head.size()) {
      out += prefix;
      out += line;
      out += '\n';
      line = cont;
      first = true;
    }
    if (!first) line += ' ';
    line += item;
    first = false;
  }
  if (!line.empty() && line.back() == ',') line.pop_back();
  out += prefix;
  out += line;
  out += '\n';
  return true;
}

// Appends "<prefix><indent><key>: " without temporaries and in one growth of `out` (this runs for
// every line of the trace); `key` is escaped already.
void lineHead(std::string& out, const std::string& prefix, int indent, std::string_view key) {
  const std::size_t at = out.size(), pad = static_cast<std::size_t>(indent) * 2;
  out.append(prefix.size() + pad + key.size() + 2, ' ');  // the blanks after the prefix are the indent
  char* p = out.data() + at;
  std::memcpy(p, prefix.data(), prefix.size());
  p += prefix.size() + pad;
  std::memcpy(p, key.data(), key.size());
  p[key.size()] = ':';
}

template <class J>
void renderValue(const std::string& prefix, int indent, std::string_view raw_key, const J& v, std::string& out) {
  // (keys are ours, but an events file read by `convert` may have any)
  const std::string key =
      plainTextPrefix(raw_key.data(), raw_key.size()) == raw_key.size() ? std::string(raw_key) : escapeText(raw_key);
  if (isFlat(v)) {
    lineHead(out, prefix, indent, key);
    appendScalar(v, out);
    out += '\n';
    return;
  }
  const std::size_t mark = out.size();
  lineHead(out, prefix, indent, key);
  const std::size_t inline_at = out.size();
  if (inlineWidthAtLeast(v, kInlineWidth) <= kInlineWidth && appendInline(v, 0, out) && out.size() > inline_at) {
    out += '\n';
    return;
  }
  out.resize(mark);
  const std::string pad(static_cast<std::size_t>(indent) * 2, ' ');
  if (v.isArray()) {
    if (wrapFlatList(prefix, pad + key + " (" + std::to_string(v.asArray().size()) + "): ", v, out)) return;
    out += prefix + pad + key + ": (" + std::to_string(v.asArray().size()) + ")\n";
    std::size_t i = 0;
    for (const auto& x : v.asArray()) renderValue(prefix, indent + 1, indexLabel(i++), x, out);
    return;
  }
  // Extensions read best as "[3]: key_share (0x0033), 38 bytes" followed by their fields.
  const auto type = v.find("type");
  const auto length = v.find("length");
  if (type && length && isCodeName(*type)) {
    lineHead(out, prefix, indent, key);
    appendScalar(*type, out);
    out += ", "sv;
    appendScalar(*length, out);
    out += " bytes\n"sv;
    for (const auto& [k, x] : v.asObject())
      if (k != "type" && k != "length") renderValue(prefix, indent + 1, k, x, out);
    return;
  }
  out += prefix;
  out += pad;
  out += key;
  out += ":\n"sv;
  for (const auto& [k, x] : v.asObject()) renderValue(prefix, indent + 1, k, x, out);
}

// The hellos' flattened convenience fields (events.md) repeat what their extensions already show
// decoded; the JSON keeps both, the text shows each fact once.
bool repeatsAnExtension(std::string_view type, std::string_view field) {
  if (type == "ClientHello")
    return field == "sni" || field == "alpn" || field == "supported_versions" || field == "supported_groups" ||
           field == "key_share" || field == "signature_algorithms";
  if (type == "ServerHello" || type == "HelloRetryRequest")
    return field == "selected_version" || field == "key_share" || field == "alpn";
  return false;
}

// RFC 8446 5.1 ContentType, as the text trace names it ("" for other values).
std::string_view contentTypeText(std::int64_t t) {
  switch (t) {
    case 20: return "change_cipher_spec(20)";
    case 21: return "alert(21)";
    case 22: return "handshake(22)";
    case 23: return "application_data(23)";
    case 24: return "heartbeat(24)";
    default: return {};
  }
}

// "HH:MM:SS.uuuuuu #<conn> <leg, padded to 8> ": how every line of the default trace starts.
constexpr std::size_t kLinePrefixMax = 15 + 2 + 20 + 1 + 8 + 1;
char* writeLinePrefix(const Event& e, char* out) {
  char stamp[kTimestampLength];
  writeTimestamp(e.ts, stamp);
  std::memcpy(out, stamp + 11, 15);
  out += 15;
  *out++ = ' ';
  *out++ = '#';
  out = std::to_chars(out, out + 20, e.conn).ptr;
  *out++ = ' ';
  // The leg in a column of 9 ("upstream" and a space): blanks first, then the name over them.
  const std::string_view leg = e.leg == Leg::None ? std::string_view("-") : legName(e.leg);
  std::memset(out, ' ', 9);
  std::memcpy(out, leg.data(), leg.size());
  return out + 9;
}

// The one line of a tls.record event, prefix included, written at once (these come once per
// record, by the thousand: one line each, as in a packet list).
void appendRecordLine(const Event& e, const ev::TlsRecord& r, std::string& out) {
  RawWriter w(out, kLinePrefixMax + 64);
  if (char* p = w.at(kLinePrefixMax)) w.advance(writeLinePrefix(e, p));
  w.add(r.in ? "<- record " : "-> record ");
  if (const auto name = contentTypeText(r.content_type); !name.empty()) {
    w.add(name);
  } else {
    w.add("unknown(");
    w.number(r.content_type);
    w.add(')');
  }
  w.add(' ');
  w.add(wire::versionName(r.version));
  w.add(", ");
  w.number(r.length);
  w.add(" bytes\n");
}

// The one line of a data event (once per relayed chunk).
void appendDataLine(const Event& e, const ev::Data& d, std::string& out) {
  RawWriter w(out, kLinePrefixMax + 64 + 2 * HeadBytes::kMax);
  if (char* p = w.at(kLinePrefixMax)) w.advance(writeLinePrefix(e, p));
  w.add(d.in ? "<- data " : "-> data ");
  w.number(d.bytes);
  w.add(" bytes: ");
  w.hex(d.head.view());
  w.add('\n');
}

// The events the default trace shows in one line after the prefix; false for the others.
bool appendOneLine(const Event& e, std::string& out) {
  if (const auto* d = e.as<ev::TraceDropped>()) {  // one line: what an output lost, and why
    out += "== trace.dropped: "sv;
    out += d->output;
    if (d->path) (out += ' ') += *d->path;
    out += ": "sv;
    out += std::to_string(d->lost);
    (out += ' ') += d->unit;
    out += " lost ("sv;
    out += std::to_string(d->total);
    out += " in all)"sv;
    if (d->error) (out += ": "sv) += *d->error;
    out += '\n';
    return true;
  }
  if (const auto* st = e.as<ev::ConnStartTls>()) {  // one line per preamble message, escaped
    out += "<- starttls "sv;
    appendEscapedText(st->proto, out);
    out += ' ';
    appendEscapedText(st->step, out);
    out += ": "sv;
    appendEscapedText(st->text, out);
    out += '\n';
    return true;
  }
  if (const auto* t = e.as<ev::TcpState>()) {  // one compact line per kernel transition
    out += e.leg == Leg::Upstream ? "  proxy\u21c4server  "sv : "  client\u21c4proxy  "sv;
    appendEscapedText(t->from, out);  // convert reads them from a file: escaped like any text
    out += " \u2192 "sv;
    appendEscapedText(t->to, out);
    if (t->reset && *t->reset) out += " (reset)"sv;
    if (t->since_ms) {
      char ms[32];
      std::snprintf(ms, sizeof ms, " (+%.1f ms)", *t->since_ms);
      out += ms;
    }
    if (t->source != "ebpf") {
      out += " ["sv;
      appendEscapedText(t->source, out);
      out += ']';
    }
    out += '\n';
    return true;
  }
  return false;
}

// A handshake message: its headline, then its body's fields flat, read from the body in place.
void appendMessage(const ev::TlsMessage& m, const std::string& prefix, std::string& out) {
  out += m.dir == "in" ? "<- " : "-> ";
  appendEscapedText(m.type, out);
  out += " ("sv;
  out += std::to_string(m.length);
  out += " bytes)\n"sv;
  for (const auto& [k, v] : m.body.root().asObject())
    if (!repeatsAnExtension(m.type, k)) renderValue(prefix, 2, k, v, out);
  if (m.fingerprints) renderValue(prefix, 2, "fingerprints", *m.fingerprints, out);
}

void appendDefault(const Event& e, std::string& out) {
  if (const auto* r = e.as<ev::TlsRecord>()) return appendRecordLine(e, *r, out);
  if (const auto* d = e.as<ev::Data>()) return appendDataLine(e, *d, out);
  // Built once per event, in a per-thread string (every nested line repeats it).
  thread_local std::string prefix;
  char buf[kLinePrefixMax];
  prefix.assign(buf, writeLinePrefix(e, buf));
  if (const auto step = appendTcpLadder(e, prefix, out); step == LadderStep::Done) return;
  out += prefix;
  if (appendOneLine(e, out)) return;
  if (const auto* m = e.as<ev::TlsMessage>()) return appendMessage(*m, prefix, out);
  std::string_view skip1, skip2, skip3;  // fields already shown in the headline
  if (const auto* a = e.as<ev::TlsAlert>()) {
    out += a->dir == "in" ? "<- Alert " : "-> Alert ";
    appendEscapedText(a->level, out);
    out += ' ';
    appendEscapedText(a->description, out);
    out += '\n';
    skip1 = "dir", skip2 = "level", skip3 = "description";
  } else {
    out += "== "sv;
    appendEscapedText(e.name(), out);
    out += '\n';
  }
  forEachField(e, [&](std::string_view k, const Json& v) {
    if (k == skip1 || k == skip2 || k == skip3) return;
    renderValue(prefix, 2, k, v, out);
  });
}

}  // namespace

namespace text_detail {

bool isCodeName(const Json& j) {
  if (!j.isObject()) return false;
  const auto& o = j.asObject();
  return o.size() == 2 && std::string_view(o[0].first) == "id" && std::string_view(o[1].first) == "name";
}

bool isCodeName(const BodyNode& j) { return j.isCode(); }

std::string scalar(const Json& j) {
  std::string s;
  appendScalar(j, s);
  return s;
}

std::string str(const Json& f, std::string_view key) {
  const Json* v = f.find(key);
  return v ? scalar(*v) : std::string{};
}

std::string rawStr(const Json& f, std::string_view key) {
  const Json* v = f.find(key);
  return v ? std::string(v->asString()) : std::string{};
}

std::string esc(std::string_view s) { return escapeText(s); }

void appendEscapedLines(std::string& out, const std::string& indent, std::string_view text) {
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) nl = text.size();
    out += indent;
    appendEscapedText(text.substr(at, nl - at), out);
    out += '\n';
    at = nl + 1;
  }
}

std::string upperHex(std::string_view lower_hex) {
  std::string s(lower_hex);
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Also for codes with more fields after id and name (a client key share: {id, name, length, ...}).
std::int64_t codeId(const Json& j) {
  const Json* id = j.find("id");
  return id ? id->asInt() : 0;
}
std::string codeNameOf(const Json& j) {
  const Json* name = j.find("name");
  return name ? escapeText(name->asString()) : std::string{};
}

const Json& field(const Json& obj, std::string_view key) {
  static const Json kNull;
  const Json* v = obj.find(key);
  return v ? *v : kNull;
}

std::int64_t intField(const Json& obj, std::string_view key) { return field(obj, key).asInt(); }

}  // namespace text_detail

bool parseTextFormat(std::string_view s, TextFormat& out) {
  if (s == "default") out = TextFormat::Default;
  else if (s == "jsse") out = TextFormat::Jsse;
  else if (s == "openssl") out = TextFormat::Openssl;
  else return false;
  return true;
}

void appendText(const Event& e, TextFormat format, std::string& out) {
  switch (format) {
    case TextFormat::Jsse: out += renderJsse(e); return;
    case TextFormat::Openssl: out += renderOpenssl(e); return;
    case TextFormat::Default: appendDefault(e, out); return;
  }
}

std::string renderText(const Event& e, TextFormat format) {
  std::string out;
  appendText(e, format, out);
  return out;
}

}  // namespace tlstrace::trace
