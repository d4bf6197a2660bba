// Helpers shared by the decoder's two files (decoder.cpp: the messages; decoder_extensions.cpp:
// the extensions). Not part of the trace/ interface.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "trace/decoder.h"

namespace tlstrace::trace::detail {

inline constexpr std::size_t kRawCap = 256;  // bytes of hex kept for opaque or malformed data

// Lists of {id, name} codes, or of names alone.
inline Body u16Names(const std::vector<std::uint16_t>& v, std::string_view (*namer)(std::uint16_t)) {
  Body a = Body::array();
  a.reserve(9 + v.size() * 64);
  for (auto x : v) a.pushCode(x, namer(x));
  return a;
}

inline Body nameList(const std::vector<std::uint16_t>& v, std::string_view (*namer)(std::uint16_t)) {
  Body a = Body::array();
  for (auto x : v) a.push(namer(x));
  return a;
}

inline Body strings(const std::vector<std::string>& v) {
  Body a = Body::array();
  for (const auto& s : v) a.push(s);
  return a;
}

// Decoded fields of one extension, merged into its {type, length} object `out`.
void decodeExtension(const wire::Extension& e, bool from_client, bool hrr, const DerDecoders& der, Body& out);

}  // namespace tlstrace::trace::detail
