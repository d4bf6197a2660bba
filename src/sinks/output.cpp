#include "sinks/output.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "sinks/files.h"

namespace tlstrace::sinks {

namespace {
std::uint64_t countLines(std::string_view s) {
  return static_cast<std::uint64_t>(std::count(s.begin(), s.end(), '\n'));
}
}  // namespace

OutputFile::OutputFile(Spec spec) : spec_(std::move(spec)) {
  if (spec_.path.empty() || spec_.path == "-") {
    fd_ = spec_.path.empty() ? spec_.fallback_fd : STDOUT_FILENO;
    struct stat st {};
    regular_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
    if (!spec_.preamble.empty()) {
      held_ = spec_.preamble;
      held_units_ = spec_.preamble_units;
    }
    return;
  }
  openPath(true);
}

OutputFile::~OutputFile() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) drainHeld();
  closeFd();
}

std::string OutputFile::displayName() const {
  if (spec_.path == "-") return "stdout";
  if (spec_.path.empty()) return spec_.fallback_fd == STDERR_FILENO ? "stderr" : "stdout";
  return spec_.path;
}

std::string OutputFile::firstError() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_error_;
}

// Opened without blocking: a FIFO with no reader fails with ENXIO instead of blocking start-up
// (open(2), fifo(7)); the output then holds its first kHoldMax bytes and tries again at each write.
void OutputFile::openPath(bool at_start) {
  // One policy for every output (files.h): a 0600 spec holds secrets (created private, an
  // existing one narrowed, another user's refused).
  std::string open_error;
  const int fd = openOutputFile(spec_.path, spec_.what.c_str(), O_NONBLOCK, spec_.mode == 0600, open_error);
  if (fd < 0 && errno == ENXIO && open_error.rfind("cannot open", 0) == 0) {
    if (!announced_)
      spdlog::warn(
          "{} {} is a FIFO with no reader: waiting for one without stopping (up to {} KiB is held for it, "
          "then {} are dropped and counted)",
          spec_.what, spec_.path, kHoldMax / 1024, spec_.unit);
    announced_ = true;
    return;
  }
  if (fd < 0) {
    const std::string err = open_error;
    if (at_start) throw std::runtime_error(err);
    failed_ = true;
    ever_failed_ = true;
    if (first_error_.empty()) first_error_ = "cannot reopen: " + err;
    spdlog::error("{} (reopening): its {} are counted as lost (SIGHUP tries again)", err, spec_.unit);
    if (on_failure_) on_failure_();
    return;
  }
  struct stat st {};
  regular_ = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  if (spec_.truncate && at_start && regular_) (void)::ftruncate(fd, 0);
  // The writer thread may wait for a slow reader (the io threads never wait for it: the tracer
  // drops when it stalls); io-thread outputs keep O_NONBLOCK and hold or drop instead.
  if (spec_.blocking) (void)::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  fd_ = fd;
  owned_ = true;
  if (announced_) spdlog::info("{} {}: a reader opened the FIFO", spec_.what, spec_.path);
  announced_ = false;
  if (!spec_.preamble.empty()) {
    held_.insert(0, spec_.preamble);
    held_units_ += spec_.preamble_units;
  }
}

void OutputFile::closeFd() {
  if (owned_ && fd_ >= 0) ::close(fd_);
  fd_ = -1;
  owned_ = false;
}

void OutputFile::requestReopen() {
  if (spec_.path.empty() || spec_.path == "-") return;  // a standard stream stays what it is
  reopen_ = true;
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (lock.owns_lock() && reopen_.exchange(false)) reopenLocked();
}

// The old file keeps whole lines only: an unfinished tail (a pipe that took part of a line) is
// not carried into the new one, where it would start with half a line.
void OutputFile::reopenLocked() {
  if (tail_ && !held_.empty()) {
    const auto nl = spec_.lines ? held_.find('\n') : std::string::npos;
    const std::size_t cut = nl == std::string::npos ? held_.size() : nl + 1;
    const std::uint64_t units = spec_.lines ? countLines(std::string_view(held_).substr(0, cut)) : held_units_;
    held_.erase(0, cut);
    held_units_ -= std::min(units, held_units_);
    lose(units, "cut off by the reopen");
  }
  tail_ = false;
  if (fd_ >= 0 && !spec_.preamble.empty() && held_.starts_with(spec_.preamble)) {
    held_.erase(0, spec_.preamble.size());  // the new file gets its own
    held_units_ -= std::min(held_units_, spec_.preamble_units);
  }
  closeFd();
  failed_ = false;  // a new file, a new chance
  hold_full_ = false;
  openPath(false);
}

void OutputFile::lose(std::uint64_t units, const std::string& why) {
  lost_.fetch_add(units, std::memory_order_relaxed);
  if (first_error_.empty() && units > 0) first_error_ = why;
}

void OutputFile::abandonHeld() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) drainHeld();
  if (held_units_ > 0) lose(held_units_, fd_ < 0 ? "no reader on the FIFO" : "the reader did not take them");
  held_.clear();
  held_units_ = 0;
}

bool OutputFile::write(std::string_view data, std::uint64_t units) {
  // A lines output counts the lines of `data` itself, and only when they are held or lost.
  if (spec_.lines) units = kCountLines;
  const auto count = [&] { return units == kCountLines ? countLines(data) : units; };
  std::lock_guard<std::mutex> lock(mu_);
  if (reopen_.exchange(false)) reopenLocked();
  if (!failed_ && fd_ < 0 && owned_ == false && !spec_.path.empty() && spec_.path != "-") openPath(false);
  if (!failed_) drainHeld();
  if (failed_) {
    lose(count(), "");
    return false;
  }
  if (data.empty()) return true;
  if (fd_ < 0 || !held_.empty()) {
    hold(data, count());
    return true;
  }
  std::size_t done = 0;
  switch (push(data, units, done)) {
    case Push::Done: return true;
    case Push::Failed: return false;
    case Push::Partial: break;
  }
  // A full pipe took part of it: the rest goes out first, before anything else.
  held_.assign(data.substr(done));
  held_units_ = spec_.lines ? countLines(held_) : units;
  tail_ = done > 0;
  return true;
}

void OutputFile::hold(std::string_view data, std::uint64_t units) {
  if (held_.size() + data.size() > kHoldMax) {
    const char* why = fd_ < 0 ? "no reader on the FIFO" : "the reader is not reading";
    if (!hold_full_)
      spdlog::warn("{} {}: {} ({} KiB waiting): later {} are dropped and counted until it takes them", spec_.what,
                   displayName(), why, held_.size() / 1024, spec_.unit);
    hold_full_ = true;
    lose(units, why);
    return;
  }
  held_.append(data);
  held_units_ += units;
}

void OutputFile::drainHeld() {
  if (held_.empty() || fd_ < 0) return;
  std::size_t done = 0;
  const Push r = push(held_, held_units_, done);
  if (r == Push::Partial) {
    if (spec_.lines) held_units_ -= std::min(held_units_, countLines(std::string_view(held_).substr(0, done)));
    held_.erase(0, done);
    tail_ = tail_ || done > 0;
    return;
  }
  held_.clear();  // written, or lost and counted (fail)
  held_units_ = 0;
  tail_ = false;
  hold_full_ = false;
}

OutputFile::Push OutputFile::push(std::string_view data, std::uint64_t units, std::size_t& done) {
  done = 0;
  const off_t start = regular_ ? ::lseek(fd_, 0, owned_ ? SEEK_END : SEEK_CUR) : -1;
  while (done < data.size()) {
    const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!spec_.blocking) return Push::Partial;
      pollfd p{fd_, POLLOUT, 0};  // an inherited non-blocking stdout: wait as a blocking one would
      (void)::poll(&p, 1, -1);
      continue;
    }
    fail(n < 0 ? errno : EIO, data, done, units, start);
    return Push::Failed;
  }
  return Push::Done;
}

// A write failed after `done` bytes: a regular file is cut back to its last whole line (or to
// where this write began, for blocks), so nothing torn stays; a pipe keeps what it took (its
// torn tail is the last thing it gets). Everything not kept whole is counted as lost.
void OutputFile::fail(int err, std::string_view data, std::size_t done, std::uint64_t units, off_t start) {
  std::size_t keep = 0;
  if (done > 0 && spec_.lines) {
    const auto nl = data.substr(0, done).rfind('\n');
    keep = nl == std::string_view::npos ? 0 : nl + 1;
  }
  if (done > 0 && !(start >= 0 && ::ftruncate(fd_, start + static_cast<off_t>(keep)) == 0))
    keep = spec_.lines ? done : 0;  // not cut: the whole lines it took are delivered
  if (units == kCountLines) units = countLines(data);
  const std::uint64_t kept = spec_.lines ? std::min(units, countLines(data.substr(0, keep))) : 0;
  const std::string text = std::strerror(err);
  lose(units - kept, text);
  if (first_error_.empty()) first_error_ = text;
  failed_ = true;
  ever_failed_ = true;
  const bool reopens = !spec_.path.empty() && spec_.path != "-";
  spdlog::error("cannot write {} {}: {}: {} {} lost; later ones are counted, not written{}", spec_.what, displayName(),
                text, units - kept, spec_.unit, reopens ? " (SIGHUP reopens it)" : "");
  if (on_failure_) on_failure_();
}

void OutputMonitor::reopenAll() {
  for (auto& e : outs_) e.out->requestReopen();
}

void OutputMonitor::onFailure(const std::function<void()>& f) {
  for (auto& e : outs_) {
    e.out->onFailure(f);
    if (e.out->failed()) f();  // failed while opening (a capture's header)
  }
}

void OutputMonitor::appendReports(std::vector<trace::Event>& out) {
  for (auto& e : outs_) {
    const std::uint64_t lost = e.out->lost();
    if (lost <= e.reported) continue;
    const std::string err = e.out->firstError();
    out.emplace_back(
        trace::Clock::now(), 0, trace::Leg::None,
        trace::ev::TraceDropped{e.out->spec().output, e.out->displayName(), e.out->spec().unit, lost - e.reported, lost,
                                err.empty() ? std::nullopt : std::optional<std::string>(err)});
    e.reported = lost;
  }
}

void OutputMonitor::abandonHeld() {
  for (auto& e : outs_) e.out->abandonHeld();
}

std::uint64_t OutputMonitor::totalLost() const {
  std::uint64_t n = 0;
  for (const auto& e : outs_) n += e.out->lost();
  return n;
}

bool OutputMonitor::anyFailed() const {
  return std::any_of(outs_.begin(), outs_.end(), [](const Entry& e) { return e.out->everFailed(); });
}

std::vector<std::string> OutputMonitor::lossLines() const {
  std::vector<std::string> lines;
  for (const auto& e : outs_) {
    const std::uint64_t lost = e.out->lost();
    if (lost == 0 && !e.out->everFailed()) continue;
    const std::string err = e.out->firstError();
    lines.push_back(e.out->spec().what + " " + e.out->displayName() + ": " + std::to_string(lost) + " " +
                    e.out->spec().unit + " lost" + (err.empty() ? "" : " (" + err + ")"));
  }
  return lines;
}

}  // namespace tlstrace::sinks
