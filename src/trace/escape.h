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
#include <cstddef>
#include <cstdint>
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

// How many bytes at the start of [p, p + n) are printable ASCII other than a backslash (the bytes
// escapeText() copies without looking further); plainJsonPrefix() stops at a double quote too (the
// bytes a JSON string holds as they are).
[[nodiscard]] std::size_t plainTextPrefix(const char* p, std::size_t n);
[[nodiscard]] std::size_t plainJsonPrefix(const char* p, std::size_t n);

// Appends `s` as the text trace shows a string (see above).
void appendEscapedText(std::string_view s, std::string& out);
[[nodiscard]] std::string escapeText(std::string_view s);

}  // namespace tlstrace::trace
