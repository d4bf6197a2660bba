// libFuzzer target: the ClientHello reassembler and the handshake-message describer, on any bytes.
#include <cstddef>
#include <cstdint>

#include "trace/body.h"
#include "wire/handshake.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tlstrace::wire::Bytes in(data, size);
  auto peek = tlstrace::wire::peekClientHello(in);
  if (peek.kind == tlstrace::wire::HelloPeek::Kind::ClientHello)
    (void)tlstrace::trace::describeHandshake(peek.message, false);
  // The same bytes as one handshake message, both version layouts.
  (void)tlstrace::trace::describeHandshake(in, false);
  (void)tlstrace::trace::describeHandshake(in, true);
  if (size > 4) {
    (void)tlstrace::wire::decodeServerHello(in.subspan(4));
    (void)tlstrace::trace::Json::parse(std::string_view(reinterpret_cast<const char*>(data), size));
  }
  return 0;
}
