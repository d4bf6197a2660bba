// Trace events as plain values (schema: docs/events.md) and the sink interface they flow into.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "trace/json.h"

namespace tlstrace::trace {

enum class Leg { None, Client, Upstream };
[[nodiscard]] std::string_view legName(Leg leg);

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
inline constexpr unsigned kDefaultCategories = kTcp | kHandshake | kKeyExchange | kTrust;
// Parses "tcp,handshake" / "all"; returns false with the bad token in `bad`.
[[nodiscard]] bool parseCategories(std::string_view list, unsigned& out, std::string& bad);

using Clock = std::chrono::system_clock;

struct Event {
  Clock::time_point ts{};
  std::uint64_t conn = 0;
  Leg leg = Leg::None;
  std::string name;
  Json fields = Json::object();  // beyond the common ts/conn/leg/event
};

[[nodiscard]] Category categoryOf(std::string_view event_name);
// RFC 3339 UTC with microseconds.
[[nodiscard]] std::string formatTimestamp(Clock::time_point tp);
// The JSON Lines form: common fields first, then the event's own.
[[nodiscard]] Json toJson(const Event& e);
// The same, serialised straight into `out` (no copy of the fields).
void appendJsonLine(const Event& e, std::string& out);
// Inverse of toJson (for `convert`); false when a common field is missing.
[[nodiscard]] bool fromJson(const Json& j, Event& out);

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(const Event& e) = 0;
  virtual void flush() {}
};

// Fan-out to every sink, filtered by category. Thread-safe: io threads share one tracer, and the
// lock keeps each event's lines together in every sink.
class Tracer {
 public:
  explicit Tracer(unsigned categories = kDefaultCategories) : categories_(categories) {}
  void addSink(std::shared_ptr<Sink> s) { sinks_.push_back(std::move(s)); }
  [[nodiscard]] bool enabled(Category c) const { return c == kCore || (categories_ & c) != 0; }
  [[nodiscard]] unsigned categories() const { return categories_; }
  void emit(const Event& e);
  void flush();

 private:
  unsigned categories_;
  std::vector<std::shared_ptr<Sink>> sinks_;
  std::mutex mu_;
};

}  // namespace tlstrace::trace
