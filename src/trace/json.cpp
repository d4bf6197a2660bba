#include "trace/json.h"

#include <algorithm>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/value_stack.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "trace/body.h"
#include "trace/escape.h"
#include "wire/byte_reader.h"

namespace tlstrace::trace {

namespace {
// Appends to a std::string through a cursor: the string is grown ahead of the writes (zero-filled,
// cheaply) and cut back to what was written when done, so each small append is one compare and
// one copy instead of a call into std::string. JSON lines are most of what the writer thread does.
class Out {
 public:
  explicit Out(std::string& s) : s_(s), used_(s.size()) { s_.resize(used_ + kAhead); }
  ~Out() { s_.resize(used_); }
  Out(const Out&) = delete;
  Out& operator=(const Out&) = delete;

  // At least n bytes writable at the returned cursor. Inlined into both writers' hot loops (GCC
  // left a call in the body writer): the common case is one compare.
  [[gnu::always_inline]] char* room(std::size_t n) {
    if (s_.size() - used_ < n) [[unlikely]]
      grow(n);
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
  [[gnu::noinline]] void grow(std::size_t n) { s_.resize(used_ + n + kAhead); }  // (geometric capacity)
  static constexpr std::size_t kAhead = 512;
  std::string& s_;
  std::size_t used_;
};

// Writes `s` as a JSON string; true when it was not valid UTF-8 (each invalid byte written as
// U+FFFD: escape.h says where the bytes go).
bool escape(std::string_view s, Out& out) {
  std::size_t i = plainJsonPrefix(s.data(), s.size());
  if (i == s.size()) {  // the common case (keys, names, hex): one copy between the quotes
    char* w = out.room(s.size() + 2);
    w[0] = '"';
    std::memcpy(w + 1, s.data(), s.size());
    w[s.size() + 1] = '"';
    out.advance(s.size() + 2);
    return false;
  }
  bool replaced = false;
  out.put('"');
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t run = 0;    // start of the bytes not yet copied
  while (i < s.size()) {  // s[i] needs a look
    const unsigned char c = p[i];
    if (c >= 0x80) {
      if (const std::size_t len = utf8SequenceLength(p + i, s.size() - i); len != 0) {
        const std::uint32_t cp = utf8CodePoint(p + i, len);
        if (isInvisibleControl(cp)) {  // (all in the BMP: one \uXXXX)
          out.append(s.data() + run, i - run);
          static constexpr char kDigits[] = "0123456789abcdef";
          const char esc[] = {
              '\\', 'u', kDigits[cp >> 12], kDigits[(cp >> 8) & 0xf], kDigits[(cp >> 4) & 0xf], kDigits[cp & 0xf]};
          out.append(esc, sizeof esc);
          i += len;
          run = i;
        } else {
          i += len;  // valid: copied with the run
        }
        i += plainJsonPrefix(s.data() + i, s.size() - i);
        continue;
      }
      out.append(s.data() + run, i - run);
      run = ++i;
      out.append("\\ufffd", 6);
      replaced = true;
      i += plainJsonPrefix(s.data() + i, s.size() - i);
      continue;
    }
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
    i += plainJsonPrefix(s.data() + i, s.size() - i);
  }
  out.append(s.data() + run, s.size() - run);
  out.put('"');
  return replaced;
}

}  // namespace

bool appendJsonString(std::string_view s, std::string& out) {
  if (plainJsonPrefix(s.data(), s.size()) == s.size()) {  // no Out for one short string: append as is
    out += '"';
    out += s;
    out += '"';
    return false;
  }
  Out o(out);
  return escape(s, o);
}

Json::Json(const Array& a) : v_(boost::json::array_kind) {
  auto& arr = v_.get_array();
  arr.reserve(a.size());
  for (const auto& x : a) arr.push_back(x.v_);
}

Json::Json(Array&& a) : v_(boost::json::array_kind) {
  auto& arr = v_.get_array();
  arr.reserve(a.size());
  for (auto& x : a) arr.push_back(std::move(x.v_));
}

Json::Json(const Object& o) : v_(boost::json::object_kind) {
  auto& obj = v_.get_object();
  obj.reserve(o.size());
  for (const auto& [k, x] : o) obj.insert_or_assign(k, x.v_);
}

Json::Json(Object&& o) : v_(boost::json::object_kind) {
  auto& obj = v_.get_object();
  obj.reserve(o.size());
  for (auto& [k, x] : o) obj.insert_or_assign(k, std::move(x.v_));
}

Json& Json::set(std::string_view key, Json value) {
  if (!v_.is_object()) v_.emplace_object();
  auto& o = v_.get_object();
  if (o.empty()) o.reserve(4);  // most objects have a handful of fields: one allocation, not three
  // insert_or_assign keeps a replaced field where it was
  o.insert_or_assign(boost::json::string_view(key.data(), key.size()), std::move(value.v_));
  return *this;
}

const Json* Json::find(std::string_view key) const {
  const auto* o = v_.if_object();
  if (!o) return nullptr;
  const auto* v = o->if_contains(boost::json::string_view(key.data(), key.size()));
  return v ? &of(*v) : nullptr;
}

Json& Json::push(Json value) {
  if (!v_.is_array()) v_.emplace_array();
  auto& a = v_.get_array();
  if (a.empty()) a.reserve(4);  // as for objects: one allocation for short lists, not three
  a.push_back(std::move(value.v_));
  return *this;
}

std::string Json::dump() const {
  std::string s;
  dumpTo(s);
  return s;
}

namespace {

// A double as events have always had it: three decimals (millisecond timings to the
// microsecond, docs/events.md) whenever that text reads back as the same double; otherwise the
// shortest text that does (fixed, or with an exponent when that would be long). Never loses a
// value, unlike the fixed form alone (0.0004 was "0.000", 1e300 "null"). Not finite: null.
std::size_t writeDouble(double d, char* buf) {  // buf: 64 bytes
  if (!std::isfinite(d)) {
    std::memcpy(buf, "null", 4);
    return 4;
  }
  auto r = std::to_chars(buf, buf + 64, d, std::chars_format::fixed, 3);
  if (r.ec == std::errc{}) {
    double back = 0;
    const auto p = std::from_chars(buf, r.ptr, back);
    if (p.ec == std::errc{} && back == d) return static_cast<std::size_t>(r.ptr - buf);
  }
  r = std::to_chars(buf, buf + 32, d, std::chars_format::fixed);  // 0.0004
  if (r.ec != std::errc{}) r = std::to_chars(buf, buf + 64, d);   // 1e-300, 1e+300
  return static_cast<std::size_t>(r.ptr - buf);
}

// null, true/false, a number: written to buf (64 bytes), returns the length.
std::size_t writeScalar(const boost::json::value& v, char* buf) {
  auto literal = [buf](std::string_view s) {
    std::memcpy(buf, s.data(), s.size());
    return s.size();
  };
  switch (v.kind()) {
    case boost::json::kind::bool_: return literal(v.get_bool() ? "true" : "false");
    case boost::json::kind::int64:
      return static_cast<std::size_t>(std::to_chars(buf, buf + 24, v.get_int64()).ptr - buf);
    case boost::json::kind::uint64:
      return static_cast<std::size_t>(std::to_chars(buf, buf + 24, v.get_uint64()).ptr - buf);
    case boost::json::kind::double_: return writeDouble(v.get_double(), buf);
    default: return literal("null");
  }
}

std::string_view view(boost::json::string_view s) { return {s.data(), s.size()}; }

// `"<hex of s>"`.
void writeQuotedHex(std::string_view s, Out& out) {
  out.put('"');
  char* w = out.room(2 * s.size());
  out.advance(
      static_cast<std::size_t>(wire::writeHex({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}, w) - w));
  out.put('"');
}
void writeSiblingKey(std::string_view key, Out& out) {
  out.put(',');
  out.put('"');
  out.append(key);  // (the keys with a sibling are ours: escape() found nothing in them)
  out.append("_hex\":", 6);
}

// `"<key>_hex":` and the exact bytes of a value written with U+FFFD (docs/events.md, "Peer-supplied
// strings"): a string's as hex, an array's strings as hex where they were not UTF-8 and null where
// they were.
void writeHexSibling(std::string_view key, const boost::json::value& v, Out& out) {
  const auto hex = [&out](boost::json::string_view s) { writeQuotedHex(view(s), out); };
  writeSiblingKey(key, out);
  if (v.is_string()) return hex(v.get_string());
  out.put('[');
  bool first = true;
  for (const auto& x : v.get_array()) {
    if (!first) out.put(',');
    first = false;
    if (x.is_string() && !isValidUtf8(view(x.get_string()))) hex(x.get_string());
    else out.append("null", 4);
  }
  out.put(']');
}

// RFC 8259 text of one value, written through Out (see above). Not boost::json::serialize: that
// writes doubles as "1.2085E1", \b and \f as short escapes and DEL raw, where events have always
// had "12.085", "\u0008" and "\u007f" (and tools/bench/json_bench.cpp compares the speed).
// True when the value is a string, or an array with strings, that were not valid UTF-8.
bool writeValue(const boost::json::value& v, Out& out) {
  switch (v.kind()) {
    case boost::json::kind::string: return escape(view(v.get_string()), out);
    case boost::json::kind::array: {
      const auto& a = v.get_array();
      bool replaced = false;
      out.put('[');
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (i) out.put(',');
        replaced = (writeValue(a[i], out) && a[i].is_string()) || replaced;
      }
      out.put(']');
      return replaced;
    }
    case boost::json::kind::object: {
      const auto& o = v.get_object();
      out.put('{');
      bool first = true;
      for (const auto& kv : o) {
        if (!first) out.put(',');
        first = false;
        const bool bad_key = escape(view(kv.key()), out);
        out.put(':');
        if (writeValue(kv.value(), out) && !bad_key) {
          const std::string sibling = std::string(view(kv.key())) + "_hex";
          if (!o.contains(sibling)) writeHexSibling(view(kv.key()), kv.value(), out);
        }
      }
      out.put('}');
      return false;
    }
    default: out.advance(writeScalar(v, out.room(64))); return false;
  }
}

// writeValue() and writeHexSibling() for a tls.message body (body.h): the same text for the same
// value, without a tree.
void writeBodyHexSibling(std::string_view key, BodyNode v, Out& out) {
  const auto hex = [&out](std::string_view s) { writeQuotedHex(s, out); };
  writeSiblingKey(key, out);
  if (v.isString()) return hex(v.asString());
  out.put('[');
  bool first = true;
  for (const BodyNode x : v.asArray()) {
    if (!first) out.put(',');
    first = false;
    if (x.isString() && !isValidUtf8(x.asString())) hex(x.asString());
    else out.append("null", 4);
  }
  out.put(']');
}

bool writeBody(BodyNode v, Out& out) {
  switch (v.tag()) {
    case 'S': return escape(v.asString(), out);
    case 'A': {
      bool replaced = false;
      out.put('[');
      bool first = true;
      for (const BodyNode x : v.asArray()) {
        if (!first) out.put(',');
        first = false;
        replaced = (writeBody(x, out) && x.isString()) || replaced;
      }
      out.put(']');
      return replaced;
    }
    case 'O':
    case 'C': {
      out.put('{');
      bool first = true;
      for (const auto& [k, x] : v.asObject()) {
        if (!first) out.put(',');
        first = false;
        const bool bad_key = escape(k, out);
        out.put(':');
        if (writeBody(x, out) && !bad_key) {
          const std::string sibling = std::string(k) + "_hex";
          if (!v.find(sibling)) writeBodyHexSibling(k, x, out);
        }
      }
      out.put('}');
      return false;
    }
    case 'T': out.append("true", 4); return false;
    case 'F': out.append("false", 5); return false;
    case 'I':
    case 'U': {
      char* w = out.room(24);
      const auto r = v.tag() == 'I' ? std::to_chars(w, w + 24, v.asInt()) : std::to_chars(w, w + 24, v.asUint());
      out.advance(static_cast<std::size_t>(r.ptr - w));
      return false;
    }
    case 'D': out.advance(writeDouble(v.asDouble(), out.room(64))); return false;
    default: out.append("null", 4); return false;
  }
}

}  // namespace

void appendBodyJson(BodyNode v, std::string& out) {
  Out o(out);
  writeBody(v, o);
}

void appendJsonMember(std::string_view key, const Json& value, std::string& out, const Json* object) {
  const auto& v = value.value();
  if (v.is_string()) return appendJsonStringMember(key, view(v.get_string()), out);
  if (!v.is_array()) {  // an object's members have their own siblings; a scalar needs none
    appendJsonString(key, out);
    out += ':';
    return value.dumpTo(out);
  }
  Out o(out);
  const bool bad_key = escape(key, o);
  o.put(':');
  if (writeValue(v, o) && !bad_key) {
    const std::string sibling = std::string(key) + "_hex";
    if (!object || !object->find(sibling)) writeHexSibling(key, v, o);
  }
}

void appendJsonStringMember(std::string_view key, std::string_view value, std::string& out) {
  const bool bad_key = appendJsonString(key, out);
  out += ':';
  if (appendJsonString(value, out) && !bad_key) appendJsonHexSibling(key, value, out);
}

void appendJsonHexSibling(std::string_view key, std::string_view value, std::string& out) {
  Out o(out);
  writeHexSibling(key, boost::json::value(boost::json::string_view(value.data(), value.size())), o);
}

namespace {

// X and X_hex as the writer makes them, X read back to its bytes (see writeHexSibling).
bool restoreFrom(boost::json::value& v, const boost::json::value& hex) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  const auto bytes = [](const boost::json::string& h) {
    for (const char c : h)
      if (!std::isxdigit(static_cast<unsigned char>(c))) return std::optional<boost::json::string>();
    const auto b = wire::fromHex(view(h));
    return std::optional(
        boost::json::string(boost::json::string_view(reinterpret_cast<const char*>(b.data()), b.size())));
  };
  if (v.is_string() && hex.is_string()) {
    if (view(v.get_string()).find(kReplacement) == std::string_view::npos || hex.get_string().size() % 2) return false;
    auto b = bytes(hex.get_string());
    if (!b) return false;
    v.get_string() = std::move(*b);
    return true;
  }
  if (!v.is_array() || !hex.is_array() || v.get_array().size() != hex.get_array().size()) return false;
  auto& a = v.get_array();
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto& h = hex.get_array()[i];
    if (!h.is_string() || !a[i].is_string() || h.get_string().size() % 2) continue;
    if (auto b = bytes(h.get_string())) a[i].get_string() = std::move(*b);
  }
  return true;
}

}  // namespace

void restoreHexFields(Json& j) {
  auto& v = j.value();
  if (auto* a = v.if_array()) {
    for (auto& x : *a) restoreHexFields(Json::of(x));
    return;
  }
  auto* o = v.if_object();
  if (!o) return;
  for (auto& kv : *o) restoreHexFields(Json::of(kv.value()));
  std::vector<std::string> done;
  for (auto& kv : *o) {
    const std::string_view k = view(kv.key());
    if (k.size() <= 4 || k.substr(k.size() - 4) != "_hex") continue;
    auto* x = o->if_contains(boost::json::string_view(k.data(), k.size() - 4));
    if (x && restoreFrom(*x, kv.value())) done.emplace_back(k);
  }
  if (done.empty()) return;
  boost::json::object kept;  // (object::erase moves the last member into the gap: the order would change)
  kept.reserve(o->size() - done.size());
  for (auto& kv : *o)
    if (std::find(done.begin(), done.end(), view(kv.key())) == done.end())
      kept.emplace(kv.key(), std::move(kv.value()));
  *o = std::move(kept);
}

void Json::dumpTo(std::string& out) const {
  if (v_.is_string()) return void(appendJsonString(view(v_.get_string()), out));
  if (!v_.is_array() && !v_.is_object()) {  // a scalar (the text trace asks for many): no Out set-up
    char buf[64];
    out.append(buf, writeScalar(v_, buf));
    return;
  }
  Out o(out);
  writeValue(v_, o);
}

namespace {

// boost::json::parser's handler, but doubles are read again from their text: Boost.JSON 1.81
// rounds some long ones one ulp off (-9.908072504838097e+232; correctly rounded since 1.83),
// so a line we wrote would not read back to the same value.
struct ValueBuilder {
  static constexpr std::size_t max_object_size = boost::json::object::max_size();
  static constexpr std::size_t max_array_size = boost::json::array::max_size();
  static constexpr std::size_t max_key_size = boost::json::string::max_size();
  static constexpr std::size_t max_string_size = boost::json::string::max_size();
  using sv = boost::json::string_view;
  using ec_t = boost::json::error_code;

  boost::json::value_stack st;
  std::string number;  // the text of a number given in parts

  bool on_document_begin(ec_t&) { return true; }
  bool on_document_end(ec_t&) { return true; }
  bool on_object_begin(ec_t&) { return true; }
  bool on_object_end(std::size_t n, ec_t&) { return st.push_object(n), true; }
  bool on_array_begin(ec_t&) { return true; }
  bool on_array_end(std::size_t n, ec_t&) { return st.push_array(n), true; }
  bool on_key_part(sv s, std::size_t, ec_t&) { return st.push_chars(s), true; }
  bool on_key(sv s, std::size_t, ec_t&) { return st.push_key(s), true; }
  bool on_string_part(sv s, std::size_t, ec_t&) { return st.push_chars(s), true; }
  bool on_string(sv s, std::size_t, ec_t&) { return st.push_string(s), true; }
  bool on_number_part(sv s, ec_t&) { return number.append(s.data(), s.size()), true; }
  bool on_int64(std::int64_t i, sv, ec_t&) { return number.clear(), st.push_int64(i), true; }
  bool on_uint64(std::uint64_t u, sv, ec_t&) { return number.clear(), st.push_uint64(u), true; }
  bool on_double(double d, sv s, ec_t&) {
    number.append(s.data(), s.size());
    double exact = 0;
    // (out of range, e.g. 1e400: Boost.JSON's infinity or zero stands)
    if (std::from_chars(number.data(), number.data() + number.size(), exact).ec == std::errc{}) d = exact;
    number.clear();
    st.push_double(d);
    return true;
  }
  bool on_bool(bool b, ec_t&) { return st.push_bool(b), true; }
  bool on_null(ec_t&) { return st.push_null(), true; }
  bool on_comment_part(sv, ec_t&) { return true; }
  bool on_comment(sv, ec_t&) { return true; }
};

}  // namespace

std::optional<Json> Json::parse(std::string_view text, std::string* error) {
  boost::json::parse_options opt;
  opt.max_depth = 64;  // as deep as events go, with room to spare
  // Lines written before the writer kept to UTF-8 passed a peer's bytes through as they came (an
  // SNI off the wire need not be UTF-8): `convert` still reads them.
  opt.allow_invalid_utf8 = true;
  boost::json::basic_parser<ValueBuilder> p(opt);
  p.handler().st.reset();
  boost::json::error_code ec;
  const std::size_t used = p.write_some(false, text.data(), text.size(), ec);
  if (!ec && used < text.size()) ec = boost::json::error::extra_data;
  if (ec) {
    if (error) *error = ec.message() + " at offset " + std::to_string(used);
    return std::nullopt;
  }
  return Json(p.handler().st.release());
}

}  // namespace tlstrace::trace
