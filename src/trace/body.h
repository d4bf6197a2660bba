// The body of a tls.message event (docs/events.md): a JSON object kept as one flat buffer of
// tagged tokens instead of a tree of Boost.JSON values. A ClientHello's body has ~60 {id, name}
// objects; as Boost.JSON values each costs an object table, its keys' allocations and a hash,
// built on the io thread and freed on the writer thread. Here a whole body is one string, built
// by appending, written to the JSON line and the text trace by walking it, freed at once
// (docs/performance.md has the measurements). Other readers (the jsse and openssl text shapes,
// the live page, tests) take tree(); `convert` reads a body back with fromJson().
//
// Layout: a value is a one-byte tag and its payload, numbers in native byte order.
//   'O' object, 'A' array: u32 count, u32 bytes of content, then the content (objects: each
//       member a u32-length key followed by its value); 'C' an object whose members are "id" and
//       "name" in that order (a registry code, docs/events.md): the same layout, told apart
//       so that the text trace's "name (0xid)" test is one compare;
//   'S' string: u32 length and the bytes; 'I' int64; 'U' uint64 (above INT64_MAX); 'D' double;
//   'T' true, 'F' false, 'N' null.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "trace/json.h"

namespace tlstrace::trace {

// One value inside a Body: a view, valid while the Body lives and is not changed. The same reading
// interface as Json (isString, asString, asInt, asArray, asObject, find), so that the text trace's
// renderers are written once for both.
class BodyNode {
 public:
  explicit BodyNode(const char* p) : p_(p) {}
  [[nodiscard]] char tag() const { return *p_; }
  [[nodiscard]] bool isNull() const { return tag() == 'N'; }
  [[nodiscard]] bool isBool() const { return tag() == 'T' || tag() == 'F'; }
  [[nodiscard]] bool isInt() const { return tag() == 'I' || tag() == 'U'; }
  [[nodiscard]] bool isDouble() const { return tag() == 'D'; }
  [[nodiscard]] bool isString() const { return tag() == 'S'; }
  [[nodiscard]] bool isArray() const { return tag() == 'A'; }
  [[nodiscard]] bool isObject() const { return tag() == 'O' || tag() == 'C'; }
  [[nodiscard]] bool isCode() const { return tag() == 'C'; }  // {"id": .., "name": ..}
  [[nodiscard]] bool asBool() const { return tag() == 'T'; }
  [[nodiscard]] std::int64_t asInt() const;
  [[nodiscard]] std::uint64_t asUint() const;
  [[nodiscard]] double asDouble() const;
  [[nodiscard]] JsonStr asString() const {
    return isString() ? JsonStr(std::string_view(p_ + 5, u32(p_ + 1))) : JsonStr();
  }
  // Items of an array, members of an object (0 for other kinds).
  [[nodiscard]] std::size_t count() const { return isArray() || isObject() ? u32(p_ + 1) : 0; }
  // Bytes of this value, tag included.
  [[nodiscard]] std::size_t extent() const {
    switch (tag()) {
      case 'I':
      case 'U':
      case 'D': return 9;
      case 'S': return 5 + u32(p_ + 1);
      case 'O':
      case 'C':
      case 'A': return 9 + u32(p_ + 5);
      default: return 1;
    }
  }
  // An object's member, or nullopt.
  [[nodiscard]] std::optional<BodyNode> find(std::string_view key) const;
  // Writes a number, true/false or null as JSON (strings and containers: see appendBodyJson).
  void dumpTo(std::string& out) const;

  class Items;
  class Members;
  [[nodiscard]] Items asArray() const;
  [[nodiscard]] Members asObject() const;

  [[nodiscard]] const char* data() const { return p_; }
  static std::uint32_t u32(const char* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }

 private:
  const char* p_;
};

// One member of an object, as asObject() iterates them.
struct BodyMember {
  JsonStr first;
  BodyNode second;
};

// asArray(): the items of an array (none for another kind).
class BodyNode::Items {
 public:
  class iterator {
   public:
    explicit iterator(const char* p) : p_(p) {}
    BodyNode operator*() const { return BodyNode(p_); }
    iterator& operator++() {
      p_ += BodyNode(p_).extent();
      return *this;
    }
    bool operator==(const iterator&) const = default;

   private:
    const char* p_;
  };
  Items(const char* begin, const char* end, std::size_t n) : b_(begin), e_(end), n_(n) {}
  [[nodiscard]] iterator begin() const { return iterator(b_); }
  [[nodiscard]] iterator end() const { return iterator(e_); }
  [[nodiscard]] std::size_t size() const { return n_; }
  [[nodiscard]] bool empty() const { return n_ == 0; }

 private:
  const char *b_, *e_;
  std::size_t n_;
};

// asObject(): the members of an object in their order (none for another kind).
class BodyNode::Members {
 public:
  class iterator {
   public:
    explicit iterator(const char* p) : p_(p) {}
    BodyMember operator*() const {
      const std::uint32_t n = u32(p_);
      return {std::string_view(p_ + 4, n), BodyNode(p_ + 4 + n)};
    }
    iterator& operator++() {
      const std::uint32_t n = u32(p_);
      p_ += 4 + n + BodyNode(p_ + 4 + n).extent();
      return *this;
    }
    bool operator==(const iterator&) const = default;

   private:
    const char* p_;
  };
  Members(const char* begin, const char* end, std::size_t n) : b_(begin), e_(end), n_(n) {}
  [[nodiscard]] iterator begin() const { return iterator(b_); }
  [[nodiscard]] iterator end() const { return iterator(e_); }
  [[nodiscard]] std::size_t size() const { return n_; }
  [[nodiscard]] bool empty() const { return n_ == 0; }
  BodyMember operator[](std::size_t i) const {
    auto it = begin();
    for (std::size_t k = 0; k < i; ++k) ++it;
    return *it;
  }

 private:
  const char *b_, *e_;
  std::size_t n_;
};

inline BodyNode::Items BodyNode::asArray() const {
  if (!isArray()) return {p_, p_, 0};
  return {p_ + 9, p_ + 9 + u32(p_ + 5), u32(p_ + 1)};
}

inline BodyNode::Members BodyNode::asObject() const {
  if (!isObject()) return {p_, p_, 0};
  return {p_ + 9, p_ + 9 + u32(p_ + 5), u32(p_ + 1)};
}

inline std::optional<BodyNode> BodyNode::find(std::string_view key) const {
  for (const auto& [k, v] : asObject())
    if (k == key) return v;
  return std::nullopt;
}

// A JSON object or array being built (set() for objects, push() for arrays), then read through
// root(). Copyable and movable like a string.
class Body {
 public:
  Body() : Body('O', 0) {}  // an empty object, in the string's own bytes (no allocation)
  // To be filled: room for a small one (an extension, a short list) in one allocation.
  static Body object() { return Body('O', kSmall); }
  static Body array() { return Body('A', kSmall); }
  static Body code(std::uint16_t id, std::string_view name);  // {"id": id, "name": name}

  // Object members: appended, or put in place of a member of the same key (as Json::set).
  Body& set(std::string_view key, std::string_view s);
  Body& set(std::string_view key, const char* s) { return set(key, std::string_view(s)); }
  Body& set(std::string_view key, const std::string& s) { return set(key, std::string_view(s)); }
  Body& set(std::string_view key, bool b);
  Body& set(std::string_view key, int v) { return setInt(key, v); }
  Body& set(std::string_view key, long v) { return setInt(key, v); }
  Body& set(std::string_view key, long long v) { return setInt(key, v); }
  Body& set(std::string_view key, unsigned v) { return setUint(key, v); }
  Body& set(std::string_view key, unsigned long v) { return setUint(key, v); }
  Body& set(std::string_view key, unsigned long long v) { return setUint(key, v); }
  Body& set(std::string_view key, double v);
  Body& set(std::string_view key, const Body& v);
  Body& set(std::string_view key, const Json& v);
  // An {"id": id, "name": name} object (codeName() in decoder.h), written in place.
  Body& setCode(std::string_view key, std::uint16_t id, std::string_view name);
  // Array items.
  Body& pushCode(std::uint16_t id, std::string_view name);
  Body& push(std::string_view s);
  Body& push(const char* s) { return push(std::string_view(s)); }
  Body& push(const std::string& s) { return push(std::string_view(s)); }
  Body& push(int v) { return pushInt(v); }
  Body& push(unsigned v) { return pushUint(v); }
  Body& push(unsigned long v) { return pushUint(v); }
  Body& push(long long v) { return pushInt(v); }
  Body& push(const Body& v);
  Body& push(const Json& v);

  void reserve(std::size_t bytes) { buf_.reserve(bytes); }
  // Down to one allocation of the size it has (a message's body, built, before it is queued).
  void compact() { buf_.shrink_to_fit(); }
  [[nodiscard]] BodyNode root() const { return BodyNode(buf_.data()); }
  [[nodiscard]] bool empty() const { return root().count() == 0; }
  [[nodiscard]] std::optional<BodyNode> find(std::string_view key) const { return root().find(key); }
  // The same value as a Json tree (for readers that want one), and back.
  [[nodiscard]] Json tree() const;
  // (Any value: an events file read by `convert` may have anything as a body; only objects and
  // arrays take set() and push().)
  [[nodiscard]] static Body fromJson(const Json& j);
  // The JSON text of the whole value (json.cpp: the one writer of the schema's JSON).
  void dumpTo(std::string& out) const;
  [[nodiscard]] std::string dump() const {
    std::string s;
    dumpTo(s);
    return s;
  }
  bool operator==(const Body& o) const { return buf_ == o.buf_; }

 private:
  static constexpr std::size_t kSmall = 120;  // (jemalloc's 128-byte class)
  Body(char tag, std::size_t room);
  Body& setInt(std::string_view key, long long v);
  Body& setUint(std::string_view key, unsigned long long v);
  Body& pushInt(long long v);
  Body& pushUint(unsigned long long v);
  // Puts `key` with the value `encode(out)` appends: at the end, or in place of the value of a
  // member with the same key.
  template <class F>
  Body& setWith(std::string_view key, F encode);
  template <class F>
  Body& pushWith(F encode);
  void counted();  // one more member or item: the header's count and size

  std::string buf_;  // the root value, header included
};

// Appends the JSON text of `v` (a whole body, or one value of it), as Json::dumpTo would write the
// same value: the same escapes, numbers and `_hex` siblings.
void appendBodyJson(BodyNode v, std::string& out);

}  // namespace tlstrace::trace
