// Trace events as plain values (schema: docs/events.md) and the sink interface they flow into.
#pragma once
#include <atomic>
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

#include "trace/events.h"
#include "trace/json.h"

namespace tlstrace::trace {

enum class Leg { None, Client, Upstream };
[[nodiscard]] std::string_view legName(Leg leg);

inline constexpr unsigned kDefaultCategories = kTcp | kHandshake | kKeyExchange | kTrust;
// Parses "tcp,handshake" / "all"; returns false with the bad token in `bad`.
[[nodiscard]] bool parseCategories(std::string_view list, unsigned& out, std::string& bad);

using Clock = std::chrono::system_clock;

// One trace event: when, which connection and leg, and what (one of the kinds of events.h).
struct Event {
  Event() = default;
  template <class Kind>
  Event(Clock::time_point t, std::uint64_t c, Leg l, Kind&& what)
      : ts(t), conn(c), leg(l), payload(std::forward<Kind>(what)) {}
  Clock::time_point ts{};
  std::uint64_t conn = 0;
  Leg leg = Leg::None;
  Payload payload;

  [[nodiscard]] std::string_view name() const;
  [[nodiscard]] Category category() const;
  template <class Kind>
  [[nodiscard]] const Kind* as() const {
    return std::get_if<Kind>(&payload);
  }
};

// The event's own fields as a JSON object, built into `scratch` (an Other's are returned as they are).
[[nodiscard]] const Json& fieldsOf(const Event& e, Json& scratch);
// The fields of one event kind as a JSON object (what analysis/ keeps of tls.established).
[[nodiscard]] Json fieldsObject(const Payload& what);
// The same fields one by one, in order, without building the object: trees (a message body, a
// report's members) are passed as they are, scalars as a temporary value.
void forEachField(const Event& e, const std::function<void(std::string_view key, const Json& value)>& f);

// RFC 3339 UTC with microseconds.
[[nodiscard]] std::string formatTimestamp(Clock::time_point tp);
void appendTimestamp(Clock::time_point tp, std::string& out);  // the same, appended
inline constexpr std::size_t kTimestampLength = 27;            // "2026-11-27T08:00:00.123456Z"
char* writeTimestamp(Clock::time_point tp, char* out);         // kTimestampLength bytes; returns the end
// The JSON Lines form: common fields first, then the event's own.
[[nodiscard]] Json toJson(const Event& e);
// The same, serialised straight into `out` (no copy of the fields).
void appendJsonLine(const Event& e, std::string& out);
// Inverse of toJson (for `convert`): the event kind by its name, its fields from the object
// (an unknown kind becomes ev::Other); false when a common field is missing or a known field has
// the wrong type, with `error` (when given) naming the field and what is wrong with it. Any JSON
// value is safe to pass: the reader trusts nothing about it.
[[nodiscard]] bool fromJson(const Json& j, Event& out, std::string* error = nullptr);

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(const Event& e) = 0;
  virtual void flush() {}
};

// Fan-out to every sink, filtered by category, on a writer thread of its own: io threads only
// queue events (one short lock per batch) and never render or write on the data path. The queue
// is bounded: when the sinks cannot keep up, submit() waits (the data path slows) and the wait is
// counted, so a slow output loses nothing. A stalled one (the writer stuck, not one event further
// for kStallAfter: a FIFO nobody reads, a hung disk) must not freeze the proxy: until the writer
// finishes that pass, full-queue batches are dropped and counted (Stats::dropped, reported as a
// trace.dropped event). Sinks are only touched by the writer thread.
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
  // The same, for at most `limit`: false when the writer did not get there in time (a stalled
  // output); the events still queued are then in Stats::queued.
  [[nodiscard]] bool flushFor(std::chrono::milliseconds limit);

  struct Stats {
    std::uint64_t events = 0;       // written to the sinks
    std::uint64_t waits = 0;        // times a producer found the queue full and waited
    std::uint64_t wait_micros = 0;  // total time producers waited
    std::uint64_t dropped = 0;      // events dropped while the writer was stalled
    std::uint64_t queued = 0;       // events queued, not yet written
  };
  [[nodiscard]] Stats stats() const;
  // Called (from the waiting producer's thread, at most every 10 s) after a wait for room.
  void onBackpressure(std::function<void(const Stats&)> f) { on_backpressure_ = std::move(f); }
  // Called by the writer after a pass (at most every second, and always at the end and on
  // flush) to add events of its own, written to every sink after the pass: the outputs' losses
  // (trace.dropped). The queue's own drops are reported here too.
  void onPassEnd(std::function<void(std::vector<Event>&)> f) { on_pass_end_ = std::move(f); }
  // Called on the writer thread once it has nothing queued, at most every kIdleEvery (a call
  // that would come sooner waits until then, and is left out if work comes first): the allocator
  // may take back what this thread freed. (jemalloc caches freed blocks per thread; the writer
  // frees what the io threads allocated and allocates little, so its cache only fills. Giving it
  // back costs ~70 K instructions whatever it holds: after every pass, with connections one after
  // another, that was 2-3 times per connection.)
  void onIdle(std::function<void()> f) { on_idle_ = std::move(f); }
  static constexpr auto kIdleEvery = std::chrono::milliseconds(20);
  static constexpr auto kStallAfter = std::chrono::seconds(1);

 private:
  void run();
  [[nodiscard]] Stats statsLocked() const;  // with mu_ held
  // The writer's events after a pass (onPassEnd, the queue's drops): written, then flushed.
  void writeReports(bool force);
  [[nodiscard]] bool waitForRoom(std::unique_lock<std::mutex>& lock);  // false: drop the batch

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
  std::function<void(std::vector<Event>&)> on_pass_end_;
  std::function<void()> on_idle_;
  bool idle_due_ = false;                                   // on_idle_ waits for its time (writer only)
  std::chrono::steady_clock::time_point last_idle_call_{};  // writer only
  std::atomic<std::uint64_t> progress_{0};                  // events handed to the sinks: a slow pass is no stall
  bool stalled_ = false;                                    // drop instead of waiting until the next pass ends
  std::uint64_t dropped_reported_ = 0;                      // Stats::dropped as of the last trace.dropped (writer only)
  std::chrono::steady_clock::time_point last_pass_report_{};  // writer only
  std::chrono::steady_clock::time_point last_report_{};
  bool stop_ = false;
  // flush() asks (flush_asked_ = n) and waits until a pass that began after its request ended
  // (flush_done_ >= n): write now, without gathering, and report the outputs' losses.
  std::uint64_t flush_asked_ = 0;
  std::uint64_t flush_done_ = 0;
  [[nodiscard]] bool flushWanted() const { return flush_asked_ > flush_done_; }
  // Idle: blocked until something is queued. Gathering: letting a pass's events gather.
  enum class WriterState : std::uint8_t { Busy, Idle, Gathering };
  WriterState writer_state_ = WriterState::Busy;
  // A gathering writer starts its pass early once this many events wait (well before the bound).
  [[nodiscard]] std::size_t gatherLimit() const { return max_queued_ / 2 + 1; }
  std::thread writer_;  // last: started once the members above exist
};

}  // namespace tlstrace::trace
