// Events to JSON and back: the JSON Lines writer, the tree form (text renderers, `convert`) and
// the reader, each one visitor over the kinds' field lists (events.h).
#include <charconv>
#include <cmath>
#include <concepts>
#include <ctime>
#include <limits>

#include "trace/event.h"
#include "wire/byte_reader.h"
#include "wire/registry.h"

namespace tlstrace::trace {

namespace {

template <class T>
concept Integer = std::integral<T> && !std::same_as<T, bool>;

// Writes `,"key":value` for each field straight into the line.
struct LineWriter {
  std::string& out;

  void key(std::string_view k) {  // (the field names are identifiers: nothing to escape)
    out += ",\"";
    out += k;
    out += "\":";
  }
  template <Integer T>
  void number(T v) {
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
  }
  void operator()(std::string_view k, const std::string& v) {
    key(k);
    if (appendJsonString(v, out)) appendJsonHexSibling(k, v, out);  // a peer's bytes that are not UTF-8
  }
  template <Integer T>
  void operator()(std::string_view k, T v) {
    key(k);
    number(v);
  }
  void operator()(std::string_view k, double v) {
    key(k);
    Json(v).dumpTo(out);  // the one number format of the schema
  }
  void operator()(std::string_view k, bool v) {
    key(k);
    out += v ? "true" : "false";
  }
  void operator()(std::string_view k, const Json& v) {
    if (v.isObject()) {  // (its members bring their own _hex siblings)
      key(k);
      return v.dumpTo(out);
    }
    out += ',';
    appendJsonMember(k, v, out);
  }
  void operator()(std::string_view k, const Body& v) {
    key(k);
    v.dumpTo(out);  // (an object: its members bring their own _hex siblings)
  }
  void operator()(std::string_view k, const CodeName& v) {
    key(k);
    out += "{\"id\":";
    number(v.id);
    out += ",\"name\":";
    appendJsonString(v.name, out);
    out += '}';
  }
  void operator()(std::string_view k, const HeadBytes& h) {
    key(k);
    out += '"';
    const std::size_t at = out.size();
    out.resize(at + 2 * h.len);
    wire::writeHex(h.view(), out.data() + at);
    out += '"';
  }
  template <class T>
  void operator()(std::string_view k, const std::optional<T>& v) {
    if (v) (*this)(k, *v);
  }
  void operator()(std::string_view k, const Nullable<std::string>& v) {
    if (v.value) return (*this)(k, *v.value);
    key(k);
    out += "null";
  }
  void direction(std::string_view k, bool in) {
    key(k);
    out += in ? "\"in\"" : "\"out\"";
  }
  void versionName(std::string_view k, std::uint16_t v) {
    key(k);
    out += '"';
    out += wire::versionName(v);
    out += '"';
  }
  void spread(const Report& r) { spreadObject(r.object); }
  void spreadObject(const Json& o) {
    if (!o.isObject()) return;
    for (const auto& [k, v] : o.asObject()) {
      out += ',';
      appendJsonMember(k, v, out, &o);
    }
  }
};

// Reads each field back from an event's JSON object (`convert`). The object is untrusted (any
// line of any file): the first missing required field, wrong type or out-of-range number turns
// `ok` false and says which field in `error`; nothing is assumed about a field's shape.
struct TreeReader {
  const Json& obj;
  bool ok = true;
  std::string error;

  void fail(std::string_view k, std::string_view why) {
    if (ok) error = "field '" + std::string(k) + "' " + std::string(why);
    ok = false;
  }
  const Json* need(std::string_view k) {
    const Json* j = obj.find(k);
    if (!j) fail(k, "is missing");
    return j;
  }
  void operator()(std::string_view k, std::string& v) {
    if (const Json* j = need(k)) j->isString() ? void(v = j->asString()) : fail(k, "is not a string");
  }
  template <Integer T>
  void operator()(std::string_view k, T& v) {
    const Json* j = need(k);
    if (!j) return;
    if (!j->isInt()) return fail(k, "is not an integer");
    // The range of the field's type: a value that does not fit is an error, never truncated.
    const bool is_u64 = j->value().is_uint64();
    const std::int64_t i = is_u64 ? 0 : j->asInt();
    if constexpr (std::is_signed_v<T>) {
      if (is_u64 || i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max())
        return fail(k, "is out of range");
      v = static_cast<T>(i);
    } else {
      const std::uint64_t u = j->asUint();
      if ((!is_u64 && i < 0) || u > std::numeric_limits<T>::max()) return fail(k, "is out of range");
      v = static_cast<T>(u);
    }
  }
  void operator()(std::string_view k, double& v) {
    const Json* j = need(k);
    if (!j) return;
    if (!(j->isDouble() || j->isInt()) || !std::isfinite(j->asDouble())) return fail(k, "is not a finite number");
    v = j->asDouble();
  }
  void operator()(std::string_view k, bool& v) {
    if (const Json* j = need(k)) j->isBool() ? void(v = j->asBool()) : fail(k, "is not a boolean");
  }
  void operator()(std::string_view k, Json& v) {
    if (const Json* j = need(k)) v = *j;
  }
  void operator()(std::string_view k, Body& v) {
    if (const Json* j = need(k)) v = Body::fromJson(*j);  // (as for a Json field: any value)
  }
  void operator()(std::string_view k, CodeName& v) {
    const Json* j = need(k);
    if (!j) return;
    const Json* id = j->find("id");
    const Json* name = j->find("name");
    if (!id || !name || !id->isInt() || !id->value().is_int64() || !name->isString())
      return fail(k, "is not an {\"id\": integer, \"name\": string} object");
    v.id = id->asInt();
    v.name = name->asString();
  }
  void operator()(std::string_view k, HeadBytes& h) {
    std::string hex;
    (*this)(k, hex);
    const auto b = wire::fromHex(hex);
    if (ok && b.size() * 2 != hex.size()) fail(k, "is not hex");
    h.len = static_cast<std::uint8_t>(std::min(b.size(), HeadBytes::kMax));
    std::copy_n(b.begin(), h.len, h.bytes.begin());
  }
  template <class T>
  void operator()(std::string_view k, std::optional<T>& v) {
    const Json* j = obj.find(k);
    if (!j || j->isNull()) return;
    T t{};
    (*this)(k, t);
    v = std::move(t);
  }
  void operator()(std::string_view k, Nullable<std::string>& v) {  // (absent reads as null)
    const Json* j = obj.find(k);
    if (j && j->isString()) v.value = std::string(j->asString());
    else if (j && !j->isNull()) fail(k, "is neither a string nor null");
  }
  void direction(std::string_view k, bool& in) {
    std::string d;
    (*this)(k, d);
    if (ok && d != "in" && d != "out") fail(k, "is neither \"in\" nor \"out\"");
    in = d == "in";
  }
  void versionName(std::string_view k, std::uint16_t& v) {
    std::string name;
    (*this)(k, name);
    v = wire::versionFromName(name);
  }
  void spread(Report& r) {
    r.object = Json::object();
    for (const auto& [k, v] : obj.asObject()) r.object.set(k, v);
  }
};

// Hands each field to a callback; trees by reference.
struct FieldWalker {
  const std::function<void(std::string_view, const Json&)>& f;

  void operator()(std::string_view k, const std::string& v) { f(k, Json(v)); }
  template <Integer T>
  void operator()(std::string_view k, T v) {
    if constexpr (std::is_signed_v<T>) f(k, Json(static_cast<long long>(v)));
    else f(k, Json(static_cast<unsigned long long>(v)));
  }
  void operator()(std::string_view k, double v) { f(k, Json(v)); }
  void operator()(std::string_view k, bool v) { f(k, Json(v)); }
  void operator()(std::string_view k, const Json& v) { f(k, v); }
  void operator()(std::string_view k, const Body& v) { f(k, v.tree()); }
  void operator()(std::string_view k, const CodeName& v) {
    Json c = Json::object();
    c.set("id", static_cast<long long>(v.id));
    c.set("name", v.name);
    f(k, c);
  }
  void operator()(std::string_view k, const HeadBytes& h) { f(k, Json(wire::toHex(h.view()))); }
  template <class T>
  void operator()(std::string_view k, const std::optional<T>& v) {
    if (v) (*this)(k, *v);
  }
  void operator()(std::string_view k, const Nullable<std::string>& v) {
    if (v.value) f(k, Json(*v.value));
    else f(k, Json());
  }
  void direction(std::string_view k, bool in) { f(k, Json(in ? "in" : "out")); }
  void versionName(std::string_view k, std::uint16_t v) { f(k, Json(wire::versionName(v))); }
  void spread(const Report& r) {
    if (!r.object.isObject()) return;
    for (const auto& [k, v] : r.object.asObject()) f(k, v);
  }
};

// The kind named `name`, default-constructed into `p`; false for a name no kind has.
template <std::size_t I = 0>
bool kindByName(std::string_view name, Payload& p) {
  if constexpr (I + 1 < std::variant_size_v<Payload>) {  // (the last alternative is Other)
    using Kind = std::variant_alternative_t<I, Payload>;
    if (Kind::kName == name) {
      p.emplace<I>();
      return true;
    }
    return kindByName<I + 1>(name, p);
  } else {
    return false;
  }
}

template <std::size_t I = 0>
Category categoryByName(std::string_view name) {
  if constexpr (I + 1 < std::variant_size_v<Payload>) {
    using Kind = std::variant_alternative_t<I, Payload>;
    return Kind::kName == name ? Kind::kCategory : categoryByName<I + 1>(name);
  } else {
    return kCore;
  }
}

// Exactly the form formatTimestamp writes ("2026-11-18T11:06:40.000001Z"), each part in range.
bool parseTimestamp(std::string_view s, Clock::time_point& out) {
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.ddddddZ";
  static_assert(kShape.size() == kTimestampLength);
  if (s.size() != kShape.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (kShape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != kShape[i]) return false;
  const auto num = [s](std::size_t at, std::size_t n) {
    int v = 0;
    std::from_chars(s.data() + at, s.data() + at + n, v);
    return v;
  };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(5, 2) - 1;
  tm.tm_mday = num(8, 2);
  tm.tm_hour = num(11, 2);
  tm.tm_min = num(14, 2);
  tm.tm_sec = num(17, 2);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60)
    return false;
  const std::time_t t = timegm(&tm);
  // The clock counts nanoseconds in 64 bits: years past 2262 (or before 1677) do not fit.
  if (t < -9'000'000'000LL || t > 9'000'000'000LL) return false;
  out = Clock::time_point(std::chrono::seconds(t)) + std::chrono::microseconds(num(20, 6));
  return true;
}

}  // namespace

ev::Data ev::Data::of(bool in, std::span<const std::uint8_t> chunk) {
  Data d;
  d.in = in;
  d.bytes = chunk.size();
  d.head.len = static_cast<std::uint8_t>(std::min(chunk.size(), HeadBytes::kMax));
  std::copy_n(chunk.begin(), d.head.len, d.head.bytes.begin());  // (memcpy from an empty chunk's null data is UB)
  return d;
}

std::string_view Event::name() const {
  return std::visit(
      [](const auto& p) -> std::string_view {
        if constexpr (std::is_same_v<std::decay_t<decltype(p)>, ev::Other>) return p.name;
        else return std::decay_t<decltype(p)>::kName;
      },
      payload);
}

Category Event::category() const {
  return std::visit(
      [](const auto& p) -> Category {
        if constexpr (std::is_same_v<std::decay_t<decltype(p)>, ev::Other>) return categoryByName(p.name);
        else return std::decay_t<decltype(p)>::kCategory;
      },
      payload);
}

namespace {
void walk(const Payload& what, const std::function<void(std::string_view, const Json&)>& f) {
  if (const auto* o = std::get_if<ev::Other>(&what)) {
    if (o->fields.isObject())
      for (const auto& [k, v] : o->fields.asObject()) f(k, v);
    return;
  }
  FieldWalker w{f};
  std::visit(
      [&w](const auto& p) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(p)>, ev::Other>) std::decay_t<decltype(p)>::fields(p, w);
      },
      what);
}
}  // namespace

Json fieldsObject(const Payload& what) {
  Json obj = Json::object();
  walk(what, [&obj](std::string_view k, const Json& v) { obj.set(k, v); });
  return obj;
}

const Json& fieldsOf(const Event& e, Json& scratch) {
  if (const auto* o = e.as<ev::Other>()) return o->fields;
  scratch = fieldsObject(e.payload);
  return scratch;
}

void forEachField(const Event& e, const std::function<void(std::string_view, const Json&)>& f) { walk(e.payload, f); }

Json toJson(const Event& e) {
  Json scratch;
  const Json& fields = fieldsOf(e, scratch);
  Json j = Json::object();
  j.set("ts", formatTimestamp(e.ts));
  j.set("conn", e.conn);
  if (e.leg != Leg::None) j.set("leg", legName(e.leg));
  j.set("event", e.name());
  for (const auto& [k, v] : fields.asObject()) j.set(k, v);
  return j;
}

void appendJsonLine(const Event& e, std::string& out) {
  using namespace std::string_view_literals;
  out += "{\"ts\":\""sv;
  appendTimestamp(e.ts, out);
  out += "\",\"conn\":"sv;
  LineWriter w{out};
  w.number(e.conn);
  if (e.leg != Leg::None) {
    out += ",\"leg\":\""sv;
    out += legName(e.leg);
    out += '"';
  }
  out += ",\"event\":"sv;
  appendJsonString(e.name(), out);
  std::visit(
      [&w](const auto& p) {
        if constexpr (std::is_same_v<std::decay_t<decltype(p)>, ev::Other>) w.spreadObject(p.fields);
        else std::decay_t<decltype(p)>::fields(p, w);
      },
      e.payload);
  out += '}';
}

bool fromJson(const Json& j, Event& out, std::string* error) {
  const auto fail = [error](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  if (!j.isObject()) return fail("not a JSON object");
  const Json* ts = j.find("ts");
  const Json* conn = j.find("conn");
  const Json* name = j.find("event");
  if (!name) return fail("field 'event' is missing");
  if (!name->isString()) return fail("field 'event' is not a string");
  if (!ts) return fail("field 'ts' is missing");
  if (!ts->isString() || !parseTimestamp(ts->asString(), out.ts))
    return fail("field 'ts' is not a timestamp like 2026-11-18T11:06:40.000001Z");
  if (!conn) return fail("field 'conn' is missing");
  if (!conn->isInt() || (conn->value().is_int64() && conn->asInt() < 0))
    return fail("field 'conn' is not a connection id (an integer from 0)");
  out.conn = conn->asUint();
  out.leg = Leg::None;
  if (const Json* leg = j.find("leg")) {
    if (leg->asString() == "client") out.leg = Leg::Client;
    else if (leg->asString() == "upstream") out.leg = Leg::Upstream;
    else return fail("field 'leg' is neither \"client\" nor \"upstream\"");
  }
  Json fields = Json::object();
  for (const auto& [k, v] : j.asObject())
    if (k != "ts" && k != "conn" && k != "leg" && k != "event") fields.set(k, v);
  restoreHexFields(fields);  // a peer's bytes that were not UTF-8, as they came
  if (!kindByName(name->asString(), out.payload)) {
    out.payload = ev::Other{std::string(name->asString()), std::move(fields)};
    return true;
  }
  TreeReader r{fields, true, {}};
  std::visit(
      [&r](auto& p) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(p)>, ev::Other>) std::decay_t<decltype(p)>::fields(p, r);
      },
      out.payload);
  if (!r.ok) return fail(std::string(name->asString()) + ": " + r.error);
  return true;
}

}  // namespace tlstrace::trace
