#include "trace/json.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace tlstrace::trace {

namespace {
const std::string kEmptyString;
const Json::Array kEmptyArray;
const Json::Object kEmptyObject;

// The bytes escape() must not copy as they are (RFC 8259 7, plus DEL).
constexpr auto kEscaped = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[static_cast<std::size_t>(c)] = true;
  t['"'] = t['\\'] = t[0x7f] = true;
  return t;
}();

// How many bytes at the start of [p, p + n) can be copied as they are: 16 at a time with vector
// compares (the same set as kEscaped), then one by one. Hex strings and names make up most of a
// trace.
std::size_t plainPrefix(const char* p, std::size_t n) {
  using V16 = std::uint8_t __attribute__((vector_size(16)));
  std::size_t i = 0;
  for (; n - i >= 16; i += 16) {
    V16 v;
    std::memcpy(&v, p + i, sizeof v);
    const V16 bad = (v < 0x20) | (v == '"') | (v == '\\') | (v == 0x7f);
    std::uint64_t half[2];
    std::memcpy(half, &bad, sizeof half);
    if ((half[0] | half[1]) != 0) break;
  }
  while (i < n && !kEscaped[static_cast<unsigned char>(p[i])]) ++i;
  return i;
}

// Appends to a std::string through a cursor: the string is grown ahead of the writes (zero-filled,
// cheaply) and cut back to what was written when done, so each small append is one compare and
// one copy instead of a call into std::string. JSON lines are most of what the writer thread does.
class Out {
 public:
  explicit Out(std::string& s) : s_(s), used_(s.size()) { s_.resize(used_ + kAhead); }
  ~Out() { s_.resize(used_); }
  Out(const Out&) = delete;
  Out& operator=(const Out&) = delete;

  char* room(std::size_t n) {                                  // at least n bytes writable at the returned cursor
    if (s_.size() - used_ < n) s_.resize(used_ + n + kAhead);  // (std::string grows its capacity geometrically)
    return s_.data() + used_;
  }
  void advance(std::size_t n) { used_ += n; }
  void put(char c) {
    *room(1) = c;
    ++used_;
  }
  void append(const char* p, std::size_t n) {
    std::memcpy(room(n), p, n);
    used_ += n;
  }
  void append(std::string_view v) { append(v.data(), v.size()); }

 private:
  static constexpr std::size_t kAhead = 512;
  std::string& s_;
  std::size_t used_;
};

void escape(std::string_view s, Out& out) {
  std::size_t i = plainPrefix(s.data(), s.size());
  if (i == s.size()) {  // the common case (keys, names, hex): one copy between the quotes
    char* w = out.room(s.size() + 2);
    w[0] = '"';
    std::memcpy(w + 1, s.data(), s.size());
    w[s.size() + 1] = '"';
    out.advance(s.size() + 2);
    return;
  }
  out.put('"');
  std::size_t run = 0;    // start of the bytes not yet copied
  while (i < s.size()) {  // s[i] needs escaping
    const auto c = static_cast<unsigned char>(s[i]);
    out.append(s.data() + run, i - run);
    run = ++i;
    switch (c) {
      case '"': out.append("\\\"", 2); break;
      case '\\': out.append("\\\\", 2); break;
      case '\n': out.append("\\n", 2); break;
      case '\r': out.append("\\r", 2); break;
      case '\t': out.append("\\t", 2); break;
      default: {
        static constexpr char kDigits[] = "0123456789abcdef";
        const char esc[] = {'\\', 'u', '0', '0', kDigits[c >> 4], kDigits[c & 0xf]};
        out.append(esc, sizeof esc);
      }
    }
    i += plainPrefix(s.data() + i, s.size() - i);
  }
  out.append(s.data() + run, s.size() - run);
  out.put('"');
}

}  // namespace

void appendJsonString(std::string_view s, std::string& out) {
  if (plainPrefix(s.data(), s.size()) == s.size()) {  // no Out for one short string: append as is
    out += '"';
    out += s;
    out += '"';
    return;
  }
  Out o(out);
  escape(s, o);
}

const std::string& Json::asString() const { return isString() ? std::get<std::string>(v_) : kEmptyString; }
const Json::Array& Json::asArray() const { return isArray() ? std::get<Array>(v_) : kEmptyArray; }
const Json::Object& Json::asObject() const { return isObject() ? std::get<Object>(v_) : kEmptyObject; }

Json& Json::set(std::string key, Json value) {
  if (!isObject()) v_ = Object{};
  auto& o = std::get<Object>(v_);
  if (o.empty()) o.reserve(4);  // most objects have a handful of fields: one allocation, not three
  for (auto& [k, v] : o) {
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  }
  o.emplace_back(std::move(key), std::move(value));
  return *this;
}

const Json* Json::find(std::string_view key) const {
  if (!isObject()) return nullptr;
  for (const auto& [k, v] : std::get<Object>(v_))
    if (k == key) return &v;
  return nullptr;
}

Json& Json::push(Json value) {
  if (!isArray()) v_ = Array{};
  auto& a = std::get<Array>(v_);
  if (a.empty()) a.reserve(4);  // as for objects: one allocation for short lists, not three
  a.push_back(std::move(value));
  return *this;
}

std::string Json::dump() const {
  std::string s;
  dumpTo(s);
  return s;
}

// RFC 8259 text of one value, written through Out (see above).
struct JsonDump {
  // null, true/false, a number: written to buf (64 bytes), returns the length.
  static std::size_t scalar(const Json& j, char* buf) {
    auto literal = [buf](std::string_view v) {
      std::memcpy(buf, v.data(), v.size());
      return v.size();
    };
    switch (j.v_.index()) {
      case 1: return literal(*std::get_if<bool>(&j.v_) ? "true" : "false");
      case 2:
        return static_cast<std::size_t>(std::to_chars(buf, buf + 24, *std::get_if<std::int64_t>(&j.v_)).ptr - buf);
      case 3: {
        const double d = *std::get_if<double>(&j.v_);
        if (!std::isfinite(d)) return literal("null");
        const auto r = std::to_chars(buf, buf + 64, d, std::chars_format::fixed, 3);
        return r.ec == std::errc{} ? static_cast<std::size_t>(r.ptr - buf) : literal("null");
      }
      default: return literal("null");
    }
  }

  static void value(const Json& j, Out& out) {
    switch (j.v_.index()) {
      case 0:
      case 1:
      case 2:
      case 3: out.advance(scalar(j, out.room(64))); return;
      case 4: escape(*std::get_if<std::string>(&j.v_), out); return;
      case 5: {
        const auto& a = *std::get_if<Json::Array>(&j.v_);
        out.put('[');
        for (std::size_t i = 0; i < a.size(); ++i) {
          if (i) out.put(',');
          value(a[i], out);
        }
        out.put(']');
        return;
      }
      default: {
        const auto& o = *std::get_if<Json::Object>(&j.v_);
        out.put('{');
        for (std::size_t i = 0; i < o.size(); ++i) {
          if (i) out.put(',');
          escape(o[i].first, out);
          out.put(':');
          value(o[i].second, out);
        }
        out.put('}');
      }
    }
  }
};

void Json::dumpTo(std::string& out) const {
  if (isString()) return appendJsonString(std::get<std::string>(v_), out);
  if (!isArray() && !isObject()) {  // a scalar (the text trace asks for many): no Out set-up
    char buf[64];
    out.append(buf, JsonDump::scalar(*this, buf));
    return;
  }
  Out o(out);
  JsonDump::value(*this, o);
}

namespace {
class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}
  std::optional<Json> run(std::string* err) {
    auto v = value(0);
    ws();
    if (v && pos_ != s_.size()) {
      fail("trailing characters");
      v.reset();
    }
    if (!v && err) *err = err_ + " at offset " + std::to_string(pos_);
    return v;
  }

 private:
  static constexpr int kMaxDepth = 64;
  void ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  void fail(std::string m) {
    if (err_.empty()) err_ = std::move(m);
  }
  bool lit(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  std::optional<Json> value(int depth) {
    if (depth > kMaxDepth) {
      fail("nesting too deep");
      return std::nullopt;
    }
    ws();
    if (pos_ >= s_.size()) {
      fail("unexpected end");
      return std::nullopt;
    }
    char c = s_[pos_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') {
      auto s = string();
      if (!s) return std::nullopt;
      return Json(std::move(*s));
    }
    if (lit("true")) return Json(true);
    if (lit("false")) return Json(false);
    if (lit("null")) return Json();
    return number();
  }
  std::optional<Json> number() {
    std::size_t start = pos_;
    bool is_double = false;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c >= '0' && c <= '9') {
        ++pos_;
      } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
        is_double = true;
        ++pos_;
      } else {
        break;
      }
    }
    std::string_view t = s_.substr(start, pos_ - start);
    if (t.empty() || t == "-") {
      fail("bad value");
      return std::nullopt;
    }
    if (!is_double) {
      std::int64_t i = 0;
      auto r = std::from_chars(t.data(), t.data() + t.size(), i);
      if (r.ec == std::errc() && r.ptr == t.data() + t.size()) return Json(static_cast<long long>(i));
    }
    std::string tmp(t);
    char* end = nullptr;
    double d = std::strtod(tmp.c_str(), &end);
    if (end != tmp.c_str() + tmp.size()) {
      fail("bad number");
      return std::nullopt;
    }
    return Json(d);
  }
  std::optional<std::string> string() {
    ++pos_;  // opening quote
    std::string out;
    while (pos_ < s_.size()) {
      // Runs of plain characters are copied at once; the byte after one is handled below.
      const std::size_t run = plainPrefix(s_.data() + pos_, s_.size() - pos_);
      out.append(s_.data() + pos_, run);
      pos_ += run;
      if (pos_ >= s_.size()) break;
      char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) {
        fail("control character in string");
        return std::nullopt;
      }
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) break;
      char e = s_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          if (pos_ + 4 > s_.size()) {
            fail("truncated \\u escape");
            return std::nullopt;
          }
          unsigned cp = 0;
          auto r = std::from_chars(s_.data() + pos_, s_.data() + pos_ + 4, cp, 16);
          if (r.ec != std::errc() || r.ptr != s_.data() + pos_ + 4) {
            fail("bad \\u escape");
            return std::nullopt;
          }
          pos_ += 4;
          // Encode as UTF-8 (surrogate pairs are kept as individual code units; events never use them).
          if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
          } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
          } else {
            out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
          }
          break;
        }
        default: fail("bad escape"); return std::nullopt;
      }
    }
    fail("unterminated string");
    return std::nullopt;
  }
  std::optional<Json> array(int depth) {
    ++pos_;
    Json a = Json::array();
    ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return a;
    }
    while (true) {
      auto v = value(depth + 1);
      if (!v) return std::nullopt;
      a.push(std::move(*v));
      ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return a;
      }
      fail("expected , or ]");
      return std::nullopt;
    }
  }
  std::optional<Json> object(int depth) {
    ++pos_;
    Json o = Json::object();
    ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return o;
    }
    while (true) {
      ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') {
        fail("expected key");
        return std::nullopt;
      }
      auto k = string();
      if (!k) return std::nullopt;
      ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') {
        fail("expected :");
        return std::nullopt;
      }
      ++pos_;
      auto v = value(depth + 1);
      if (!v) return std::nullopt;
      o.set(std::move(*k), std::move(*v));
      ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return o;
      }
      fail("expected , or }");
      return std::nullopt;
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  std::string err_;
};
}  // namespace

std::optional<Json> Json::parse(std::string_view text, std::string* error) { return Parser(text).run(error); }

}  // namespace tlstrace::trace
