#include "trace/text.h"

#include <charconv>
#include <cstdio>
#include <cstring>

#include "trace/raw_writer.h"
#include "wire/registry.h"

namespace tlstrace::trace {

using namespace std::string_view_literals;  // literal appends without strlen

namespace {

constexpr std::size_t kInlineWidth = 96;

bool isCodeName(const Json& j) {
  if (!j.isObject()) return false;
  const auto& o = j.asObject();
  return o.size() == 2 && std::string_view(o[0].first) == "id" && std::string_view(o[1].first) == "name";
}

void appendHex4(std::string& out, std::int64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  out += "0x"sv;
  for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kDigits[(v >> shift) & 0xf]);
}

// A flat value as the text trace shows it: strings bare, {id, name} pairs as "name (0xid)".
void appendScalar(const Json& j, std::string& out) {
  if (j.isString()) {
    out += j.asString();
  } else if (isCodeName(j)) {  // fields in that order: read them in place
    const auto& o = j.asObject();
    out += o[1].second.asString();
    out += " ("sv;
    appendHex4(out, o[0].second.asInt());
    out += ')';
  } else {
    j.dumpTo(out);
  }
}

std::string scalar(const Json& j) {
  std::string s;
  appendScalar(j, s);
  return s;
}

// "[i]" for array items, built piecewise: `"[" + std::to_string(i)` trips a GCC 12 -Wrestrict
// false positive (GCC bug 105329) at -O3.
std::string indexLabel(std::size_t i) {
  std::string s(1, '[');
  s += std::to_string(i);
  s += ']';
  return s;
}

bool isFlat(const Json& j) { return !(j.isArray() || j.isObject()) || isCodeName(j); }

bool appendInline(const Json& j, int depth, std::string& out);

// One-line form of an array of flat items, or of a small object whose values are flat (or flat
// arrays), appended to `out`; false (with `out` partly written: the caller cuts it back) when it
// does not fit in kInlineWidth. Written in place: this is tried for every nested value.
bool appendInline(const Json& j, int depth, std::string& out) {
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
      out += k;
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
bool wrapFlatList(const std::string& prefix, const std::string& head, const Json& v, std::string& out) {
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

// Appends "<prefix><indent><key>: " without temporaries (this runs for every line of the trace).
void lineHead(std::string& out, const std::string& prefix, int indent, std::string_view key) {
  out += prefix;
  out.append(static_cast<std::size_t>(indent) * 2, ' ');
  out += key;
  out += ": "sv;
}

void renderValue(const std::string& prefix, int indent, const std::string& key, const Json& v, std::string& out) {
  if (isFlat(v)) {
    lineHead(out, prefix, indent, key);
    appendScalar(v, out);
    out += '\n';
    return;
  }
  const std::size_t mark = out.size();
  lineHead(out, prefix, indent, key);
  const std::size_t inline_at = out.size();
  if (appendInline(v, 0, out) && out.size() > inline_at) {
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
  const Json* type = v.find("type");
  const Json* length = v.find("length");
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

std::string str(const Json& f, std::string_view key) {
  const Json* v = f.find(key);
  return v ? scalar(*v) : std::string{};
}

// The hellos' flattened convenience fields (events.md) repeat what their extensions already show
// decoded; the JSON keeps both, the text shows each fact once.
bool repeatsAnExtension(const std::string& type, const std::string& field) {
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

void appendDefault(const Event& e, std::string& out) {
  if (const auto* r = e.as<ev::TlsRecord>()) return appendRecordLine(e, *r, out);
  if (const auto* d = e.as<ev::Data>()) return appendDataLine(e, *d, out);
  // Built once per event, in a per-thread string (every nested line repeats it).
  thread_local std::string prefix;
  char buf[kLinePrefixMax];
  prefix.assign(buf, writeLinePrefix(e, buf));
  out += prefix;
  std::string_view skip1, skip2, skip3;  // fields already shown in the headline
  std::string_view message_type;         // tls.message: its body's fields are shown flat
  if (const auto* m = e.as<ev::TlsMessage>()) {
    out += m->dir == "in" ? "<- " : "-> ";
    out += m->type;
    out += " ("sv;
    out += std::to_string(m->length);
    out += " bytes)\n"sv;
    skip1 = "dir", skip2 = "type", skip3 = "length";
    message_type = m->type;
  } else if (const auto* a = e.as<ev::TlsAlert>()) {
    out += a->dir == "in" ? "<- Alert " : "-> Alert ";
    out += a->level;
    out += ' ';
    out += a->description;
    out += '\n';
    skip1 = "dir", skip2 = "level", skip3 = "description";
  } else {
    out += "== "sv;
    out += e.name();
    out += '\n';
  }
  forEachField(e, [&](std::string_view k, const Json& v) {
    if (k == skip1 || k == skip2 || k == skip3) return;
    if (k == "body" && !message_type.empty()) {
      const std::string type(message_type);
      for (const auto& [bk, bv] : v.asObject())
        if (!repeatsAnExtension(type, bk)) renderValue(prefix, 2, std::string(bk), bv, out);
      return;
    }
    renderValue(prefix, 2, std::string(k), v, out);
  });
}

// ---------------------------------------------------------------------------------------------
// JSSE shape: `javax.net.ssl|DEBUG|<thread>|<leg>|<time>|<source>|Produced X handshake message (`
// followed by a quoted-key block, as JDK 11+ prints with -Djavax.net.debug=ssl,handshake.

std::string jsseTime(Clock::time_point tp) {
  std::string t = formatTimestamp(tp);  // 2026-11-27T08:00:00.123456Z
  return t.substr(0, 10) + " " + t.substr(11, 12) + " UTC";
}

std::string jsseScalar(const Json& v) {
  if (isCodeName(v)) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "(0x%04llX)", static_cast<unsigned long long>(v.find("id")->asInt()));
    return v.find("name")->asString() + buf;
  }
  if (v.isString()) return v.asString();
  return v.dump();
}

void jsseValue(const std::string& key, const Json& v, int indent, std::string& out, bool last) {
  const std::string pad(static_cast<std::size_t>(indent) * 2, ' ');
  const std::string comma = last ? "" : ",";
  std::string k = "\"" + key + "\"";
  if (k.size() < 22) k.resize(22, ' ');
  if (v.isArray()) {
    bool flat = true;
    for (const auto& x : v.asArray()) flat = flat && isFlat(x);
    if (flat) {
      std::string s;
      for (const auto& x : v.asArray()) s += (s.empty() ? "" : ", ") + jsseScalar(x);
      out += pad + k + ": \"[" + s + "]\"" + comma + "\n";
      return;
    }
    out += pad + k + ": [\n";
    const auto& a = v.asArray();
    for (std::size_t i = 0; i < a.size(); ++i) {
      std::string name = std::to_string(i);
      if (const Json* t = a[i].find("type"); t && isCodeName(*t))
        name = t->find("name")->asString() + " (" + std::to_string(t->find("id")->asInt()) + ")";
      jsseValue(name, a[i], indent + 1, out, i + 1 == a.size());
    }
    out += pad + "]" + comma + "\n";
    return;
  }
  if (v.isObject() && !isCodeName(v)) {
    out += pad + k + ": {\n";
    const auto& o = v.asObject();
    for (std::size_t i = 0; i < o.size(); ++i)
      if (o[i].first != "type") jsseValue(o[i].first, o[i].second, indent + 1, out, i + 1 == o.size());
    out += pad + "}" + comma + "\n";
    return;
  }
  out += pad + k + ": \"" + jsseScalar(v) + "\"" + comma + "\n";
}

std::string renderJsse(const Event& e) {
  const std::string head = "javax.net.ssl|DEBUG|#" + std::to_string(e.conn) + "|" +
                           std::string(e.leg == Leg::None ? "conn" : legName(e.leg)) + "|" + jsseTime(e.ts) +
                           "|tlstrace|";
  Json scratch;
  const Json& f = fieldsOf(e, scratch);
  if (e.name() == "tls.message") {
    const std::string type = str(f, "type");
    const bool out_dir = str(f, "dir") == "out";
    std::string s = head + (out_dir ? "Produced " : "Consuming ") + type + " handshake message (\n";
    s += "\"" + type + "\": {\n";
    if (const Json* b = f.find("body")) {
      const auto& o = b->asObject();
      for (std::size_t i = 0; i < o.size(); ++i) jsseValue(o[i].first, o[i].second, 1, s, i + 1 == o.size());
    }
    return s + "}\n)\n";
  }
  if (e.name() == "tls.alert")
    return head + (str(f, "dir") == "out" ? "Produced" : "Received") + " alert (\n\"Alert\": {\n  \"level\"      : \"" +
           str(f, "level") + "\",\n  \"description\": \"" + str(f, "description") + "\"\n}\n)\n";
  std::string s = head + std::string(e.name()) + " (\n{\n";
  const auto& o = f.asObject();
  for (std::size_t i = 0; i < o.size(); ++i) jsseValue(o[i].first, o[i].second, 1, s, i + 1 == o.size());
  return s + "}\n)\n";
}

// ---------------------------------------------------------------------------------------------
// `openssl s_client -trace` shape: "Sent"/"Received" blocks with `name=value` lines and
// "(len=N)" byte strings, prefixed with the connection and leg so both legs interleave readably.

void opensslValue(const std::string& prefix, const std::string& key, const Json& v, int indent, std::string& out) {
  const std::string pad(static_cast<std::size_t>(indent) * 2, ' ');
  if (isCodeName(v)) {
    char buf[24];
    const auto id = v.find("id")->asInt();
    std::snprintf(buf, sizeof buf, "(%lld)", static_cast<long long>(id));
    out += prefix + pad + key + "=" + v.find("name")->asString() + buf + "\n";
    return;
  }
  if (v.isString()) {
    const std::string& s = v.asString();
    const bool hex = !s.empty() && s.size() % 2 == 0 && s.find_first_not_of("0123456789abcdef") == std::string::npos &&
                     s.size() >= 16;
    if (hex) out += prefix + pad + key + " (len=" + std::to_string(s.size() / 2) + "): " + s + "\n";
    else out += prefix + pad + key + "=" + s + "\n";
    return;
  }
  if (v.isArray()) {
    out += prefix + pad + key + " (len=" + std::to_string(v.asArray().size()) + ")\n";
    std::size_t i = 0;
    for (const auto& x : v.asArray()) {
      if (x.isObject() && !isCodeName(x)) {
        std::string name = indexLabel(i);
        if (const Json* t = x.find("type"); t && isCodeName(*t))
          name = "extension_type=" + t->find("name")->asString() + "(" + std::to_string(t->find("id")->asInt()) + ")";
        out += prefix + pad + "  " + name + "\n";
        for (const auto& [k, y] : x.asObject())
          if (k != "type") opensslValue(prefix, k, y, indent + 2, out);
      } else if (isCodeName(x)) {
        char buf[16];
        const auto id = x.find("id")->asInt();
        std::snprintf(buf, sizeof buf, "{0x%02llX, 0x%02llX} ", static_cast<unsigned long long>(id >> 8),
                      static_cast<unsigned long long>(id & 0xff));
        out += prefix + pad + "  " + buf + x.find("name")->asString() + "\n";
      } else {
        out += prefix + pad + "  " + scalar(x) + "\n";
      }
      ++i;
    }
    return;
  }
  if (v.isObject()) {
    out += prefix + pad + key + ":\n";
    for (const auto& [k, y] : v.asObject()) opensslValue(prefix, k, y, indent + 1, out);
    return;
  }
  out += prefix + pad + key + "=" + v.dump() + "\n";
}

std::string renderOpenssl(const Event& e) {
  const std::string prefix =
      "[#" + std::to_string(e.conn) + " " + std::string(e.leg == Leg::None ? "conn" : legName(e.leg)) + "] ";
  Json scratch;
  const Json& f = fieldsOf(e, scratch);
  const bool sent = str(f, "dir") == "out";
  if (e.name() == "tls.message") {
    std::string s = prefix + (sent ? "Sent" : "Received") + " Handshake Message\n";
    s += prefix + "  " + str(f, "type") + ", Length=" + str(f, "length") + "\n";
    if (const Json* b = f.find("body"))
      for (const auto& [k, v] : b->asObject()) opensslValue(prefix, k, v, 2, s);
    return s;
  }
  if (e.name() == "tls.alert")
    return prefix + (sent ? "Sent" : "Received") + " Record\n" + prefix + "  Alert, Level=" + str(f, "level") +
           ", Description=" + str(f, "description") + "(" + str(f, "code") + ")\n";
  std::string s = prefix + std::string(e.name()) + "\n";
  for (const auto& [k, v] : f.asObject()) opensslValue(prefix, k, v, 1, s);
  return s;
}

}  // namespace

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
