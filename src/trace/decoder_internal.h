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

// Lists are built at their final size: one allocation each (a ClientHello has dozens of them).
inline Json u16Names(const std::vector<std::uint16_t>& v, std::string_view (*namer)(std::uint16_t)) {
  Json::Array a;
  a.reserve(v.size());
  for (auto x : v) a.push_back(codeName(x, namer(x)));
  return Json(std::move(a));
}

inline Json nameList(const std::vector<std::uint16_t>& v, std::string_view (*namer)(std::uint16_t)) {
  Json::Array a;
  a.reserve(v.size());
  for (auto x : v) a.emplace_back(namer(x));
  return Json(std::move(a));
}

inline Json strings(const std::vector<std::string>& v) {
  Json a = Json::array();
  for (const auto& s : v) a.push(s);
  return a;
}

// Decoded fields of one extension, merged into its {type, length} object `out`.
void decodeExtension(const wire::Extension& e, bool from_client, bool hrr, const DerDecoders& der, Json& out);

}  // namespace tlstrace::trace::detail
