// Trace events as plain values (schema: docs/events.md) and the sink interface they flow into.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
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

// The fields of the two events that come once per record or per relayed chunk (tls.record, data),
// kept flat: building, queuing and rendering them needs no JSON tree. Same fields, same order,
// same output as the Json form (docs/events.md); fieldsOf() gives that form to everything else.
struct FlatFields {
  enum class Kind : std::uint8_t { None, Record, Data };
  Kind kind = Kind::None;
  bool in = false;                // "dir"
  std::uint8_t content_type = 0;  // tls.record "content_type"
  std::uint16_t version = 0;      // tls.record "version" (legacy_record_version)
  std::uint64_t length = 0;       // tls.record "length", data "bytes"
  // data "hex": the first bytes of the chunk (kept raw, written as hex by the renderers).
  static constexpr std::size_t kHeadMax = 64;
  std::uint8_t head_len = 0;
  std::uint8_t head[kHeadMax];

  // A data event for one relayed chunk: its size, and its first kHeadMax bytes.
  [[nodiscard]] static FlatFields data(bool in, std::span<const std::uint8_t> chunk);
  [[nodiscard]] std::span<const std::uint8_t> headBytes() const { return {head, head_len}; }
};

struct Event {
  // (User-provided so that emplace_back() does not zero the whole event, flat.head included,
  // before the member initialisers run: a flat event is built on the io thread per record.)
  Event() {}
  explicit Event(std::string&& event_name) : name(std::move(event_name)) {}
  explicit Event(std::string_view event_name) : name(event_name) {}
  Clock::time_point ts{};
  std::uint64_t conn = 0;
  Leg leg = Leg::None;
  std::string name;
  Json fields = Json::object();  // beyond the common ts/conn/leg/event
  FlatFields flat;               // used instead of `fields` when flat.kind != None
};

// The event's own fields as a Json object: `e.fields`, or the flat ones written into `scratch`.
[[nodiscard]] const Json& fieldsOf(const Event& e, Json& scratch);

[[nodiscard]] Category categoryOf(std::string_view event_name);
// RFC 3339 UTC with microseconds.
[[nodiscard]] std::string formatTimestamp(Clock::time_point tp);
void appendTimestamp(Clock::time_point tp, std::string& out);  // the same, appended
inline constexpr std::size_t kTimestampLength = 27;            // "2026-11-27T08:00:00.123456Z"
char* writeTimestamp(Clock::time_point tp, char* out);         // kTimestampLength bytes; returns the end
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

// Fan-out to every sink, filtered by category, on a writer thread of its own: io threads only
// queue events (one short lock per batch) and never render or write on the data path. The queue
// is bounded: when the sinks cannot keep up, submit() waits (the data path slows) and the wait is
// counted, so no event is ever dropped. Sinks are only touched by the writer thread.
class Tracer {
 public:
  explicit Tracer(unsigned categories = kDefaultCategories, std::size_t max_queued = 16384);
  ~Tracer();  // writes out everything queued, then stops the writer
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  void addSink(std::shared_ptr<Sink> s);  // before the first event
  [[nodiscard]] bool enabled(Category c) const { return c == kCore || (categories_ & c) != 0; }
  [[nodiscard]] unsigned categories() const { return categories_; }
  // Queues events in order; disabled categories are dropped here. The writer renders them
  // in passes at most a few milliseconds apart and flushes the sinks after each, so readers see
  // whole lines within moments.
  void emit(Event e);
  void submit(std::vector<Event>& batch);  // takes the events, leaves `batch` empty
  // An empty batch to gather a handler's events in: one whose events the writer has written (the
  // storage comes back to the producing thread through submit(): no allocation here, no free on
  // the writer thread), else a new one with room for a few.
  [[nodiscard]] std::vector<Event> newBatch();
  // Blocks until everything queued before the call is written and the sinks flushed.
  void flush();

  struct Stats {
    std::uint64_t events = 0;       // written to the sinks
    std::uint64_t waits = 0;        // times a producer found the queue full and waited
    std::uint64_t wait_micros = 0;  // total time producers waited
  };
  [[nodiscard]] Stats stats() const;
  // Called (from the waiting producer's thread, at most every 10 s) after a wait for room.
  void onBackpressure(std::function<void(const Stats&)> f) { on_backpressure_ = std::move(f); }

 private:
  void run();
  [[nodiscard]] Stats statsLocked() const;  // with mu_ held

  unsigned categories_;
  std::size_t max_queued_;
  std::vector<std::shared_ptr<Sink>> sinks_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // writer: something queued, or stop
  std::condition_variable space_cv_;  // producers: room in the queue
  std::condition_variable done_cv_;   // flush(): the writer caught up
  // Whole batches as the producers handed them over: queuing one is a move of its vector, not of
  // each event (with --trace all a keep-alive request brings six).
  std::vector<std::vector<Event>> queue_;
  std::size_t queued_ = 0;  // events in queue_
  // Written batches, emptied, with their storage: handed to producers in submit(). Bounded in
  // number and in each one's size (a handshake's big batch is freed, not kept).
  std::vector<std::vector<Event>> spare_;
  // (At most 32 x 8 events of 184 bytes here, and 8 batches per producing thread: ~80 KB in all,
  // whatever the number of connections.)
  static constexpr std::size_t kSpareMax = 32;
  static constexpr std::size_t kBatchCapacity = 8;  // what newBatch() reserves; larger ones are freed
  std::uint64_t queued_total_ = 0;                  // events ever queued
  std::uint64_t written_total_ = 0;                 // events ever written and flushed (each pass flushes)
  Stats stats_;                                     // waits; events come from written_total_
  std::function<void(const Stats&)> on_backpressure_;
  std::chrono::steady_clock::time_point last_report_{};
  bool stop_ = false;
  bool flush_requested_ = false;  // flush() waits: write now, without gathering
  // Idle: blocked until something is queued. Gathering: letting a pass's events gather.
  enum class WriterState : std::uint8_t { Busy, Idle, Gathering };
  WriterState writer_state_ = WriterState::Busy;
  // A gathering writer starts its pass early once this many events wait (well before the bound).
  [[nodiscard]] std::size_t gatherLimit() const { return max_queued_ / 2 + 1; }
  std::thread writer_;  // last: started once the members above exist
};

}  // namespace tlstrace::trace
