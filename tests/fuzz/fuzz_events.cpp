// libFuzzer target: the events reader behind `tlstrace convert` (any bytes as an events file):
// each line parsed, read into its event kind and rendered in every text shape and as a key log.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sinks/convert.h"

using tlstrace::sinks::EventsConverter;
using tlstrace::trace::TextFormat;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  EventsConverter convs[] = {{"fuzz", EventsConverter::To::Text, TextFormat::Default},
                             {"fuzz", EventsConverter::To::Text, TextFormat::Jsse},
                             {"fuzz", EventsConverter::To::Text, TextFormat::Openssl},
                             {"fuzz", EventsConverter::To::Keylog, TextFormat::Default}};
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string out;
  while (!in.empty()) {
    const std::size_t nl = in.find('\n');
    const std::string_view line = in.substr(0, nl);
    for (auto& c : convs) {
      out.clear();
      // A line is an event or an error naming the file and line; never both, never neither.
      if (!c.feed(line, out) && (c.error().rfind("fuzz:", 0) != 0 || !out.empty())) __builtin_trap();
    }
    if (nl == std::string_view::npos) break;
    in.remove_prefix(nl + 1);
  }
  return 0;
}
