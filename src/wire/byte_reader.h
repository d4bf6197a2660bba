// Bounds-checked, non-owning reader over untrusted bytes: the only way wire data is parsed.
// In the spirit of BoringSSL's CBS: it only shrinks, every read checks the length first, and a
// failed read leaves the reader untouched so callers can report the offset.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tlstrace::wire {

using Bytes = std::span<const std::uint8_t>;

class ByteReader {
 public:
  ByteReader() = default;
  explicit ByteReader(Bytes data, std::size_t base_offset = 0) : data_(data), base_(base_offset) {}

  [[nodiscard]] std::size_t remaining() const { return data_.size(); }
  [[nodiscard]] bool empty() const { return data_.empty(); }
  // Offset of the next unread byte relative to the start of the outermost message.
  [[nodiscard]] std::size_t offset() const { return base_; }
  [[nodiscard]] Bytes rest() const { return data_; }

  [[nodiscard]] bool readU8(std::uint8_t& out) {
    std::uint64_t v = 0;
    if (!readBE(1, v)) return false;
    out = static_cast<std::uint8_t>(v);
    return true;
  }
  [[nodiscard]] bool readU16(std::uint16_t& out) {
    std::uint64_t v = 0;
    if (!readBE(2, v)) return false;
    out = static_cast<std::uint16_t>(v);
    return true;
  }
  [[nodiscard]] bool readU24(std::uint32_t& out) {
    std::uint64_t v = 0;
    if (!readBE(3, v)) return false;
    out = static_cast<std::uint32_t>(v);
    return true;
  }
  [[nodiscard]] bool readU32(std::uint32_t& out) {
    std::uint64_t v = 0;
    if (!readBE(4, v)) return false;
    out = static_cast<std::uint32_t>(v);
    return true;
  }
  [[nodiscard]] bool readBytes(std::size_t n, Bytes& out) {
    if (n > data_.size()) return false;
    out = data_.first(n);
    advance(n);
    return true;
  }
  [[nodiscard]] bool readReader(std::size_t n, ByteReader& child) {
    const std::size_t at = base_;
    Bytes b;
    if (!readBytes(n, b)) return false;
    child = ByteReader(b, at);
    return true;
  }
  [[nodiscard]] bool skip(std::size_t n) {
    Bytes ignored;
    return readBytes(n, ignored);
  }
  // Length-prefixed vectors (RFC 8446 section 3.4): the child view covers exactly the body.
  [[nodiscard]] bool readU8Prefixed(ByteReader& child) {
    ByteReader save = *this;
    std::uint8_t n = 0;
    if (readU8(n) && readReader(n, child)) return true;
    *this = save;
    return false;
  }
  [[nodiscard]] bool readU16Prefixed(ByteReader& child) {
    ByteReader save = *this;
    std::uint16_t n = 0;
    if (readU16(n) && readReader(n, child)) return true;
    *this = save;
    return false;
  }
  [[nodiscard]] bool readU24Prefixed(ByteReader& child) {
    ByteReader save = *this;
    std::uint32_t n = 0;
    if (readU24(n) && readReader(n, child)) return true;
    *this = save;
    return false;
  }

 private:
  bool readBE(std::size_t n, std::uint64_t& out) {
    if (n > data_.size()) return false;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | data_[i];
    out = v;
    advance(n);
    return true;
  }
  void advance(std::size_t n) {
    data_ = data_.subspan(n);
    base_ += n;
  }

  Bytes data_{};
  std::size_t base_ = 0;
};

std::string toHex(Bytes b, std::size_t cap = SIZE_MAX);
// The same digits written to `out` (2 * b.size() chars, lowercase); returns the end.
char* writeHex(Bytes b, char* out);
// Lowercase or uppercase hex to bytes; stops at the first non-hex pair.
std::vector<std::uint8_t> fromHex(std::string_view hex);

}  // namespace tlstrace::wire
