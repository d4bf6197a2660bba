// libFuzzer target: the explicit-proxy request front end.
#include <cstddef>
#include <cstdint>

#include "net/proxy_request.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)tlstrace::net::parseProxyRequest(std::span<const std::uint8_t>(data, size), 4096);
  return 0;
}
