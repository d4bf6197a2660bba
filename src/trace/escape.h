// Peer-supplied strings (an SNI, an ALPN protocol, certificate names, a CONNECT target) are bytes
// the peer chose: they may hold ESC, CR/LF, NUL or invalid UTF-8. The one place that makes them
// safe for each output (docs/events.md, "Peer-supplied strings"):
// - the text trace and the console show them through escapeText(): printable ASCII and printable
//   UTF-8 as they are, `\\` for a backslash, `\n` `\r` `\t`, and `\xHH` for every other byte of a
//   control (C0, DEL, C1), a bidi or line-separator character, or an invalid UTF-8 sequence. The
//   form is unambiguous: unescaping it gives back the bytes.
// - the JSON writer (json.cpp) keeps valid UTF-8 as it is and writes each invalid byte as U+FFFD,
//   with the exact bytes as lowercase hex in a `<key>_hex` field next to it; the invisible controls
//   below as \uXXXX.
// Both scan 16 bytes at a time and copy without a second pass when nothing needs escaping, the
// common case (host names, protocol names, hex).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace tlstrace::trace {

// The length (1 to 4) of the well-formed UTF-8 sequence at the start of [p, p + n), or 0 when it
// is not one (RFC 3629 4: no overlong forms, no surrogates, nothing above U+10FFFF).
[[nodiscard]] std::size_t utf8SequenceLength(const unsigned char* p, std::size_t n);
[[nodiscard]] bool isValidUtf8(std::string_view s);
// The code point of a well-formed sequence of `len` (2 to 4) bytes.
[[nodiscard]] std::uint32_t utf8CodePoint(const unsigned char* p, std::size_t len);
// Valid, but acted on by a terminal or reordering what follows: the C1 controls, the bidi marks,
// embeddings, overrides and isolates, the line and paragraph separators. Both outputs escape
// them (the JSON writer as \uXXXX: an events file is read in terminals too).
[[nodiscard]] bool isInvisibleControl(std::uint32_t cp);

// The scan behind plainTextPrefix() and plainJsonPrefix() below, inline: every string of both
// outputs goes through it, most of them a few bytes long.
namespace escape_detail {

// The bytes each prefix copies as they are: printable ASCII but a backslash (and a double quote).
template <bool kQuote>
constexpr std::array<bool, 256> kPlainByte = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c <= 0x7e; ++c) t[c] = c != '\\' && !(kQuote && c == '"');
  return t;
}();

// True when one of the 16 bytes at `p` is not plain (unsigned vector compares: 0x80-0xff compare
// above 0x7e).
template <bool kQuote>
inline bool anyOddIn16(const char* p) {
  using V16 = std::uint8_t __attribute__((vector_size(16)));
  V16 v;
  std::memcpy(&v, p, sizeof v);
  V16 bad = (v < 0x20) | (v > 0x7e) | (v == '\\');
  if constexpr (kQuote) bad |= (v == '"');
  std::uint64_t half[2];
  std::memcpy(half, &bad, sizeof half);
  return (half[0] | half[1]) != 0;
}

// 16 bytes at a time, the last 16 again (overlapping) rather than one by one: most strings are
// plain, and hex and names end at any length. Short strings and the block with the first odd
// byte go through the table.
template <bool kQuote>
inline std::size_t plainPrefix(const char* p, std::size_t n) {
  std::size_t i = 0;
  if (n >= 16) {
    while (n - i >= 16 && !anyOddIn16<kQuote>(p + i)) i += 16;
    if (i == n || (n - i < 16 && !anyOddIn16<kQuote>(p + n - 16))) return n;
  }
  while (i < n && kPlainByte<kQuote>[static_cast<unsigned char>(p[i])]) ++i;
  return i;
}

}  // namespace escape_detail

// How many bytes at the start of [p, p + n) are printable ASCII other than a backslash (the bytes
// escapeText() copies without looking further); plainJsonPrefix() stops at a double quote too (the
// bytes a JSON string holds as they are).
[[nodiscard]] inline std::size_t plainTextPrefix(const char* p, std::size_t n) {
  return escape_detail::plainPrefix<false>(p, n);
}
[[nodiscard]] inline std::size_t plainJsonPrefix(const char* p, std::size_t n) {
  return escape_detail::plainPrefix<true>(p, n);
}

// Appends `s` as the text trace shows a string (see above).
void appendEscapedText(std::string_view s, std::string& out);
[[nodiscard]] std::string escapeText(std::string_view s);

}  // namespace tlstrace::trace
