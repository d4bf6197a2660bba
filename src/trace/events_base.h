// What every event kind is made of (trace/events.h has the kinds): the categories, the field
// shapes a kind may use, and TLSTRACE_EVENT, which gives a kind its name, category and field list.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "trace/body.h"
#include "trace/json.h"

namespace tlstrace::trace {

// Trace categories, as in javax.net.debug; selected with --trace.
enum Category : unsigned {
  kCore = 0,  // connection lifecycle, established, alerts, errors: always on
  kTcp = 1u << 0,
  kHandshake = 1u << 1,
  kKeyExchange = 1u << 2,
  kTrust = 1u << 3,
  kKeys = 1u << 4,
  kRecord = 1u << 5,
  kData = 1u << 6,
  kAll = 0x7f,
};

// A field that is always present, null when it has no value.
template <class T>
struct Nullable {
  std::optional<T> value;
};

// {"id": n, "name": "..."}, as the schema writes IANA codes.
struct CodeName {
  std::int64_t id = 0;
  std::string name;
};

// The first bytes of a relayed chunk (data events), kept raw and written as hex.
struct HeadBytes {
  static constexpr std::size_t kMax = 64;
  std::uint8_t len = 0;
  std::array<std::uint8_t, kMax> bytes;
  [[nodiscard]] std::span<const std::uint8_t> view() const { return {bytes.data(), len}; }
};

// A JSON object made elsewhere (tls/, analysis/) whose members are the event's fields.
struct Report {
  Json object = Json::object();
};

namespace ev {

#define TLSTRACE_EVENT(event_name, category)            \
  static constexpr std::string_view kName = event_name; \
  static constexpr Category kCategory = category;       \
  template <class Self, class V>                        \
  static void fields(Self& s, V& v)

}  // namespace ev
}  // namespace tlstrace::trace
