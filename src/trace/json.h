// An ordered JSON value over boost::json::value: events keep their fields in the order they were
// added (boost::json::object keeps insertion order) so that the JSON Lines output and the text
// trace read the same way every time. Parsing is Boost.JSON's; writing is our own (json.cpp says
// why).
#pragma once
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace tlstrace::trace {

// A string held by a Json, or an object key: a view into the value that also converts to
// std::string, so that code written for the former std::string storage reads it unchanged.
class JsonStr : public std::string_view {
 public:
  constexpr JsonStr() = default;
  constexpr JsonStr(std::string_view s) : std::string_view(s) {}  // NOLINT: implicit by design
  operator std::string() const { return std::string(data(), size()); }
};
// (std::string's own operator+ templates cannot deduce through the conversion.)
inline std::string operator+(const std::string& a, JsonStr b) { return std::string(a).append(b); }
inline std::string operator+(std::string&& a, JsonStr b) { return std::move(a.append(b)); }
inline std::string operator+(const char* a, JsonStr b) { return std::string(a).append(b); }
inline std::string operator+(JsonStr a, const std::string& b) { return std::string(a).append(b); }
inline std::string operator+(JsonStr a, const char* b) { return std::string(a).append(b); }

class Json;
struct JsonMember {  // one field of an object, as asObject() iterates them
  JsonStr first;
  const Json& second;
};

class Json {
 public:
  // Builders, for lists and objects put together before they become a value.
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;
  class ArrayView;
  class ObjectView;

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool b) : v_(b) {}
  Json(int i) : v_(static_cast<std::int64_t>(i)) {}
  Json(unsigned i) : v_(static_cast<std::int64_t>(i)) {}
  Json(long i) : v_(static_cast<std::int64_t>(i)) {}
  Json(unsigned long i) : v_(integer(i)) {}
  Json(long long i) : v_(static_cast<std::int64_t>(i)) {}
  Json(unsigned long long i) : v_(integer(i)) {}
  Json(double d) : v_(d) {}
  Json(const char* s) : v_(boost::json::string_view(s)) {}
  Json(const std::string& s) : v_(boost::json::string_view(s.data(), s.size())) {}
  Json(std::string_view s) : v_(boost::json::string_view(s.data(), s.size())) {}
  Json(const Array& a);
  Json(Array&& a);
  Json(const Object& o);
  Json(Object&& o);
  explicit Json(boost::json::value v) : v_(std::move(v)) {}

  static Json object() { return Json(boost::json::value(boost::json::object_kind)); }
  static Json array() { return Json(boost::json::value(boost::json::array_kind)); }

  [[nodiscard]] bool isNull() const { return v_.is_null(); }
  [[nodiscard]] bool isBool() const { return v_.is_bool(); }
  [[nodiscard]] bool isInt() const { return v_.is_int64() || v_.is_uint64(); }
  [[nodiscard]] bool isDouble() const { return v_.is_double(); }
  [[nodiscard]] bool isString() const { return v_.is_string(); }
  [[nodiscard]] bool isArray() const { return v_.is_array(); }
  [[nodiscard]] bool isObject() const { return v_.is_object(); }

  [[nodiscard]] bool asBool() const { return v_.is_bool() && v_.get_bool(); }
  [[nodiscard]] std::int64_t asInt() const {
    switch (v_.kind()) {
      case boost::json::kind::int64: return v_.get_int64();
      case boost::json::kind::uint64: return static_cast<std::int64_t>(v_.get_uint64());
      case boost::json::kind::double_: {
        // Read back from untrusted files ("conn":1e400 parses as inf): a double outside the range,
        // or NaN, has no integer value; converting it would be undefined behaviour.
        const double d = v_.get_double();
        return d >= -9.2e18 && d <= 9.2e18 ? static_cast<std::int64_t>(d) : 0;
      }
      default: return 0;
    }
  }
  // The same for unsigned fields (counters, connection ids): all 64 bits.
  [[nodiscard]] std::uint64_t asUint() const {
    return v_.is_uint64() ? v_.get_uint64() : static_cast<std::uint64_t>(asInt());
  }
  [[nodiscard]] double asDouble() const {
    switch (v_.kind()) {
      case boost::json::kind::double_: return v_.get_double();
      case boost::json::kind::uint64: return static_cast<double>(v_.get_uint64());
      default: return static_cast<double>(asInt());
    }
  }
  // Empty (string, list, object) when the value is of another kind.
  [[nodiscard]] JsonStr asString() const {
    if (!v_.is_string()) return {};
    const auto& s = v_.get_string();
    return std::string_view(s.data(), s.size());
  }
  [[nodiscard]] ArrayView asArray() const;
  [[nodiscard]] ObjectView asObject() const;

  // Object helpers. set() appends or replaces in place; find() returns nullptr when absent.
  Json& set(std::string_view key, Json value);
  [[nodiscard]] const Json* find(std::string_view key) const;
  [[nodiscard]] Json* find(std::string_view key) {
    return const_cast<Json*>(static_cast<const Json*>(this)->find(key));  // same lookup, caller owns *this
  }
  // Array helper.
  Json& push(Json value);

  [[nodiscard]] std::string dump() const;
  void dumpTo(std::string& out) const;
  // Strict RFC 8259 parser for one JSON text (Boost.JSON); nullopt (with a message) on error.
  static std::optional<Json> parse(std::string_view text, std::string* error = nullptr);

  [[nodiscard]] const boost::json::value& value() const { return v_; }
  [[nodiscard]] boost::json::value& value() { return v_; }

  // The elements of arrays and objects are boost::json::values, handed out as Json: a Json is
  // nothing but its value (asserted below).
  static const Json& of(const boost::json::value& v) { return *reinterpret_cast<const Json*>(&v); }
  static Json& of(boost::json::value& v) { return *reinterpret_cast<Json*>(&v); }

 private:
  // Unsigned values that fit are stored as int64, as Boost.JSON's parser does: the kinds of a
  // value and of its parsed-back text agree.
  static boost::json::value integer(unsigned long long i) {
    if (i <= static_cast<unsigned long long>(INT64_MAX)) return boost::json::value(static_cast<std::int64_t>(i));
    return boost::json::value(static_cast<std::uint64_t>(i));
  }
  boost::json::value v_;
};

static_assert(std::is_standard_layout_v<Json> && sizeof(Json) == sizeof(boost::json::value));

// asArray(): the items of an array, as Json (empty when not an array).
class Json::ArrayView {
 public:
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Json;
    using difference_type = std::ptrdiff_t;
    using pointer = const Json*;
    using reference = const Json&;
    iterator() = default;
    explicit iterator(const boost::json::value* p) : p_(p) {}
    const Json& operator*() const { return Json::of(*p_); }
    const Json* operator->() const { return &Json::of(*p_); }
    iterator& operator++() {
      ++p_;
      return *this;
    }
    iterator operator++(int) { return iterator(p_++); }
    bool operator==(const iterator&) const = default;

   private:
    const boost::json::value* p_ = nullptr;
  };
  explicit ArrayView(const boost::json::array* a) : a_(a) {}
  [[nodiscard]] std::size_t size() const { return a_ ? a_->size() : 0; }
  [[nodiscard]] bool empty() const { return size() == 0; }
  [[nodiscard]] iterator begin() const { return iterator(a_ ? a_->data() : nullptr); }
  [[nodiscard]] iterator end() const { return iterator(a_ ? a_->data() + a_->size() : nullptr); }
  const Json& operator[](std::size_t i) const { return Json::of((*a_)[i]); }
  [[nodiscard]] const Json& at(std::size_t i) const {
    if (i >= size()) throw std::out_of_range("Json array index");
    return (*this)[i];
  }
  [[nodiscard]] const Json& front() const { return (*this)[0]; }
  [[nodiscard]] const Json& back() const { return (*this)[size() - 1]; }

 private:
  const boost::json::array* a_;
};

// asObject(): the fields of an object in their order, as {key, Json} (empty when not an object).
class Json::ObjectView {
 public:
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = JsonMember;
    using difference_type = std::ptrdiff_t;
    using reference = JsonMember;
    iterator() = default;
    explicit iterator(const boost::json::key_value_pair* p) : p_(p) {}
    JsonMember operator*() const { return member(*p_); }
    iterator& operator++() {
      ++p_;
      return *this;
    }
    iterator operator++(int) { return iterator(p_++); }
    bool operator==(const iterator&) const = default;

   private:
    const boost::json::key_value_pair* p_ = nullptr;
  };
  explicit ObjectView(const boost::json::object* o) : o_(o) {}
  [[nodiscard]] std::size_t size() const { return o_ ? o_->size() : 0; }
  [[nodiscard]] bool empty() const { return size() == 0; }
  [[nodiscard]] iterator begin() const { return iterator(o_ ? o_->begin() : nullptr); }
  [[nodiscard]] iterator end() const { return iterator(o_ ? o_->end() : nullptr); }
  JsonMember operator[](std::size_t i) const { return member(o_->begin()[i]); }

 private:
  static JsonMember member(const boost::json::key_value_pair& kv) {
    const auto k = kv.key();
    return {std::string_view(k.data(), k.size()), Json::of(kv.value())};
  }
  const boost::json::object* o_;
};

inline Json::ArrayView Json::asArray() const { return ArrayView(v_.if_array()); }
inline Json::ObjectView Json::asObject() const { return ObjectView(v_.if_object()); }

// A timing in milliseconds as events carry it: to the microsecond, which the writer shows with
// three decimals ("handshake_ms":12.085, docs/events.md). Unrounded it would print in full.
[[nodiscard]] inline double timingMs(double ms) { return std::round(ms * 1000) / 1000; }

// Appends `s` as a JSON string literal (quoted, escaped); true when `s` was not valid UTF-8 and
// went out with U+FFFD in place of each invalid byte (escape.h).
bool appendJsonString(std::string_view s, std::string& out);
// Appends `"key":value`, and after it `,"key_hex":...` with the exact bytes when the value (a
// string, or strings in an array) was not valid UTF-8 (docs/events.md, "Peer-supplied strings").
// `object`: the one the member belongs to, where a field of that name already there wins.
void appendJsonMember(std::string_view key, const Json& value, std::string& out, const Json* object = nullptr);
void appendJsonStringMember(std::string_view key, std::string_view value, std::string& out);
// The `,"key_hex":"..."` alone, for a writer that wrote `"key":value` itself and was told by
// appendJsonString() that `value` was not UTF-8.
void appendJsonHexSibling(std::string_view key, std::string_view value, std::string& out);
// The reverse, for `convert`: each `X` that has an `X_hex` beside it gets its bytes back, and the
// `X_hex` goes (in nested objects too), so a line reads back to the event that was written.
void restoreHexFields(Json& j);

}  // namespace tlstrace::trace
