// libFuzzer target: the config-file loader (TOML subset) and the host:port parser.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"
#include "config/toml.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string err;
  if (auto entries = tlstrace::config::parseToml(text, err)) (void)tlstrace::config::tomlToArgs(*entries, "proxy");
  (void)tlstrace::config::parseHostPort(text, err, 443, true);
  (void)tlstrace::config::isLocalAddress(text);
  (void)tlstrace::config::base64(text);
  return 0;
}
