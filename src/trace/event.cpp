#include "trace/event.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>

namespace tlstrace::trace {

std::string_view legName(Leg leg) {
  switch (leg) {
    case Leg::Client: return "client";
    case Leg::Upstream: return "upstream";
    case Leg::None: break;
  }
  return "";
}

bool parseCategories(std::string_view list, unsigned& out, std::string& bad) {
  out = 0;
  while (!list.empty()) {
    auto comma = list.find(',');
    std::string_view tok = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    if (tok.empty()) continue;
    if (tok == "tcp") out |= kTcp;
    else if (tok == "handshake") out |= kHandshake;
    else if (tok == "keyexchange") out |= kKeyExchange;
    else if (tok == "trust") out |= kTrust;
    else if (tok == "keys") out |= kKeys;
    else if (tok == "record") out |= kRecord;
    else if (tok == "data") out |= kData;
    else if (tok == "all") out |= kAll;
    else {
      bad = std::string(tok);
      return false;
    }
  }
  return true;
}

std::string formatTimestamp(Clock::time_point tp) {
  std::string out;
  appendTimestamp(tp, out);
  return out;
}

void appendTimestamp(Clock::time_point tp, std::string& out) {
  char buf[kTimestampLength];
  out.append(buf, writeTimestamp(tp, buf));
}

char* writeTimestamp(Clock::time_point tp, char* out) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(tp.time_since_epoch()).count();
  // Each event is written twice (JSON line, text line) with the same stamp, and the writer
  // thread formats them one after the other: the last stamp is kept whole and copied again.
  thread_local long long last_us = std::numeric_limits<long long>::min();  // (no time is)
  thread_local char last[kTimestampLength];
  if (us == last_us) {
    std::memcpy(out, last, kTimestampLength);
    return out + kTimestampLength;
  }
  long long whole = us / 1000000;
  long long part = us % 1000000;
  if (part < 0) part += 1000000, --whole;  // before 1970: the second below, then what is over
  const auto secs = static_cast<std::time_t>(whole);
  // Most events share their second with the previous one: the calendar part is formatted once
  // per second and thread, only the microseconds each time.
  thread_local std::time_t cached_secs = std::numeric_limits<std::time_t>::min();
  thread_local char prefix[32] = "1970-01-01T00:00:00.";  // "YYYY-MM-DDTHH:MM:SS."
  if (secs != cached_secs) {
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900, tm.tm_mon + 1,
                                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (n == 20) std::memcpy(prefix, buf, 20);  // years 0..9999 only: other widths keep the last one
    cached_secs = secs;
  }
  std::memcpy(out, prefix, 20);
  // Six digits of microseconds, two at a time.
  static constexpr char kPairs[] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  auto frac = static_cast<unsigned>(part);
  for (int i = 24; i >= 20; i -= 2, frac /= 100) std::memcpy(out + i, kPairs + 2 * (frac % 100), 2);
  out[26] = 'Z';
  std::memcpy(last, out, kTimestampLength);
  last_us = us;
  return out + kTimestampLength;
}

namespace {
// Emptied event batches kept by each producing thread (newBatch), whichever tracer they came
// from: an empty vector<Event> is only storage.
thread_local std::vector<std::vector<Event>> t_batches;
constexpr std::size_t kThreadBatches = 8;
}  // namespace

Tracer::Tracer(unsigned categories, std::size_t max_queued)
    : categories_(categories), max_queued_(max_queued == 0 ? 1 : max_queued), writer_([this] { run(); }) {}

Tracer::~Tracer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_one();
  writer_.join();
}

void Tracer::addSink(std::shared_ptr<Sink> s) {
  std::lock_guard<std::mutex> lock(mu_);
  sinks_.push_back(std::move(s));
}

void Tracer::emit(Event e) {
  std::vector<Event> one;
  one.push_back(std::move(e));
  submit(one);
}

void Tracer::submit(std::vector<Event>& batch) {
  if ((categories_ & kAll) != kAll)  // with every category on, nothing to filter (per-record events)
    std::erase_if(batch, [this](const Event& e) { return !enabled(e.category()); });
  if (batch.empty()) return;
  std::unique_lock<std::mutex> lock(mu_);
  if (!waitForRoom(lock)) {
    stats_.dropped += batch.size();
    batch.clear();  // the storage stays with the producer
    return;
  }
  const bool was_empty = queued_ == 0;
  const std::size_t n = batch.size();
  queued_ += n;
  queued_total_ += n;
  // The queue takes the storage too: an idle connection keeps no event vector capacity.
  queue_.push_back(std::move(batch));
  batch = std::vector<Event>{};
  // While the lock is held anyway: emptied batches back to this thread for its next handlers.
  if (t_batches.capacity() == 0) t_batches.reserve(kThreadBatches);
  while (t_batches.size() < kThreadBatches && !spare_.empty()) {
    t_batches.push_back(std::move(spare_.back()));
    spare_.pop_back();
  }
  // An idle writer is woken by the first event; a gathering one only when the queue reaches the
  // gathering limit (it comes back by itself after kGather); a busy one looks again when done.
  const bool wake =
      (writer_state_ == WriterState::Idle && was_empty) ||
      (writer_state_ == WriterState::Gathering && queued_ >= gatherLimit() && queued_ - n < gatherLimit());
  lock.unlock();
  if (wake) work_cv_.notify_one();
}

// Back-pressure while the writer makes progress: the producer waits and the wait is counted. A
// writer that has not come back for the queue within kStallAfter is stalled (an output blocks
// it): then batches are dropped, not waited for, until it finishes the pass it is stuck in.
bool Tracer::waitForRoom(std::unique_lock<std::mutex>& lock) {
  while (queued_ >= max_queued_ && !stop_) {
    if (stalled_) return false;
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t progress = progress_.load(std::memory_order_relaxed);
    const bool room =
        space_cv_.wait_until(lock, t0 + kStallAfter, [this] { return queued_ < max_queued_ || stop_ || stalled_; });
    const auto t1 = std::chrono::steady_clock::now();
    ++stats_.waits;
    stats_.wait_micros +=
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count());
    // Stalled: no room and not one event written meanwhile (a slow pass still makes progress).
    if (!room && progress_.load(std::memory_order_relaxed) == progress) {
      stalled_ = true;
      space_cv_.notify_all();  // the other waiting producers drop too
    }
    if (on_backpressure_ && (stats_.waits == 1 || t1 - last_report_ >= std::chrono::seconds(10))) {
      last_report_ = t1;
      const Stats now = statsLocked();
      lock.unlock();
      on_backpressure_(now);
      lock.lock();  // the queue may have filled again meanwhile: the loop checks
    }
  }
  return true;
}

std::vector<Event> Tracer::newBatch() {
  std::vector<Event> b;
  if (!t_batches.empty()) {
    b = std::move(t_batches.back());
    t_batches.pop_back();
  } else {
    b.reserve(kBatchCapacity);
  }
  return b;
}

void Tracer::flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const std::uint64_t target = queued_total_;
  const std::uint64_t mine = ++flush_asked_;  // even with nothing queued: the losses are reported
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return written_total_ >= target && flush_done_ >= mine; });
}

bool Tracer::flushFor(std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock(mu_);
  const std::uint64_t target = queued_total_;
  const std::uint64_t mine = ++flush_asked_;
  work_cv_.notify_one();
  return done_cv_.wait_for(lock, limit, [&] { return written_total_ >= target && flush_done_ >= mine; });
}

Tracer::Stats Tracer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return statsLocked();
}

Tracer::Stats Tracer::statsLocked() const {
  Stats st = stats_;
  st.events = written_total_;
  st.queued = queued_total_ - written_total_;
  return st;
}

void Tracer::run() {
  // One pass every few milliseconds on a busy proxy: the first event after a quiet spell wakes
  // the writer, which then lets events gather for kGather before it renders them all and writes
  // each sink once. Fewer wake-ups of this thread and fewer, larger writes; a reader still sees
  // whole lines within kGather. flush(), stop and a half-full queue end the gathering early.
  constexpr auto kGather = std::chrono::milliseconds(5);
  std::vector<std::vector<Event>> work;
  std::unique_lock<std::mutex> lock(mu_);
  auto has_work = [this] { return queued_ > 0 || stop_ || flushWanted(); };
  auto idle_call = [this, &lock](std::chrono::steady_clock::time_point now) {
    idle_due_ = false;
    last_idle_call_ = now;
    lock.unlock();
    on_idle_();
    lock.lock();
  };
  for (;;) {
    writer_state_ = WriterState::Idle;
    if (idle_due_ && !work_cv_.wait_until(lock, last_idle_call_ + kIdleEvery, has_work)) {
      idle_call(std::chrono::steady_clock::now());  // still nothing to do at its time
      continue;
    }
    work_cv_.wait(lock, has_work);
    if (queued_ == 0) {  // stop, or a flush with nothing queued: every pass flushed already
      writer_state_ = WriterState::Busy;
      const std::uint64_t serving = flush_asked_;
      lock.unlock();
      writeReports(true);
      lock.lock();
      flush_done_ = std::max(flush_done_, serving);
      done_cv_.notify_all();
      if (stop_) return;
      continue;
    }
    writer_state_ = WriterState::Gathering;
    work_cv_.wait_for(lock, kGather, [this] { return stop_ || flushWanted() || queued_ >= gatherLimit(); });
    writer_state_ = WriterState::Busy;
    const bool report_now = flushWanted() || stop_;
    const std::uint64_t serving = flush_asked_;  // this pass covers every event queued before those flush()es
    work.swap(queue_);
    const std::size_t n = queued_;
    queued_ = 0;
    lock.unlock();
    space_cv_.notify_all();
    for (const auto& batch : work)
      for (const Event& e : batch) {
        for (auto& sink : sinks_) sink->write(e);
        progress_.fetch_add(1, std::memory_order_relaxed);
      }
    for (auto& sink : sinks_) sink->flush();
    writeReports(report_now);
    for (auto& batch : work) batch.clear();  // the events go, outside the lock; the storage may stay
    lock.lock();
    flush_done_ = std::max(flush_done_, serving);
    stalled_ = false;  // the writer is back: producers wait for it again
    for (auto& batch : work)
      if (spare_.size() < kSpareMax && batch.capacity() <= kBatchCapacity) spare_.push_back(std::move(batch));
    work.clear();
    written_total_ += n;
    done_cv_.notify_all();
    if (queued_ == 0 && on_idle_) {
      const auto now = std::chrono::steady_clock::now();
      idle_due_ = now - last_idle_call_ < kIdleEvery;
      if (!idle_due_) idle_call(now);
    }
  }
}

void Tracer::writeReports(bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_pass_report_ < std::chrono::seconds(1)) return;
  last_pass_report_ = now;
  std::vector<Event> extra;
  std::uint64_t dropped = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dropped = stats_.dropped;
  }
  if (dropped > dropped_reported_) {
    extra.emplace_back(Clock::now(), 0, Leg::None,
                       ev::TraceDropped{"queue", std::nullopt, "events", dropped - dropped_reported_, dropped,
                                        std::string("the trace writer was stalled")});
    dropped_reported_ = dropped;
  }
  if (on_pass_end_) on_pass_end_(extra);
  if (extra.empty()) return;
  for (const Event& e : extra)
    for (auto& sink : sinks_) sink->write(e);
  for (auto& sink : sinks_) sink->flush();
}

}  // namespace tlstrace::trace
