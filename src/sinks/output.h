// An output file (or stdout/stderr) that survives what the disk, the pipe or the reader does:
// write errors are caught and counted, a torn line or block is never followed by another, and
// SIGHUP can reopen it (log rotation).
#pragma once
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "trace/event.h"

namespace tlstrace::sinks {

class OutputFile {
 public:
  struct Spec {
    std::string path;                  // "-" = stdout, "" = fallback_fd
    int fallback_fd = 2;               // stderr for the text trace
    std::string output;                // short name for trace.dropped: events, trace, keylog, pcap
    std::string what;                  // for the operator: "events file", "key log", ...
    std::string unit = "lines";        // what `units` counts: events, lines, blocks
    mode_t mode = 0644;                // when created
    bool blocking = true;              // the writer thread may wait for a slow reader; io threads never
    bool lines = true;                 // the data is newline-terminated lines (else binary blocks)
    bool truncate = false;             // start empty (a capture is one run)
    std::string preamble;              // written first after every open (a pcapng section header)
    std::uint64_t preamble_units = 0;  // the units in it
  };
  // Throws when the file cannot be opened. A FIFO without a reader is not an error: the output
  // says it waits for one and holds up to kHoldMax bytes until one opens it.
  explicit OutputFile(Spec spec);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // `data` holds `units` whole lines or blocks: written whole, held whole or lost whole (counted).
  // False when they are lost. Thread-safe. A lines output counts the lines of `data` itself, only
  // when it has to (held or lost), not on every write: pass kCountLines.
  static constexpr std::uint64_t kCountLines = ~std::uint64_t{0};
  bool write(std::string_view data, std::uint64_t units);
  // SIGHUP: reopen the path (rotation). Done at once unless a write is under way, else by the next
  // write. Any thread.
  void requestReopen();
  // The end: held units that never got out are counted as lost.
  void abandonHeld();

  // Called once per failure (after the message), on the writing thread: --on-output-error.
  void onFailure(std::function<void()> f) { on_failure_ = std::move(f); }

  [[nodiscard]] const Spec& spec() const { return spec_; }
  [[nodiscard]] std::string displayName() const;  // the path, or stdout/stderr
  [[nodiscard]] std::uint64_t lost() const { return lost_.load(std::memory_order_relaxed); }
  [[nodiscard]] bool failed() const { return failed_.load(std::memory_order_relaxed); }
  [[nodiscard]] bool everFailed() const { return ever_failed_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::string firstError() const;

  static constexpr std::size_t kHoldMax = 1 << 20;  // held while a FIFO has no reader or is full

 private:
  enum class Push { Done, Partial, Failed };
  void openPath(bool at_start);
  void closeFd();
  void reopenLocked();
  Push push(std::string_view data, std::uint64_t units, std::size_t& done);
  void drainHeld();
  void hold(std::string_view data, std::uint64_t units);
  void lose(std::uint64_t units, const std::string& why);
  void fail(int err, std::string_view data, std::size_t done, std::uint64_t units, off_t start);

  Spec spec_;
  int fd_ = -1;
  bool owned_ = false;
  bool regular_ = false;    // a regular file: a torn write is cut off again (ftruncate)
  bool announced_ = false;  // "waiting for a reader" said once per open
  bool hold_full_ = false;  // "lines dropped" said once per stall
  std::string held_;        // bytes that go before anything else (a pipe's unfinished tail, a FIFO's wait)
  std::uint64_t held_units_ = 0;
  bool tail_ = false;  // held_ starts in the middle of a line or block (a pipe took the rest)
  std::atomic<std::uint64_t> lost_{0};
  std::atomic<bool> failed_{false};
  std::atomic<bool> ever_failed_{false};  // a reopen clears failed_, not this: the exit status
  std::atomic<bool> reopen_{false};
  std::string first_error_;  // with mu_
  std::function<void()> on_failure_;
  mutable std::mutex mu_;
};

// Every output of a run: SIGHUP reopens them all; their losses become trace.dropped events (from
// the tracer's writer, Tracer::onPassEnd) and the exit summary's loss lines.
class OutputMonitor {
 public:
  void add(OutputFile& out) { outs_.push_back({&out, 0}); }  // before the run
  void reopenAll();
  void onFailure(const std::function<void()>& f);  // every output's (--on-output-error)
  // A trace.dropped for each output that lost more since the last call (the writer thread only).
  void appendReports(std::vector<trace::Event>& out);
  // The end: what outputs still hold is lost.
  void abandonHeld();
  [[nodiscard]] std::uint64_t totalLost() const;
  [[nodiscard]] bool anyFailed() const;  // a write or reopen failed, even where nothing was lost
  // One sentence per output that lost anything: "events file /x: 12 events lost (No space left on device)".
  [[nodiscard]] std::vector<std::string> lossLines() const;

 private:
  struct Entry {
    OutputFile* out;
    std::uint64_t reported;
  };
  std::vector<Entry> outs_;
};

}  // namespace tlstrace::sinks
