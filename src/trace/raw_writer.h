// Writes a line whose maximum length is known up front through a raw pointer into a buffer on the
// stack, and appends it to a std::string in one go when done. The per-record events come by the
// thousand: a dozen small std::string appends per line cost more than the formatting itself, and
// so did growing the string first (std::string::resize zero-fills what it adds).
#pragma once
#include <charconv>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "wire/byte_reader.h"

namespace tlstrace::trace {

class RawWriter {
 public:
  // Room for `max` bytes (at most kMax); the destructor appends what was written to `out`.
  RawWriter(std::string& out, std::size_t max) : out_(out), end_(buf_ + (max < kMax ? max : kMax)) {}
  ~RawWriter() { out_.append(buf_, static_cast<std::size_t>(p_ - buf_)); }
  RawWriter(const RawWriter&) = delete;
  RawWriter& operator=(const RawWriter&) = delete;
  static constexpr std::size_t kMax = 512;

  // Each write is checked against the room asked for: a short line, never an overrun.
  void add(std::string_view s) {
    if (s.size() > room()) return;
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  void add(char c) {
    if (room() > 0) *p_++ = c;
  }
  void number(std::uint64_t v) {
    if (room() >= 20) p_ = std::to_chars(p_, end_, v).ptr;
  }
  void hex(std::span<const std::uint8_t> b) {
    if (2 * b.size() <= room()) p_ = wire::writeHex(b, p_);
  }
  // Raw access for writers that know their size (`n` bytes at most), then advance().
  [[nodiscard]] char* at(std::size_t n) { return room() >= n ? p_ : nullptr; }
  void advance(char* to) { p_ = to; }

 private:
  [[nodiscard]] std::size_t room() const { return static_cast<std::size_t>(end_ - p_); }
  std::string& out_;
  char buf_[kMax];  // (not zeroed: only [buf_, p_) is ever read)
  char* p_ = buf_;
  char* const end_;
};

}  // namespace tlstrace::trace
