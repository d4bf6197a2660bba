// Writes a line whose maximum length is known up front straight into a std::string, through one
// resize and a raw pointer. The per-record events come by the thousand, and a dozen small
// std::string appends per line cost more than the formatting itself.
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
  // Room for `max` bytes after what `out` holds; the destructor trims to what was written.
  RawWriter(std::string& out, std::size_t max) : out_(out) {
    const std::size_t at = out.size();
    out.resize(at + max);
    p_ = out.data() + at;
    end_ = p_ + max;
  }
  ~RawWriter() { out_.resize(static_cast<std::size_t>(p_ - out_.data())); }
  RawWriter(const RawWriter&) = delete;
  RawWriter& operator=(const RawWriter&) = delete;

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
  char* p_;
  char* end_;
};

}  // namespace tlstrace::trace
