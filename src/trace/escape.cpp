#include "trace/escape.h"

#include <cstdint>
#include <cstring>

namespace tlstrace::trace {

std::size_t utf8SequenceLength(const unsigned char* p, std::size_t n) {
  if (n == 0) return 0;
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  // RFC 3629 4: the lead byte fixes the length and the range of the second byte.
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) len = 2;
  else if (c == 0xe0) len = 3, lo = 0xa0;
  else if (c == 0xed) len = 3, hi = 0x9f;  // no UTF-16 surrogates
  else if (c >= 0xe1 && c <= 0xef) len = 3;
  else if (c == 0xf0) len = 4, lo = 0x90;
  else if (c == 0xf4) len = 4, hi = 0x8f;  // nothing above U+10FFFF
  else if (c >= 0xf1 && c <= 0xf3) len = 4;
  else return 0;  // 80-C1 (a continuation byte, an overlong lead), F5-FF
  if (n < len || p[1] < lo || p[1] > hi) return 0;
  for (std::size_t i = 2; i < len; ++i)
    if (p[i] < 0x80 || p[i] > 0xbf) return 0;
  return len;
}

bool isValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t i = 0;
  while (i < s.size()) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const std::size_t len = utf8SequenceLength(p + i, s.size() - i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// (U+009B is CSI to some terminals; a bidi override shows a name in another order than it has:
// "Trojan Source".)
bool isInvisibleControl(std::uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

std::uint32_t utf8CodePoint(const unsigned char* p, std::size_t len) {
  if (len == 2) return (p[0] & 0x1fu) << 6 | (p[1] & 0x3fu);
  if (len == 3) return (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu);
  return (p[0] & 0x07u) << 18 | (p[1] & 0x3fu) << 12 | (p[2] & 0x3fu) << 6 | (p[3] & 0x3fu);
}

namespace {

void appendByteEscape(unsigned char c, std::string& out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const char esc[] = {'\\', 'x', kDigits[c >> 4], kDigits[c & 0xf]};
  out.append(esc, sizeof esc);
}

}  // namespace

void appendEscapedText(std::string_view s, std::string& out) {
  std::size_t i = plainTextPrefix(s.data(), s.size());
  if (i == s.size()) {  // the common case: one append
    out += s;
    return;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  out.append(s.data(), i);
  while (i < s.size()) {
    const unsigned char c = p[i];
    if (c >= 0x80) {
      const std::size_t len = utf8SequenceLength(p + i, s.size() - i);
      if (len == 0) {  // an invalid byte: escaped alone, the next one looked at afresh
        appendByteEscape(c, out);
        ++i;
      } else if (isInvisibleControl(utf8CodePoint(p + i, len))) {
        for (std::size_t k = 0; k < len; ++k) appendByteEscape(p[i + k], out);
        i += len;
      } else {
        out.append(s.data() + i, len);
        i += len;
      }
    } else {
      switch (c) {
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: appendByteEscape(c, out);  // the other C0 controls, DEL
      }
      ++i;
    }
    const std::size_t run = plainTextPrefix(s.data() + i, s.size() - i);
    out.append(s.data() + i, run);
    i += run;
  }
}

std::string escapeText(std::string_view s) {
  std::string out;
  appendEscapedText(s, out);
  return out;
}

}  // namespace tlstrace::trace
