// A small ordered JSON value: events keep their fields in the order they were added so that the
// JSON Lines output and the text trace read the same way every time.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace tlstrace::trace {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool b) : v_(b) {}
  Json(int i) : v_(static_cast<std::int64_t>(i)) {}
  Json(unsigned i) : v_(static_cast<std::int64_t>(i)) {}
  Json(long i) : v_(static_cast<std::int64_t>(i)) {}
  Json(unsigned long i) : v_(static_cast<std::int64_t>(i)) {}
  Json(long long i) : v_(static_cast<std::int64_t>(i)) {}
  Json(unsigned long long i) : v_(static_cast<std::int64_t>(i)) {}
  Json(double d) : v_(d) {}
  Json(const char* s) : v_(std::string(s)) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(std::string_view s) : v_(std::string(s)) {}
  Json(Array a) : v_(std::move(a)) {}
  Json(Object o) : v_(std::move(o)) {}

  static Json object() { return Json(Object{}); }
  static Json array() { return Json(Array{}); }

  [[nodiscard]] bool isNull() const { return std::holds_alternative<std::monostate>(v_); }
  [[nodiscard]] bool isBool() const { return std::holds_alternative<bool>(v_); }
  [[nodiscard]] bool isInt() const { return std::holds_alternative<std::int64_t>(v_); }
  [[nodiscard]] bool isDouble() const { return std::holds_alternative<double>(v_); }
  [[nodiscard]] bool isString() const { return std::holds_alternative<std::string>(v_); }
  [[nodiscard]] bool isArray() const { return std::holds_alternative<Array>(v_); }
  [[nodiscard]] bool isObject() const { return std::holds_alternative<Object>(v_); }

  [[nodiscard]] bool asBool() const { return isBool() && std::get<bool>(v_); }
  [[nodiscard]] std::int64_t asInt() const {
    if (isInt()) return std::get<std::int64_t>(v_);
    if (isDouble()) return static_cast<std::int64_t>(std::get<double>(v_));
    return 0;
  }
  [[nodiscard]] double asDouble() const {
    if (isDouble()) return std::get<double>(v_);
    return static_cast<double>(asInt());
  }
  [[nodiscard]] const std::string& asString() const;
  [[nodiscard]] const Array& asArray() const;
  [[nodiscard]] const Object& asObject() const;

  // Object helpers. set() appends or replaces; find() returns nullptr when absent.
  Json& set(std::string key, Json value);
  [[nodiscard]] const Json* find(std::string_view key) const;
  [[nodiscard]] Json* find(std::string_view key) {
    return const_cast<Json*>(static_cast<const Json*>(this)->find(key));  // same lookup, caller owns *this
  }
  // Array helper.
  Json& push(Json value);

  [[nodiscard]] std::string dump() const;
  void dumpTo(std::string& out) const;
  // Strict parser for one JSON text; nullopt (with a message) on error.
  static std::optional<Json> parse(std::string_view text, std::string* error = nullptr);

 private:
  friend struct JsonDump;  // the serialiser reads the alternatives directly
  std::variant<std::monostate, bool, std::int64_t, double, std::string, Array, Object> v_;
};

// Appends `s` as a JSON string literal (quoted, escaped).
void appendJsonString(std::string_view s, std::string& out);

}  // namespace tlstrace::trace
