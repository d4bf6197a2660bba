#include "trace/body.h"

namespace tlstrace::trace {

namespace {

constexpr std::size_t kHeader = 9;  // tag, u32 count, u32 bytes

void putU32(std::string& out, std::uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
void putTagged(std::string& out, char tag, const void* p, std::size_t n) {
  out += tag;
  out.append(static_cast<const char*>(p), n);
}
void putString(std::string& out, std::string_view s) {
  out += 'S';
  putU32(out, static_cast<std::uint32_t>(s.size()));
  out += s;
}
void putInt(std::string& out, long long v) {
  const std::int64_t i = v;
  putTagged(out, 'I', &i, 8);
}
// Unsigned values that fit are kept as int64, as Json does (the kinds agree after a round trip).
void putUint(std::string& out, unsigned long long v) {
  if (v <= static_cast<unsigned long long>(INT64_MAX)) return putInt(out, static_cast<long long>(v));
  const std::uint64_t u = v;
  putTagged(out, 'U', &u, 8);
}
void putDouble(std::string& out, double d) { putTagged(out, 'D', &d, 8); }
// {"id": id, "name": name}: the commonest object of a trace, in one append of its fixed part.
void putCode(std::string& out, std::uint16_t id, std::string_view name) {
  char head[9 + 4 + 2 + 9 + 4 + 4 + 1 + 4];
  const std::uint32_t count = 2, bytes = static_cast<std::uint32_t>(sizeof head - 9 + name.size());
  const std::int64_t i = id;
  const std::uint32_t two = 2, four = 4, len = static_cast<std::uint32_t>(name.size());
  char* p = head;
  *p++ = 'C';
  std::memcpy(p, &count, 4), p += 4;
  std::memcpy(p, &bytes, 4), p += 4;
  std::memcpy(p, &two, 4), p += 4;
  std::memcpy(p, "id", 2), p += 2;
  *p++ = 'I';
  std::memcpy(p, &i, 8), p += 8;
  std::memcpy(p, &four, 4), p += 4;
  std::memcpy(p, "name", 4), p += 4;
  *p++ = 'S';
  std::memcpy(p, &len, 4);
  out.append(head, sizeof head);
  out += name;
}

void putJson(std::string& out, const Json& j);

void putContainer(std::string& out, char tag, const Json& j) {
  const std::size_t at = out.size();
  out += tag;
  putU32(out, 0);
  putU32(out, 0);
  std::uint32_t n = 0;
  if (tag != 'A') {
    for (const auto& [k, v] : j.asObject()) {
      putU32(out, static_cast<std::uint32_t>(k.size()));
      out += k;
      putJson(out, v);
      ++n;
    }
  } else {
    for (const auto& v : j.asArray()) {
      putJson(out, v);
      ++n;
    }
  }
  const auto bytes = static_cast<std::uint32_t>(out.size() - at - kHeader);
  std::memcpy(out.data() + at + 1, &n, 4);
  std::memcpy(out.data() + at + 5, &bytes, 4);
}

void putJson(std::string& out, const Json& j) {
  const auto& v = j.value();
  switch (v.kind()) {
    case boost::json::kind::null: out += 'N'; return;
    case boost::json::kind::bool_: out += v.get_bool() ? 'T' : 'F'; return;
    case boost::json::kind::int64: return putInt(out, v.get_int64());
    case boost::json::kind::uint64: return putUint(out, v.get_uint64());
    case boost::json::kind::double_: return putDouble(out, v.get_double());
    case boost::json::kind::string: return putString(out, j.asString());
    case boost::json::kind::array: return putContainer(out, 'A', j);
    case boost::json::kind::object: {
      const auto& o = j.asObject();  // (a code: see body.h)
      const bool code = o.size() == 2 && std::string_view(o[0].first) == "id" && std::string_view(o[1].first) == "name";
      return putContainer(out, code ? 'C' : 'O', j);
    }
  }
}

Json treeOf(BodyNode n) {
  switch (n.tag()) {
    case 'T': return Json(true);
    case 'F': return Json(false);
    case 'I': return Json(static_cast<long long>(n.asInt()));
    case 'U': return Json(static_cast<unsigned long long>(n.asUint()));
    case 'D': return Json(n.asDouble());
    case 'S': return Json(std::string_view(n.asString()));
    case 'A': {
      Json a = Json::array();
      for (const BodyNode x : n.asArray()) a.push(treeOf(x));
      return a;
    }
    case 'O':
    case 'C': {
      Json o = Json::object();
      for (const auto& [k, v] : n.asObject()) o.set(k, treeOf(v));
      return o;
    }
    default: return Json();
  }
}

}  // namespace

std::int64_t BodyNode::asInt() const {
  switch (tag()) {
    case 'I': {
      std::int64_t v;
      std::memcpy(&v, p_ + 1, 8);
      return v;
    }
    case 'U': return static_cast<std::int64_t>(asUint());
    case 'D': {  // (as Json::asInt: no integer for a double outside the range)
      const double d = asDouble();
      return d >= -9.2e18 && d <= 9.2e18 ? static_cast<std::int64_t>(d) : 0;
    }
    default: return 0;
  }
}

std::uint64_t BodyNode::asUint() const {
  if (tag() != 'U') return static_cast<std::uint64_t>(asInt());
  std::uint64_t v;
  std::memcpy(&v, p_ + 1, 8);
  return v;
}

double BodyNode::asDouble() const {
  if (tag() == 'D') {
    double d;
    std::memcpy(&d, p_ + 1, 8);
    return d;
  }
  if (tag() == 'U') return static_cast<double>(asUint());
  return static_cast<double>(asInt());
}

void BodyNode::dumpTo(std::string& out) const { appendBodyJson(*this, out); }

Body::Body(char tag, std::size_t room) {
  if (room) buf_.reserve(room);
  buf_ += tag;
  putU32(buf_, 0);
  putU32(buf_, 0);
}

void Body::counted() {
  const std::uint32_t n = BodyNode::u32(buf_.data() + 1) + 1;
  const auto bytes = static_cast<std::uint32_t>(buf_.size() - kHeader);
  std::memcpy(buf_.data() + 1, &n, 4);
  std::memcpy(buf_.data() + 5, &bytes, 4);
  if (buf_[0] == 'A') return;
  // An object is a code exactly when its members are "id" and "name", in that order, however it
  // was built (fromJson() decides the same way).
  bool code = false;
  if (n == 2) {
    const auto o = root().asObject();
    auto it = o.begin();
    code = std::string_view((*it).first) == "id" && std::string_view((*++it).first) == "name";
  }
  buf_[0] = code ? 'C' : 'O';
}

template <class F>
Body& Body::setWith(std::string_view key, F encode) {
  if (const auto old = root().find(key)) {  // rare: replaced where it was, as Json::set does
    std::string value;
    encode(value);
    const std::size_t at = static_cast<std::size_t>(old->data() - buf_.data());
    buf_.replace(at, old->extent(), value);
    const auto bytes = static_cast<std::uint32_t>(buf_.size() - kHeader);
    std::memcpy(buf_.data() + 5, &bytes, 4);
    return *this;
  }
  putU32(buf_, static_cast<std::uint32_t>(key.size()));
  buf_ += key;
  encode(buf_);
  counted();
  return *this;
}

template <class F>
Body& Body::pushWith(F encode) {
  encode(buf_);
  counted();
  return *this;
}

Body& Body::set(std::string_view key, std::string_view s) {
  return setWith(key, [s](std::string& o) { putString(o, s); });
}
Body& Body::set(std::string_view key, bool b) {
  return setWith(key, [b](std::string& o) { o += b ? 'T' : 'F'; });
}
Body& Body::setInt(std::string_view key, long long v) {
  return setWith(key, [v](std::string& o) { putInt(o, v); });
}
Body& Body::setUint(std::string_view key, unsigned long long v) {
  return setWith(key, [v](std::string& o) { putUint(o, v); });
}
Body& Body::set(std::string_view key, double v) {
  return setWith(key, [v](std::string& o) { putDouble(o, v); });
}
Body& Body::set(std::string_view key, const Body& v) {
  return setWith(key, [&v](std::string& o) { o += v.buf_; });
}
Body& Body::set(std::string_view key, const Json& v) {
  return setWith(key, [&v](std::string& o) { putJson(o, v); });
}
Body& Body::setCode(std::string_view key, std::uint16_t id, std::string_view name) {
  return setWith(key, [id, name](std::string& o) { putCode(o, id, name); });
}
Body Body::code(std::uint16_t id, std::string_view name) {
  Body b;
  b.buf_.clear();
  putCode(b.buf_, id, name);
  return b;
}
Body& Body::pushCode(std::uint16_t id, std::string_view name) {
  return pushWith([id, name](std::string& o) { putCode(o, id, name); });
}
Body& Body::push(std::string_view s) {
  return pushWith([s](std::string& o) { putString(o, s); });
}
Body& Body::pushInt(long long v) {
  return pushWith([v](std::string& o) { putInt(o, v); });
}
Body& Body::pushUint(unsigned long long v) {
  return pushWith([v](std::string& o) { putUint(o, v); });
}
Body& Body::push(const Body& v) {
  return pushWith([&v](std::string& o) { o += v.buf_; });
}
Body& Body::push(const Json& v) {
  return pushWith([&v](std::string& o) { putJson(o, v); });
}

Json Body::tree() const { return treeOf(root()); }

Body Body::fromJson(const Json& j) {
  Body b;
  b.buf_.clear();
  putJson(b.buf_, j);
  return b;
}

void Body::dumpTo(std::string& out) const { appendBodyJson(root(), out); }

}  // namespace tlstrace::trace
